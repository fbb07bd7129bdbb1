package node

import (
	"context"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A client that does not read is disconnected once its queue passes
// ws.max_queued_bytes, counted with the WebSocket slow consumers; a client
// that reads keeps receiving every event.
func TestSSESlowClientDisconnected(t *testing.T) {
	testSlowHTTPClient(t, "text/event-stream", func(n *Node, query string) func() (string, string) {
		return ssePost(t, n, query, nil).next
	})
}

// A multipart client that does not read is a slow consumer as an SSE one is.
func TestMultipartSlowClientDisconnected(t *testing.T) {
	testSlowHTTPClient(t, multipartAccept, func(n *Node, query string) func() (string, string) {
		return mpPost(t, n, query, nil).next
	})
}

// testSlowHTTPClient runs the slow-client scenario for a streamed HTTP
// transport: a client that sends accept and never reads, and one that
// reads every event through the next function open returns.
func testSlowHTTPClient(t *testing.T, accept string, open func(n *Node, query string) (next func() (msg, id string))) {
	const maxQueued = 1 << 20
	const query = `subscription { messageAdded(room: "r1") { id text } }`
	n := startNode(t, func(c *Config) {
		c.WS.MaxQueuedBytes = maxQueued
		c.Limits.MaxEventBytes = 32 << 10
		c.Limits.EventRate = -1
	})
	// The slow client: a small receive buffer, and it never reads.
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	slow, err := d.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /graphql?query="+url.QueryEscape(query)+" HTTP/1.1\r\nHost: "+n.Addr()+"\r\nAccept: "+accept+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	next := open(n, query)
	waitFor(t, "the subscriptions", func() bool { return n.met.subsOpen.Load() == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const events = 600
	text := strings.Repeat("x", 30<<10)
	read := make(chan int, events)
	go func() { // the fast client reads every event; ends before the test does
		defer close(read)
		for i := 1; i <= events; i++ {
			if msg, _ := next(); msg != strconv.Itoa(i) {
				t.Errorf("fast client: got %s, want %d", msg, i)
				return
			}
			read <- i
		}
	}()
	got := 0
	for i := 1; i <= events; i++ {
		for got < i-16 { // the fast client keeps up: it is never a slow consumer
			var ok bool
			if got, ok = <-read; !ok {
				t.Fatal("the fast client stopped")
			}
		}
		body := `{"id":"` + strconv.Itoa(i) + `","room":"r1","text":"` + text + `"}`
		if _, err := n.cl.Publish(ctx, "public", "chat.r1", []byte(body), ""); err != nil {
			t.Fatal(err)
		}
	}
	for range read {
	}
	waitFor(t, "the slow client's disconnect", func() bool {
		return metricValue(t, n, "fraiseql_slow_consumer_closes_total", "reason", "conn_bytes") == 1
	})
	if got := metricValue(t, n, "fraiseql_slow_client_disconnects_total"); got != 1 {
		t.Fatalf("fraiseql_slow_client_disconnects_total = %v, want 1", got)
	}
	waitFor(t, "the slow subscription to end", func() bool { return n.met.subsOpen.Load() == 1 })
	// The slow client finds its stream ended once it reads what was sent.
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, slow); err != nil {
		t.Fatalf("slow client: %v, want the end of the stream", err)
	}
	// The other client is still served.
	publishRoom(t, n, "public", events+1)
	if msg, _ := next(); msg != strconv.Itoa(events+1) {
		t.Fatalf("fast client: got %s after the slow one left", msg)
	}
}
