package cluster_test

import (
	"testing"

	"github.com/fraiseql/subscriptions/cluster"
)

// The admin actions' subjects start with "_admin": as a prefix, the
// event stream would capture them.
func TestAdminPrefixReserved(t *testing.T) {
	if err := (cluster.Config{Prefix: "_admin"}).Validate(); err == nil || !errorsContain(err, "nats.prefix:") {
		t.Fatalf("prefix _admin: %v, want a nats.prefix error", err)
	}
	for _, p := range []string{"_admins", "admin", "fraiseql"} {
		if err := (cluster.Config{Prefix: p}).Validate(); err != nil {
			t.Errorf("prefix %q: %v", p, err)
		}
	}
}
