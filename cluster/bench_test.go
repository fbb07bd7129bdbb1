package cluster_test

import (
	"context"
	"fmt"
	"strings"
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
// consumed event, whatever the number of subscribers), for a tenant that
// fits the MAC's first block ("acme") and one of the longest (64 bytes).
// The one allocation is the cursor string.
func BenchmarkCursor(b *testing.B) {
	c := open(b, cluster.Config{})
	for _, tenant := range []string{"acme", strings.Repeat("t", 64)} {
		b.Run(fmt.Sprintf("tenant=%d", len(tenant)), func(b *testing.B) {
			b.ReportAllocs()
			for i := uint64(0); b.Loop(); i++ {
				_ = c.Cursor(tenant, i)
			}
		})
	}
}

// BenchmarkParseCursor measures checking a client's cursor (done once per
// subscribe with a cursor).
func BenchmarkParseCursor(b *testing.B) {
	c := open(b, cluster.Config{})
	cur := c.Cursor("acme", 42)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ParseCursor("acme", cur); err != nil {
			b.Fatal(err)
		}
	}
}
