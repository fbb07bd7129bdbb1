package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/fraiseql/subscriptions/examples/internal/nodetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTwoTabsChat: two clients connect through the chat server, as the
// page does (same origin), and each message sent with POST /send reaches
// both, in order.
func TestTwoTabsChat(t *testing.T) {
	base := startChat(t)

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	send := func(author, text string) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"room": "r 1", "author": author, "text": text})
		resp, err := http.Post(base+"/send", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST /send = %d", resp.StatusCode)
		}
	}
	tabs := []<-chan string{openTab(t, base), openTab(t, base)}
	// Each tab's subscription registers asynchronously: send until both hear.
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("the tabs received nothing after 50 messages")
		}
		send("system", "hello")
		if got := recv(tabs[0], 200*time.Millisecond); got != "" {
			if recv(tabs[1], 5*time.Second) != "" {
				break
			}
		}
	}
	drain := func(c <-chan string) {
		for recv(c, 300*time.Millisecond) != "" {
		}
	}
	drain(tabs[0])
	drain(tabs[1])
	send("ann", "hi bob")
	send("bob", "hi ann")
	for i, tab := range tabs {
		for _, want := range []string{"ann: hi bob", "bob: hi ann"} {
			if got := recv(tab, 10*time.Second); got != want {
				t.Fatalf("tab %d received %q, want %q", i, got, want)
			}
		}
	}
	// Bad input is refused, and nobody receives it.
	resp, err = http.Post(base+"/send", "application/json", strings.NewReader(`{"room":"r 1","author":"","text":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST /send without an author = %d, want 400", resp.StatusCode)
	}
}

// openTab subscribes to room "r 1" through the chat server, with the
// page's Origin, and returns "author: text" per message.
func openTab(t *testing.T, base string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	u, _ := url.Parse(base)
	c, _, err := websocket.Dial(ctx, "ws://"+u.Host+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader:   http.Header{"Origin": {base}},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	out := make(chan string, 64)
	done := make(chan struct{})
	go func() { // ends when the connection closes at cleanup
		defer close(done)
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			var m struct {
				Type    string
				Payload struct {
					Data struct {
						MessageAdded struct {
							Text   string
							Author struct{ Name string }
						} `json:"messageAdded"`
					}
				}
			}
			json.Unmarshal(data, &m)
			switch m.Type {
			case "connection_ack":
				c.Write(ctx, websocket.MessageText, []byte(`{"id":"1","type":"subscribe","payload":{"query":"subscription($room: ID!) { messageAdded(room: $room) { id text author { name } } }","variables":{"room":"r 1"}}}`))
			case "next":
				out <- m.Payload.Data.MessageAdded.Author.Name + ": " + m.Payload.Data.MessageAdded.Text
			}
		}
	}()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"connection_init"}`)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow(); cancel(); <-done })
	return out
}

func recv(c <-chan string, d time.Duration) string {
	select {
	case s := <-c:
		return s
	case <-time.After(d):
		return ""
	}
}

// startChat starts a node and the chat server in front of it, both
// stopped at cleanup, and returns the chat server's base URL.
func startChat(t *testing.T) string {
	t.Helper()
	n := nodetest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, config{node: "http://" + n.Addr, natsURL: n.NATSURL, tenant: "public"}, ln) }() // ends with ctx
	t.Cleanup(func() { stop(); <-done })
	return "http://" + ln.Addr().String()
}
