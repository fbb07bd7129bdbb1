package query

import (
	"errors"
	"testing"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

func firstErr(t *testing.T, err error) *gqlerror.Error {
	t.Helper()
	var list gqlerror.List
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %v is not a gqlerror.List", err)
	}
	return list[0]
}
