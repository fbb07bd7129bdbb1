package redis

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// No ignores: Run must stop every goroutine it and go-redis started.
	goleak.VerifyTestMain(m)
}
