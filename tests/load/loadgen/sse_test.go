//go:build linux

package loadgen

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// sseEvent is a `next` event as the node writes it for subscription
// data of room events.
func sseEvent(seq uint64, ts int64, extra string) string {
	return "event: next\ndata: " + `{"data":{"messageAdded":{"id":"` + strconv.FormatUint(seq, 10) + "-" + strconv.FormatInt(ts, 10) +
		`","text":"xxxx"}},"extensions":{"cursor":"AAAB-_x"` + extra + "}}\nid: AAAB-_x\n\n"
}

// newTestPhase returns phases holding one measured phase of one room
// open from sequence 1.
func newTestPhase() (*phases, *phase) {
	var ps phases
	ph := newPhase("measure", 10, 1)
	ps.add(ph)
	ph.start[0].Store(1)
	return &ps, ph
}

// TestSSEStreamRead feeds one stream an event stream with everything the
// node (and the standard) may put in it, through a read buffer smaller
// than an event, and checks the accounting.
func TestSSEStreamRead(t *testing.T) {
	ps, ph := newTestPhase()
	cs := newClients(graphqlWS{}, "", []string{"r"}, 2, ps)
	c := &client{cs: cs, seqs: make([]SeqTracker, 2)}
	c.sent()
	c.sent()
	ts := time.Now().Add(-5 * time.Millisecond).UnixNano()
	stream := ":\n\n" + // a keep-alive
		sseEvent(1, ts, "") +
		strings.ReplaceAll(sseEvent(2, ts, ""), "\n", "\r\n") + // CRLF lines
		sseEvent(2, ts, "") + // a duplicate
		sseEvent(4, ts, `,"dropped":1`) + // a gap the node reports
		// data over two lines (a JSON line break), "data:" with no space
		"event: next\ndata:" + `{"data":{"messageAdded":{"id":"5-` + strconv.FormatInt(ts, 10) + `","text":"x"}},` + "\ndata: " + `"extensions":{"cursor":"c"}}` + "\n\n" +
		// the fallback parser: another field order
		"event: next\ndata: " + `{"extensions":{"cursor":"c"},"data":{"messageAdded":{"text":"x","id":"6-` + strconv.FormatInt(ts, 10) + `"}}}` + "\n\n" +
		"event: next\nid: c\n\n" + // no data: not dispatched
		"data: {}\n\n" + // no event type: not ours
		"event: next\ndata: not json\n\n" +
		": close 1013 slow consumer\n\n"
	s := &sseStream{c: c, sub: 1, br: bufio.NewReaderSize(strings.NewReader(stream), 16)}
	if err := s.read(); !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v", err)
	}
	ph.end[0].Store(6)
	if got := ph.delivered.load(); got != 5 {
		t.Fatalf("delivered %d, want 5 (1, 2, 4, 5, 6)", got)
	}
	if ph.dups.load() != 1 || ph.skipped.load() != 1 || ph.dropped.load() != 1 || ph.reorders.load() != 0 {
		t.Fatalf("dups %d skipped %d dropped %d reorders %d", ph.dups.load(), ph.skipped.load(), ph.dropped.load(), ph.reorders.load())
	}
	if cs.unknown.Load() != 2 {
		t.Fatalf("unknown %d, want 2 (the untyped event, the bad JSON)", cs.unknown.Load())
	}
	if lat := ph.latency.Summarize(); lat.Count != 5 || lat.P50 < 4.9 {
		t.Fatalf("latency %+v", lat)
	}
	if s.closeNote != "close 1013" || s.completed {
		t.Fatalf("close note %q, completed %v", s.closeNote, s.completed)
	}

	// Subscription 2 is refused in its stream: errors, then complete.
	s2 := &sseStream{c: c, sub: 2, br: bufio.NewReader(strings.NewReader(
		"event: next\ndata: {\"errors\":[{\"message\":\"no\",\"extensions\":{\"code\":\"SUBSCRIPTION_LIMIT\"}}]}\n\n" +
			"event: complete\ndata:\n\n"))}
	if err := s2.read(); !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v", err)
	}
	if cs.refused["SUBSCRIPTION_LIMIT"] != 1 || cs.accepted.Load() != 1 || !s2.completed || cs.completes.Load() != 1 {
		t.Fatalf("refused %v accepted %d completed %v completes %d", cs.refused, cs.accepted.Load(), s2.completed, cs.completes.Load())
	}
}

// TestSSEEventAllocs: reading the node's `next` event allocates nothing,
// as the WebSocket client's frame parsing does not.
func TestSSEEventAllocs(t *testing.T) {
	ps, ph := newTestPhase()
	cs := newClients(graphqlWS{}, "", []string{"r"}, 1, ps)
	c := &client{cs: cs, seqs: make([]SeqTracker, 1)}
	s := &sseStream{c: c, sub: 1, data: make([]byte, 0, 1024)}
	ts := time.Now().UnixNano()
	var lines [][]byte
	for _, l := range strings.Split(strings.TrimSuffix(sseEvent(1, ts, ""), "\n"), "\n") {
		lines = append(lines, []byte(l))
	}
	seq := uint64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		seq++
		lines[1] = append(lines[1][:0], "data: "+`{"data":{"messageAdded":{"id":"`...)
		lines[1] = strconv.AppendUint(lines[1], seq, 10)
		lines[1] = append(lines[1], '-')
		lines[1] = strconv.AppendInt(lines[1], ts, 10)
		lines[1] = append(lines[1], `","text":"xxxx"}},"extensions":{"cursor":"AAAB-_x"}}`...)
		for _, l := range lines {
			s.line(l, time.Now)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per event", allocs)
	}
	if ph.delivered.load() == 0 || ph.dups.load() != 0 || ph.skipped.load() != 0 {
		t.Fatalf("delivered %d dups %d skipped %d", ph.delivered.load(), ph.dups.load(), ph.skipped.load())
	}
}

// fakeSSENode serves GraphQL over SSE as the node does: it checks the
// request, hijacks, writes the head, n events and then, if closeWith is
// set, the closing comment and closes; else it waits for the client to go.
type fakeSSENode struct {
	t         *testing.T
	events    int
	closeWith string
	refuse    atomic.Int32 // an HTTP status to refuse with, before the stream

	mu    sync.Mutex
	rooms []string
	wg    sync.WaitGroup
}

func (f *fakeSSENode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Accept") != "text/event-stream" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "not a graphql-sse request", http.StatusBadRequest)
		return
	}
	var req struct {
		Query      string            `json:"query"`
		Variables  map[string]string `json:"variables"`
		Extensions json.RawMessage   `json:"extensions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Query != subscriptionQuery || string(req.Extensions) != "{}" {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if status := int(f.refuse.Load()); status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"errors":[{"message":"at capacity","extensions":{"code":"SERVICE_UNAVAILABLE"}}]}`))
		return
	}
	f.mu.Lock()
	f.rooms = append(f.rooms, req.Variables["room"])
	f.mu.Unlock()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		f.t.Error(err)
		return
	}
	f.wg.Add(1)
	go func() { // ends when the client closes, or after closeWith
		defer f.wg.Done()
		defer conn.Close()
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n")
		ts := time.Now().UnixNano()
		for i := 1; i <= f.events; i++ {
			b.WriteString(sseEvent(uint64(i), ts, ""))
		}
		if f.closeWith != "" {
			b.WriteString(": close " + f.closeWith + "\n\n")
		}
		if _, err := io.WriteString(conn, b.String()); err != nil || f.closeWith != "" {
			return
		}
		_, _ = io.Copy(io.Discard, conn)
	}()
}

// TestSSEClientsAgainstFakeNode runs clients with 2 subscriptions each
// (2 requests) against a fake node over real sockets.
func TestSSEClientsAgainstFakeNode(t *testing.T) {
	fake := &fakeSSENode{t: t, events: 3}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer fake.wg.Wait()

	ps, ph := newTestPhase()
	rooms := []string{"lg1-0"}
	cs := newClients(graphqlWS{}, "", rooms, 2, ps)
	var err error
	if cs.sse, err = newSSETarget(srv.URL+"/graphql", rooms, false); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var conns []*client
	for i := range 3 {
		c := cs.dial(ctx, i, 0)
		if c == nil {
			t.Fatalf("dial %d failed: %v", i, cs.connectErrs)
		}
		conns = append(conns, c)
	}
	if cs.alive.Load() != 6 || cs.accepted.Load() != 6 || cs.roomSubs[0].Load() != 6 {
		t.Fatalf("alive %d accepted %d", cs.alive.Load(), cs.accepted.Load())
	}
	for _, c := range conns {
		c.subStart.Store(time.Now().UnixNano())
		if err := cs.subscribe(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if cs.subscribed.Load() != 3 || cs.subscribeTime.Summarize().Count != 3 || cs.connectTime.Summarize().Count != 3 {
		t.Fatalf("subscribed %d", cs.subscribed.Load())
	}
	waitFor(t, func() bool { return ph.delivered.load() == 6*3 })
	ph.end[0].Store(3)
	if ph.dups.load() != 0 || ph.skipped.load() != 0 || cs.unknown.Load() != 0 {
		t.Fatalf("dups %d skipped %d unknown %d", ph.dups.load(), ph.skipped.load(), cs.unknown.Load())
	}
	if exp := ph.expected([]int64{cs.roomSubs[0].Load()}); exp != 18 {
		t.Fatalf("expected %d", exp)
	}
	if wire := cs.wire.load(); wire < uint64(18*len(sseEvent(1, 1, ""))) {
		t.Fatalf("wire bytes %d: fewer than the events", wire)
	}
	if len(fake.rooms) != 6 || fake.rooms[0] != "lg1-0" {
		t.Fatalf("rooms %v", fake.rooms)
	}
	cs.closing.Store(true)
	for _, c := range conns {
		c.close()
	}
	cs.wg.Wait()
	if cs.alive.Load() != 0 || len(cs.closes) != 0 {
		t.Fatalf("alive %d closes %v", cs.alive.Load(), cs.closes)
	}
}

// TestSSEServerEnds: a node that ends streams with its closing comment
// (a slow consumer's) is counted as a disconnect by that code; a refusal
// before the stream is a failed connection by HTTP status.
func TestSSEServerEnds(t *testing.T) {
	fake := &fakeSSENode{t: t, events: 1, closeWith: "1013 slow consumer"}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer fake.wg.Wait()
	ps, _ := newTestPhase()
	cs := newClients(graphqlWS{}, "", []string{"r"}, 1, ps)
	cs.sse, _ = newSSETarget(srv.URL+"/graphql", []string{"r"}, false)
	if c := cs.dial(context.Background(), 0, 0); c == nil {
		t.Fatalf("dial failed: %v", cs.connectErrs)
	}
	cs.wg.Wait()
	if cs.closes["close 1013"] != 1 || cs.alive.Load() != 0 {
		t.Fatalf("closes %v alive %d", cs.closes, cs.alive.Load())
	}

	fake.refuse.Store(http.StatusServiceUnavailable)
	if c := cs.dial(context.Background(), 1, 0); c != nil {
		t.Fatal("a refused request connected")
	}
	if cs.connectErrs["http 503"] != 1 {
		t.Fatalf("connect errors %v", cs.connectErrs)
	}
}

// TestSSEClientFailsWhole: a client whose second request fails closes
// its first and counts as one failed connection.
func TestSSEClientFailsWhole(t *testing.T) {
	var n int
	var mu sync.Mutex
	fake := &fakeSSENode{t: t}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		second := n == 2
		mu.Unlock()
		if second {
			http.Error(w, "no", http.StatusTooManyRequests)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer fake.wg.Wait()
	ps, _ := newTestPhase()
	cs := newClients(graphqlWS{}, "", []string{"r"}, 2, ps)
	cs.sse, _ = newSSETarget(srv.URL+"/graphql", []string{"r"}, false)
	if c := cs.dial(context.Background(), 0, 0); c != nil {
		t.Fatal("connected with a refused request")
	}
	if cs.connectErrs["http 429"] != 1 || cs.accepted.Load() != 0 || cs.alive.Load() != 0 {
		t.Fatalf("errs %v accepted %d alive %d", cs.connectErrs, cs.accepted.Load(), cs.alive.Load())
	}
}

// gzipSSENode serves event streams as the node does with
// ws.sse_compression gzip: a gzip body when the request accepts it, one
// sync flush after each event, the stream left open; plain otherwise.
type gzipSSENode struct {
	events   int
	accepted atomic.Int32 // requests that said Accept-Encoding: gzip
	wg       sync.WaitGroup
}

func (f *gzipSSENode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	gz := r.Header.Get("Accept-Encoding") == "gzip"
	if gz {
		f.accepted.Add(1)
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	f.wg.Add(1)
	go func() { // ends when the client closes
		defer f.wg.Done()
		defer conn.Close()
		head := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
		if gz {
			head += "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
		}
		if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
			return
		}
		var out io.Writer = conn
		zw := gzip.NewWriter(conn)
		if gz {
			out = zw
		}
		ts := time.Now().UnixNano()
		for i := 1; i <= f.events; i++ {
			if _, err := io.WriteString(out, sseEvent(uint64(i), ts, "")); err != nil {
				return
			}
			if gz && zw.Flush() != nil {
				return
			}
		}
		_, _ = io.Copy(io.Discard, conn)
	}()
}

// TestSSEGzip: with gz the requests accept gzip, a gzip body is decoded
// event by event while the stream stays open (the node flushes, it does
// not end the stream), the wire counts the compressed bytes, and the
// streams count as compressed; without it, nothing is asked and the
// bodies are plain.
func TestSSEGzip(t *testing.T) {
	for _, gz := range []bool{false, true} {
		fake := &gzipSSENode{events: 50}
		srv := httptest.NewServer(fake)
		ps, ph := newTestPhase()
		cs := newClients(graphqlWS{}, "", []string{"r"}, 2, ps)
		var err error
		if cs.sse, err = newSSETarget(srv.URL+"/graphql", []string{"r"}, gz); err != nil {
			t.Fatal(err)
		}
		c := cs.dial(context.Background(), 0, 0)
		if c == nil {
			t.Fatalf("gzip %v: dial failed: %v", gz, cs.connectErrs)
		}
		waitFor(t, func() bool { return ph.delivered.load() == 2*50 })
		ph.end[0].Store(50)
		want := int64(0)
		if gz {
			want = 2
		}
		plain := uint64(2 * 50 * len(sseEvent(1, 1, "")))
		wire := cs.wire.load()
		if fake.accepted.Load() != int32(want) || cs.compressed.Load() != want ||
			ph.dups.load() != 0 || ph.skipped.load() != 0 || cs.unknown.Load() != 0 || len(cs.closes) != 0 {
			t.Fatalf("gzip %v: accepted %d compressed %d dups %d skipped %d unknown %d closes %v",
				gz, fake.accepted.Load(), cs.compressed.Load(), ph.dups.load(), ph.skipped.load(), cs.unknown.Load(), cs.closes)
		}
		if gz && wire >= plain/2 || !gz && wire < plain {
			t.Fatalf("gzip %v: %d bytes on the wire for %d bytes of events", gz, wire, plain)
		}
		cs.closing.Store(true)
		c.close()
		cs.wg.Wait()
		srv.Close()
		fake.wg.Wait()
	}
}

// TestSSEBadEncoding: a body in an encoding the tool did not ask for
// fails the request, by the encoding.
func TestSSEBadEncoding(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: br\r\nConnection: close\r\n\r\n:\n\n")
	}))
	defer srv.Close()
	ps, _ := newTestPhase()
	cs := newClients(graphqlWS{}, "", []string{"r"}, 1, ps)
	cs.sse, _ = newSSETarget(srv.URL+"/graphql", []string{"r"}, true)
	if c := cs.dial(context.Background(), 0, 0); c != nil {
		t.Fatal("a br body was read as an event stream")
	}
	if cs.connectErrs["head: Content-Encoding br"] != 1 {
		t.Fatalf("connect errors %v", cs.connectErrs)
	}
}

func TestNewSSETarget(t *testing.T) {
	for _, tc := range []struct{ endpoint, addr, path string }{
		{"http://127.0.0.1:8080/graphql", "127.0.0.1:8080", "/graphql"},
		{"ws://127.0.0.1:8080/graphql", "127.0.0.1:8080", "/graphql"}, // a spawned node's address
	} {
		st, err := newSSETarget(tc.endpoint, []string{"a", "b"}, false)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(st.reqs[1])))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(req.Body)
		var m struct {
			Query     string
			Variables map[string]string
		}
		if st.addr != tc.addr || req.Method != http.MethodPost || req.URL.Path != tc.path || req.Host != tc.addr ||
			req.Header.Get("Accept") != "text/event-stream" || json.Unmarshal(body, &m) != nil || m.Variables["room"] != "b" || m.Query != subscriptionQuery {
			t.Fatalf("%s: addr %s, request %s %s host %s, body %s", tc.endpoint, st.addr, req.Method, req.URL, req.Host, body)
		}
	}
	if _, err := newSSETarget("wss://127.0.0.1:1/graphql", nil, false); err == nil {
		t.Fatal("wss accepted")
	}
}

// TestCompressNegotiation: -compress offers permessage-deflate; against
// a server that takes it the connection counts as compressed and the
// wire carries fewer bytes than the frames; against one that does not
// (the node today), nothing is negotiated.
func TestCompressNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		server     websocket.CompressionMode
		compress   bool
		negotiated int64
	}{
		{"server takes it", websocket.CompressionContextTakeover, true, 1},
		{"server without compression", websocket.CompressionDisabled, true, 0},
		{"not asked", websocket.CompressionContextTakeover, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := time.Now().UnixNano()
			pad := strings.Repeat("x", 4000)
			var wg sync.WaitGroup
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"graphql-transport-ws"}, CompressionMode: tc.server})
				if err != nil {
					return
				}
				wg.Add(1)
				defer wg.Done()
				defer ws.CloseNow()
				ctx := r.Context()
				if _, _, err := ws.Read(ctx); err != nil { // connection_init
					return
				}
				_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"connection_ack"}`))
				for i := 1; i <= 5; i++ {
					msg := `{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"` + strconv.Itoa(i) + "-" + strconv.FormatInt(ts, 10) +
						`","text":"` + pad + `"}},"extensions":{"cursor":"c"}}}`
					_ = ws.Write(ctx, websocket.MessageText, []byte(msg))
				}
				_, _, _ = ws.Read(ctx) // until the client goes
			}))
			defer srv.Close()
			defer wg.Wait()
			ps, ph := newTestPhase()
			cs := newClients(graphqlWS{}, "ws"+strings.TrimPrefix(srv.URL, "http")+"/graphql", []string{"r"}, 1, ps)
			cs.compress = tc.compress
			c := cs.dial(context.Background(), 0, 0)
			if c == nil {
				t.Fatalf("dial: %v", cs.connectErrs)
			}
			waitFor(t, func() bool { return ph.delivered.load() == 5 })
			cs.closing.Store(true)
			c.close()
			cs.wg.Wait()
			cs.hc.CloseIdleConnections()
			if got := cs.compressed.Load(); got != tc.negotiated {
				t.Fatalf("negotiated on %d connections, want %d", got, tc.negotiated)
			}
			wire := cs.wire.load()
			if compressed := wire < 5*4000; compressed != (tc.negotiated == 1) {
				t.Fatalf("%d bytes on the wire for 5 frames of over 4000 bytes", wire)
			}
		})
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ net.Conn = (*wireConn)(nil)

// cycleReader yields ev n times, then io.EOF.
type cycleReader struct {
	ev     []byte
	n, off int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := copy(p, r.ev[r.off:])
	if r.off += k; r.off == len(r.ev) {
		r.off, r.n = 0, r.n-1
	}
	return k, nil
}

// BenchmarkClientEvent is the tool's cost of reading one event of a
// 512-byte body: a WebSocket message once the library has read the frame
// (graphqlWS.handle), and an SSE event from its bytes (line splitting,
// the data copy and the parse). Sequence checks included, no phase.
func BenchmarkClientEvent(b *testing.B) {
	ts := time.Now().UnixNano()
	text := strings.Repeat("x", 470)
	b.Run("ws", func(b *testing.B) {
		cs := newClients(graphqlWS{}, "", []string{"r"}, 1, &phases{})
		c := &client{cs: cs, seqs: make([]SeqTracker, 1)}
		msg := []byte(`{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"7-` + strconv.FormatInt(ts, 10) +
			`","text":"` + text + `"}},"extensions":{"cursor":"AAAAAAAAAAcAAAAAAAAAAQ"}}}`)
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			cs.proto.handle(c, msg, time.Now())
		}
	})
	b.Run("sse", func(b *testing.B) {
		cs := newClients(graphqlWS{}, "", []string{"r"}, 1, &phases{})
		c := &client{cs: cs, seqs: make([]SeqTracker, 1)}
		ev := []byte("event: next\ndata: " + `{"data":{"messageAdded":{"id":"7-` + strconv.FormatInt(ts, 10) +
			`","text":"` + text + `"}},"extensions":{"cursor":"AAAAAAAAAAcAAAAAAAAAAQ"}}` + "\nid: AAAAAAAAAAcAAAAAAAAAAQ\n\n")
		r := &cycleReader{ev: ev, n: b.N}
		s := &sseStream{c: c, sub: 1, br: bufio.NewReaderSize(r, sseReadBuffer), data: make([]byte, 0, 1024)}
		b.ReportAllocs()
		b.SetBytes(int64(len(ev)))
		b.ResetTimer()
		if err := s.read(); !errors.Is(err, io.EOF) {
			b.Fatal(err)
		}
	})
}
