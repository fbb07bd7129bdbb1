package ws

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingConn records each Write the batch writer makes to the socket.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes []string
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func TestBatchWriterOneSyscallPerBatch(t *testing.T) {
	conn := &countingConn{}
	b := &batchWriter{conn: conn}

	b.Write([]byte("direct")) // no batch open: written through
	b.begin()
	for _, s := range []string{"a", "bb", "ccc"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if len(conn.writes) != 1 {
		t.Fatalf("batched bytes reached the socket before end: %q", conn.writes)
	}
	if err := b.end(); err != nil {
		t.Fatal(err)
	}
	b.end() // no batch open: nothing to write
	want := []string{"direct", "abbccc"}
	if strings.Join(conn.writes, "|") != strings.Join(want, "|") {
		t.Fatalf("socket writes %q, want %q", conn.writes, want)
	}
}

func TestBatchWriterFlushesLargeBatchesEarly(t *testing.T) {
	conn := &countingConn{}
	b := &batchWriter{conn: conn}
	b.begin()
	chunk := bytes.Repeat([]byte("x"), batchFlushBytes/2)
	for range 3 {
		b.Write(chunk)
	}
	if len(conn.writes) != 1 || len(conn.writes[0]) != batchFlushBytes {
		t.Fatalf("want one early flush of %d bytes, got %d writes", batchFlushBytes, len(conn.writes))
	}
	b.end()
	if len(conn.writes) != 2 || len(conn.writes[1]) != batchFlushBytes/2 {
		t.Fatalf("want the rest at end, got %d writes", len(conn.writes))
	}
}

// TestBatchedFramesArriveIntact sends a burst of frames through a real
// connection: batching shares syscalls, never messages.
func TestBatchedFramesArriveIntact(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	cl := e.dial(t, SubprotocolTransportWS)
	sess := e.session(t)
	cl.initTransport()
	sess.expect(t, "init")
	cl.send(`{"id":"1","type":"subscribe","payload":{"query":"q"}}`)
	sub := sess.expect(t, "subscribe").sub
	const n = 500
	for i := range n {
		if !sub.Next([]byte(`{"data":` + strings.Repeat("7", i%50+1) + `}`)) {
			t.Fatalf("Next %d refused", i)
		}
	}
	for i := range n {
		cl.expect(`{"id":"1","type":"next","payload":{"data":` + strings.Repeat("7", i%50+1) + `}}`)
	}
}

// TestAppendTextFrameHeader checks the frame header at the payload-length
// encoding boundaries of RFC 6455 §5.2 (125/126, 65535/65536).
func TestAppendTextFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		n    int
		head []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xff, 0xff}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		conn := &countingConn{}
		b := &batchWriter{conn: conn}
		b.begin()
		p := bytes.Repeat([]byte("x"), tc.n)
		if err := b.appendText(p[:tc.n/2], p[tc.n/2:], nil); err != nil {
			t.Fatal(err)
		}
		b.end()
		got := []byte(strings.Join(conn.writes, ""))
		if !bytes.Equal(got[:len(tc.head)], tc.head) || len(got) != len(tc.head)+tc.n {
			t.Errorf("n=%d: header % x, total %d", tc.n, got[:min(len(got), 10)], len(got))
		}
	}
	if err := (&batchWriter{conn: &countingConn{}}).appendText([]byte("x"), nil, nil); err != errNoBatch {
		t.Fatalf("outside a batch: %v", err)
	}
}

// TestMessageSentWithTheHandshake: a client may send its first message in
// the same packet as the upgrade request; those bytes, buffered by
// net/http before the hijack, must reach the connection's reader.
func TestMessageSentWithTheHandshake(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte(`{"type":"connection_init"}`)
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(msg)), mask[0], mask[1], mask[2], mask[3]} // client frames are masked
	for i, c := range msg {
		frame = append(frame, c^mask[i%4])
	}
	req := "GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, head[1]&0x7f)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	if head[0] != 0x81 || string(body) != `{"type":"connection_ack"}` {
		t.Fatalf("got % x %q, want connection_ack", head, body)
	}
}

// TestControlFrameBehindADirectWriteRest: a control frame written while
// the open batch is only a direct write's rest goes out at once, behind
// that rest: nothing else may be about to write it.
func TestControlFrameBehindADirectWriteRest(t *testing.T) {
	conn := &countingConn{}
	b := &batchWriter{conn: conn}
	rest := []byte("rest-of-a-frame")
	buf := append(*batchPool.Get().(*[]byte), rest...)
	b.buf, b.leftover = &buf, true
	if _, err := b.Write([]byte("close")); err != nil {
		t.Fatal(err)
	}
	if len(conn.writes) != 1 || conn.writes[0] != "rest-of-a-frameclose" {
		t.Fatalf("writes %q, want the rest then the control frame in one write", conn.writes)
	}
	if b.open() {
		t.Fatal("batch still open")
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { // ends with the one Accept
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestDirectWriterNeverWaitsAndReportsAClosedConnection: a direct write puts
// what the socket takes on the wire, reports a full socket as 0 bytes
// written (not an error, and without waiting), and reports a closed
// connection as an error, so that Flush closes it.
func TestDirectWriterNeverWaitsAndReportsAClosedConnection(t *testing.T) {
	client, server := tcpPair(t)
	var d directWriter
	d.init(server)
	if !d.ok() {
		t.Fatal("a TCP connection gave no descriptor")
	}
	if n, err := d.tryWrite([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("tryWrite: %d, %v; want 5, nil", n, err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}

	// Fill the socket: the client reads nothing.
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	start, full := time.Now(), false
	for i := 0; i < 4096 && !full; i++ { // loopback buffers hold a few MB at most
		n, err := d.tryWrite(chunk)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		full = n == 0
	}
	if !full {
		t.Fatal("the socket never filled")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("writes to a full socket waited: %v", d)
	}

	server.Close()
	if n, err := d.tryWrite([]byte("late")); err == nil || n != 0 {
		t.Fatalf("tryWrite on a closed connection: %d, %v; want 0 and an error", n, err)
	}
}
