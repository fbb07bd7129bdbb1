package cluster_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
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

// BenchmarkReplay measures resumes through Replay on one node, 128 at
// once (as after another node died): each resume reads the 3 events its
// subject got after its cursor; 1,000 subjects are interleaved in the
// stream (4,000 events). "spread" resumes cycle over all 1,000 subjects,
// so concurrent resumes are of different subjects (every resume reads on
// its own); "rooms" resumes cycle over 10 subjects (concurrent resumes of
// a subject share a read). Embedded server, loopback. Reported: resumes/s
// (the allocations are client's and server's: same process).
func BenchmarkReplay(b *testing.B) {
	c := open(b, cluster.Config{})
	ctx := context.Background()
	const subjects, perSubject = 1000, 4
	first := make([]uint64, subjects)
	for i := range perSubject * subjects {
		r := mustPublish(b, c, "acme", fmt.Sprintf("chat.r%d", i%subjects), `{"id":"1","text":"hello"}`, "")
		if i < subjects {
			first[i] = r.Seq
		}
	}
	for _, bc := range []struct {
		name  string
		cycle int
	}{{"spread", subjects}, {"rooms", 10}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetParallelism(128 / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s := int(n.Add(1)) % bc.cycle
					got := 0
					_, err := c.Replay(ctx, "acme", fmt.Sprintf("chat.r%d", s), first[s], func(*cluster.Event) error { got++; return nil })
					if err != nil || got != perSubject-1 {
						b.Errorf("Replay = %d events, %v", got, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resumes/s")
		})
	}
}
