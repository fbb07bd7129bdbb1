package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// Open a cluster connection (here to a NATS server with JetStream started
// in process), publish events with a dedup id, and turn a stream sequence
// into the cursor clients resume from, and back.
func Example() {
	dir, err := os.MkdirTemp("", "cluster-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(clustertest.Options(dir))
	if err != nil {
		panic(err)
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		panic("NATS not ready")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cluster.Open(ctx, cluster.Config{URL: ns.ClientURL()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	first, err := c.Publish(ctx, "acme", "chat.r1", []byte(`{"id":"1","text":"hi"}`), "msg-1")
	if err != nil {
		panic(err)
	}
	again, err := c.Publish(ctx, "acme", "chat.r1", []byte(`{"id":"1","text":"hi"}`), "msg-1")
	if err != nil {
		panic(err)
	}
	fmt.Println("seq", first.Seq, "duplicate", first.Duplicate)
	fmt.Println("seq", again.Seq, "duplicate", again.Duplicate)

	cursor := c.Cursor("acme", first.Seq)
	seq, err := c.ParseCursor("acme", cursor)
	fmt.Println("cursor back to seq", seq, err)
	_, err = c.ParseCursor("globex", cursor) // another tenant's cursor is refused
	fmt.Println("other tenant refused:", err != nil)
	// Output:
	// seq 1 duplicate false
	// seq 1 duplicate true
	// cursor back to seq 1 <nil>
	// other tenant refused: true
}

// Tenants and topics are checked before they become part of a subject.
func ExampleValidateTopic() {
	fmt.Println(cluster.ValidateTopic("chat.r1"))
	fmt.Println(cluster.ValidateTopic("chat.>") != nil)
	fmt.Println(cluster.ValidateTenant("acme"), cluster.ValidateTenant("a.b") != nil)
	// Output:
	// <nil>
	// true
	// <nil> true
}
