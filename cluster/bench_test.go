package cluster_test

import (
	"context"
	"testing"

	"github.com/fraiseql/subscriptions/cluster"
)

// BenchmarkPublish measures one synchronous Publish (validate, JetStream
// publish, wait for the ack) of a 100-byte event to the embedded server,
// file storage. Allocations are this process's, both client and server.
func BenchmarkPublish(b *testing.B) {
	c := open(b, cluster.Config{MaxBytes: -1})
	ctx := context.Background()
	data := make([]byte, 100)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := c.Publish(ctx, "acme", "chat.r1", data, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCursor measures encoding one event's cursor (done once per
// consumed event).
func BenchmarkCursor(b *testing.B) {
	c := open(b, cluster.Config{})
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		_ = c.Cursor(i)
	}
}
