package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/coder/websocket"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
	"github.com/fraiseql/subscriptions/query"
)

// A node embedded in a Go program: cluster.Open starts NATS with JetStream
// in-process (no URL), node.New and Start serve GraphQL over WebSocket, and
// cluster.Publish sends an event that the subscriber receives, projected.
func Example() {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, _ := os.MkdirTemp("", "fraiseql-example-")
	defer os.RemoveAll(store)

	cl, err := cluster.Open(ctx, cluster.Config{Embedded: cluster.EmbeddedConfig{StoreDir: store}}, log)
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	schema, err := query.LoadSchema("chat.graphql", `
		directive @topic(name: String!) on FIELD_DEFINITION
		type Query { health: String }
		type Message { id: ID!, text: String! }
		type Subscription { messageAdded(room: ID!): Message @topic(name: "chat.{room}") }`)
	if err != nil {
		panic(err)
	}
	n, err := node.New(node.Config{Schema: schema, Logger: log, Tenant: "public"}, cl)
	if err != nil {
		panic(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := n.Start(ctx, ln); err != nil {
		panic(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n.Shutdown(sctx)
	}()

	// A graphql-transport-ws client.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(wctx, "ws://"+n.Addr()+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		panic(err)
	}
	defer c.CloseNow()
	c.Write(wctx, websocket.MessageText, []byte(`{"type":"connection_init"}`))
	c.Read(wctx) // connection_ack
	c.Write(wctx, websocket.MessageText, []byte(`{"id":"1","type":"subscribe","payload":{"query":"subscription { messageAdded(room: \"r1\") { text } }"}}`))

	// The subscription registers asynchronously: publish until it hears.
	got := make(chan string, 1)
	go func() { // ends when the connection closes
		for {
			_, data, err := c.Read(wctx)
			if err != nil {
				return
			}
			var m struct {
				Type    string
				Payload struct{ Data json.RawMessage }
			}
			if json.Unmarshal(data, &m) == nil && m.Type == "next" {
				got <- string(m.Payload.Data)
				return
			}
		}
	}()
	for {
		if _, err := cl.Publish(ctx, "public", "chat.r1", []byte(`{"id":"1","text":"hello","secret":"x"}`), ""); err != nil {
			panic(err)
		}
		select {
		case data := <-got:
			fmt.Println(data)
			return
		case <-time.After(100 * time.Millisecond):
		case <-wctx.Done():
			fmt.Println("no event")
			return
		}
	}
	// Output: {"messageAdded":{"text":"hello"}}
}
