package node

import (
	"testing"

	"github.com/fraiseql/subscriptions/limits"
)

// TestQueryOptionsCarryLimits checks that the compile-time limits reach the
// query compiler.
func TestQueryOptionsCarryLimits(t *testing.T) {
	c := Config{Limits: limits.Config{MaxFilterOperands: 7, MaxFilterDepth: 3, MaxComplexity: 9, MaxDepth: 4, MaxQueryBytes: 11}}
	o := c.queryOptions()
	if o.MaxFilterOperands != 7 || o.MaxFilterDepth != 3 || o.MaxComplexity != 9 || o.MaxDepth != 4 || o.MaxQueryBytes != 11 {
		t.Fatalf("queryOptions = %+v", o)
	}
	if o := (Config{}).withDefaults().queryOptions(); o.MaxFilterOperands != limits.DefaultMaxFilterOperands {
		t.Fatalf("default MaxFilterOperands = %d, want %d", o.MaxFilterOperands, limits.DefaultMaxFilterOperands)
	}
}
