package cluster_test

import (
	"errors"
	"testing"

	"github.com/fraiseql/subscriptions/cluster"
)

// A request of a kind reaches the node serving it and returns its reply;
// a kind nobody serves (its node gone) is ErrNoResponder, at once.
func TestAdminRequestReply(t *testing.T) {
	c := open(t, cluster.Config{})
	stop, err := c.ServeAdmin("sse.n1", func(data []byte) []byte { return append([]byte("re: "), data...) })
	if err != nil {
		t.Fatal(err)
	}
	reply, err := c.RequestAdmin(testCtx(t), "sse.n1", []byte("hi"))
	if err != nil || string(reply) != "re: hi" {
		t.Fatalf("got %q %v", reply, err)
	}
	stop()
	if _, err := c.RequestAdmin(testCtx(t), "sse.n1", []byte("hi")); !errors.Is(err, cluster.ErrNoResponder) {
		t.Fatalf("after stop: %v, want ErrNoResponder", err)
	}
}
