package ws

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rawWS is a WebSocket client that frames by hand, so that it can send
// what no library would (a deflate bomb) and see each frame's RSV1.
type rawWS struct {
	t   testing.TB
	c   net.Conn
	br  *bufio.Reader
	ext string // the server's Sec-WebSocket-Extensions

	window []byte // the last 32 KiB inflated, for context takeover
}

// dialRaw upgrades a connection to e offering extensions offer (none if
// "") and graphql-transport-ws.
func dialRaw(t testing.TB, e *env, offer string) *rawWS {
	t.Helper()
	return dialRawProtocol(t, e, offer, SubprotocolTransportWS)
}

// dialRawProtocol is dialRaw offering subprotocol proto.
func dialRawProtocol(t testing.TB, e *env, offer, proto string) *rawWS {
	t.Helper()
	c, err := net.Dial("tcp", e.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: " + proto + "\r\n"
	if offer != "" {
		req += "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := http.ReadResponse(br, nil)
	c.SetReadDeadline(time.Time{})
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", err, resp)
	}
	return &rawWS{t: t, c: c, br: br, ext: resp.Header.Get("Sec-WebSocket-Extensions")}
}

// send writes one masked text message; compressed: p is already deflated
// and RSV1 is set.
func (w *rawWS) send(p []byte, compressed bool) {
	w.t.Helper()
	first := byte(0x81)
	if compressed {
		first |= 0x40
	}
	w.sendFrame(first, p)
}

// sendFrame writes one masked frame whose first byte is first.
func (w *rawWS) sendFrame(first byte, p []byte) {
	w.t.Helper()
	h := []byte{first}
	switch n := len(p); {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n <= 0xFFFF:
		h = binary.BigEndian.AppendUint16(append(h, 0x80|126), uint16(n))
	default:
		h = binary.BigEndian.AppendUint64(append(h, 0x80|127), uint64(n))
	}
	mask := []byte{0x37, 0xfa, 0x21, 0x3d}
	h = append(h, mask...)
	m := make([]byte, len(p))
	for i := range p {
		m[i] = p[i] ^ mask[i%4]
	}
	w.c.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := w.c.Write(append(h, m...)); err != nil {
		w.t.Fatalf("send: %v", err)
	}
}

// sendDeflated sends msg compressed on its own.
func (w *rawWS) sendDeflated(msg []byte) {
	w.t.Helper()
	w.send(deflateMessage(w.t, msg), true)
}

// deflateMessage compresses msg as one permessage-deflate message.
func deflateMessage(t testing.TB, msg []byte) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	if _, err := fw.Write(msg); err != nil {
		t.Fatal(err)
	}
	fw.Flush()
	return bytes.TrimSuffix(b.Bytes(), deflateTail)
}

// frame is one server frame as received.
type rawFrame struct {
	op      byte
	rsv1    bool
	payload []byte // inflated when rsv1
	wire    int    // its bytes on the wire
	head    int    // of which its header
}

// read reads one server frame (the server never fragments), inflating a
// compressed one with the window of the previous ones when takeover.
func (w *rawWS) read(takeover bool) (rawFrame, error) {
	w.c.SetReadDeadline(time.Now().Add(waitFor))
	defer w.c.SetReadDeadline(time.Time{})
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		return rawFrame{}, err
	}
	f := rawFrame{op: h[0] & 0x0f, rsv1: h[0]&0x40 != 0, wire: 2}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(w.br, l[:]); err != nil {
			return f, err
		}
		n, f.wire = uint64(binary.BigEndian.Uint16(l[:])), f.wire+2
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(w.br, l[:]); err != nil {
			return f, err
		}
		n, f.wire = binary.BigEndian.Uint64(l[:]), f.wire+8
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.br, p); err != nil {
		return f, err
	}
	f.head = f.wire
	f.wire += len(p)
	f.payload = p
	if f.rsv1 {
		var dict []byte
		if takeover {
			dict = w.window
		}
		fr := flate.NewReaderDict(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail)), dict)
		out, err := io.ReadAll(fr)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return f, err
		}
		f.payload = out
		if takeover {
			w.window = append(w.window, out...)
			if len(w.window) > 32<<10 {
				w.window = w.window[len(w.window)-32<<10:]
			}
		}
	}
	return f, nil
}

// expectText reads one text message, which must be want.
func (w *rawWS) expectText(want string, takeover bool) rawFrame {
	w.t.Helper()
	f, err := w.read(takeover)
	if err != nil {
		w.t.Fatalf("expecting %.80s: %v", want, err)
	}
	if f.op != 1 || string(f.payload) != want {
		w.t.Fatalf("got op %d %.200s\nwant %.200s", f.op, f.payload, want)
	}
	return f
}

// expectClose reads until a close frame, which must carry code.
func (w *rawWS) expectClose(code CloseCode) {
	w.t.Helper()
	for {
		f, err := w.read(false)
		if err != nil {
			w.t.Fatalf("expecting close %d: %v", code, err)
		}
		if f.op == 8 {
			if len(f.payload) < 2 || CloseCode(binary.BigEndian.Uint16(f.payload)) != code {
				w.t.Fatalf("close frame %q, want code %d", f.payload, code)
			}
			w.sendFrame(0x88, f.payload[:2]) // the closing handshake's answer
			return
		}
	}
}

// subscribe runs connection_init, then subscribes as id "1".
func (w *rawWS) subscribe(e *env) (*fakeSession, *Subscription) {
	w.t.Helper()
	sess := e.session(w.t)
	w.send([]byte(`{"type":"connection_init"}`), false)
	w.expectText(`{"type":"connection_ack"}`, false)
	sess.expect(w.t, "init")
	w.send([]byte(`{"id":"1","type":"subscribe","payload":{"query":"subscription { a }"}}`), false)
	return sess, sess.expect(w.t, "subscribe").sub
}

// ping is a graphql-transport-ws ping of exactly n bytes.
func ping(n int) []byte {
	head, tail := `{"type":"ping","payload":{"p":"`, `"}}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

// TestDeflateBomb: a compressed client message that inflates far past the
// read limit (16 MiB of it in 16 KiB on the wire) is refused with 1009 at
// the limit — the server inflates no more than that — and only its own
// connection closes.
func TestDeflateBomb(t *testing.T) {
	const limit = 4096
	e := startEnv(t, Options{ReadLimit: limit, Compression: CompressionNoContextTakeover}, nil)
	other := dialRaw(t, e, "permessage-deflate")
	_, otherSub := other.subscribe(e)

	var bomb bytes.Buffer
	fw, _ := flate.NewWriter(&bomb, flate.BestCompression)
	fw.Write([]byte(`{"type":"ping","payload":{"p":"`))
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for range 16 {
		fw.Write(chunk)
	}
	fw.Flush()
	attack := dialRaw(t, e, "permessage-deflate; client_max_window_bits")
	if attack.ext == "" {
		t.Fatal("permessage-deflate was not negotiated")
	}
	sess := e.session(t)
	attack.send([]byte(`{"type":"connection_init"}`), false)
	attack.expectText(`{"type":"connection_ack"}`, false)
	sess.expect(t, "init")

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	attack.send(bytes.TrimSuffix(bomb.Bytes(), deflateTail), true)
	attack.expectClose(CloseMessageTooBig)
	sess.expectClosed(t, MessageTooBig)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("%d bytes allocated while refusing the bomb: it was inflated past the limit", got)
	}

	payload := []byte(`{"data":{"a":1}}`)
	if !otherSub.Next(payload) {
		t.Fatal("the other connection refused a frame")
	}
	other.expectText(`{"id":"1","type":"next","payload":{"data":{"a":1}}}`, false)
}

// TestDeflateReadLimit: Options.ReadLimit bounds a compressed message's
// inflated size: limit-1 and limit bytes pass, limit+1 closes with 1009.
func TestDeflateReadLimit(t *testing.T) {
	const limit = 600
	e := startEnv(t, Options{ReadLimit: limit, Compression: CompressionContextTakeover}, nil)
	w := dialRaw(t, e, "permessage-deflate")
	sess := e.session(t)
	w.send([]byte(`{"type":"connection_init"}`), false)
	w.expectText(`{"type":"connection_ack"}`, false)
	for _, n := range []int{limit - 1, limit} {
		msg := ping(n)
		if c := deflateMessage(t, msg); len(c) >= n {
			t.Fatalf("the %d-byte ping compresses to %d bytes: not a test of the inflated size", n, len(c))
		}
		w.sendDeflated(msg)
		// The pong (a control-like message) goes out uncompressed.
		w.expectText(strings.Replace(string(msg), "ping", "pong", 1), false)
	}
	w.sendDeflated(ping(limit + 1))
	w.expectClose(CloseMessageTooBig)
	sess.expectClosed(t, MessageTooBig)
}

// TestNegotiateDeflate: which offer the server takes, and what it answers.
func TestNegotiateDeflate(t *testing.T) {
	const (
		shared   = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
		takeover = "permessage-deflate; client_no_context_takeover"
	)
	for _, tc := range []struct {
		name   string
		mode   Compression
		room   bool
		offers []string
		want   deflateMode
		ext    string
	}{
		{"off", CompressionOff, true, []string{"permessage-deflate"}, deflateOff, ""},
		{"no offer", CompressionContextTakeover, true, nil, deflateOff, ""},
		{"no context takeover", CompressionNoContextTakeover, true, []string{"permessage-deflate; client_max_window_bits"}, deflateShared, shared},
		{"context takeover", CompressionContextTakeover, true, []string{"permessage-deflate; client_max_window_bits"}, deflateContext, takeover},
		{"context takeover, no room", CompressionContextTakeover, false, []string{"permessage-deflate"}, deflateShared, shared},
		{"client asks server_no_context_takeover", CompressionContextTakeover, true, []string{"permessage-deflate; server_no_context_takeover"}, deflateShared, shared},
		{"client_no_context_takeover offered", CompressionContextTakeover, true, []string{"permessage-deflate; client_no_context_takeover"}, deflateContext, takeover},
		{"server_max_window_bits=15", CompressionContextTakeover, true, []string{"permessage-deflate; server_max_window_bits=15"}, deflateContext, takeover},
		{"narrow server window declined", CompressionContextTakeover, true, []string{"permessage-deflate; server_max_window_bits=10"}, deflateOff, ""},
		{"second offer taken", CompressionContextTakeover, true, []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits=12"}, deflateContext, takeover},
		{"offers in two headers", CompressionNoContextTakeover, true, []string{"x-webkit-deflate-frame", "PerMessage-Deflate"}, deflateShared, shared},
		{"unknown parameter", CompressionContextTakeover, true, []string{"permessage-deflate; foo"}, deflateOff, ""},
		{"repeated parameter", CompressionContextTakeover, true, []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, deflateOff, ""},
		{"value where none goes", CompressionContextTakeover, true, []string{"permessage-deflate; server_no_context_takeover=1"}, deflateOff, ""},
		{"bad client window", CompressionContextTakeover, true, []string{"permessage-deflate; client_max_window_bits=16"}, deflateOff, ""},
		{"other extension", CompressionContextTakeover, true, []string{"x-webkit-deflate-frame"}, deflateOff, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, o := range tc.offers {
				h.Add("Sec-WebSocket-Extensions", o)
			}
			mode, ext := negotiateDeflate(h, tc.mode, tc.room)
			if mode != tc.want || ext != tc.ext {
				t.Fatalf("got %d %q, want %d %q", mode, ext, tc.want, tc.ext)
			}
		})
	}
}

// TestDeflateHandshake: over a real upgrade, the answer is the one
// negotiateDeflate chose, and with compression off no offer is taken.
func TestDeflateHandshake(t *testing.T) {
	for _, tc := range []struct {
		mode Compression
		want string
	}{
		{"", ""},
		{CompressionOff, ""},
		{CompressionNoContextTakeover, "permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
		{CompressionContextTakeover, "permessage-deflate; client_no_context_takeover"},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			e := startEnv(t, Options{Compression: tc.mode}, nil)
			w := dialRaw(t, e, "permessage-deflate; client_max_window_bits")
			e.session(t)
			if w.ext != tc.want {
				t.Fatalf("Sec-WebSocket-Extensions %q, want %q", w.ext, tc.want)
			}
		})
	}
}

// TestDeflateContextConnsBound: at most CompressionContextConns
// connections get context takeover; the next one gets none, and a closed
// one's place is taken again.
func TestDeflateContextConnsBound(t *testing.T) {
	const limit = 2
	e := startEnv(t, Options{Compression: CompressionContextTakeover, CompressionContextConns: limit}, nil)
	const takeover = "permessage-deflate; client_no_context_takeover"
	var conns []*rawWS
	for i := range limit + 1 {
		w := dialRaw(t, e, "permessage-deflate")
		e.session(t)
		want := takeover
		if i == limit {
			want += "; server_no_context_takeover"
		}
		if w.ext != want {
			t.Fatalf("connection %d of a limit of %d: %q, want %q", i+1, limit, w.ext, want)
		}
		conns = append(conns, w)
	}
	if n := e.srv.ContextCompressors(); n != limit {
		t.Fatalf("%d connections with a compressor, want %d", n, limit)
	}
	conns[0].c.Close()
	deadline := time.Now().Add(waitFor)
	for e.srv.ContextCompressors() != limit-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections with a compressor after one closed, want %d", e.srv.ContextCompressors(), limit-1)
		}
		time.Sleep(time.Millisecond)
	}
	if w := dialRaw(t, e, "permessage-deflate"); w.ext != takeover {
		t.Fatalf("after a close: %q, want %q", w.ext, takeover)
	}
	e.session(t)
}

// eventPayload is a result like the node's: ~512 bytes of JSON.
func eventPayload(i int) []byte {
	text := strings.Repeat("lorem ipsum dolor sit amet ", 14)
	return []byte(`{"data":{"messageAdded":{"id":"` + strconv.Itoa(i) + `","room":"r1","author":{"id":"u42","name":"Ann"},"text":"` +
		text + `","sentAt":"2026-12-03T14:00:00Z"}},"extensions":{"cursor":"AAAAAAAAAAAAAAAAAAE` + strconv.Itoa(i%10) + `"}}`)
}

// TestDeflateWrites: each mode's `next` messages, through a Fanout and
// through Next, inflate to exactly what an uncompressed connection gets;
// those below the threshold go out as they are, and compressed ones are
// smaller on the wire.
func TestDeflateWrites(t *testing.T) {
	for _, tc := range []struct {
		mode     Compression
		takeover bool
	}{
		{CompressionNoContextTakeover, false},
		{CompressionContextTakeover, true},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			e := startEnv(t, Options{Compression: tc.mode}, nil)
			w := dialRaw(t, e, "permessage-deflate")
			_, sub := w.subscribe(e)
			f := e.srv.NewFanout()
			small := []byte(`{"data":{"a":1}}`)
			want := func(p []byte) string { return `{"id":"1","type":"next","payload":` + string(p) + "}" }
			var plain, wire, heads int
			for i := range 20 {
				p := eventPayload(i)
				if i%2 == 0 {
					sub.Push(f, p)
					f.Routed()
					f.Idle()
				} else if !sub.Next(p) {
					t.Fatal("Next refused")
				}
				fr := w.expectText(want(p), tc.takeover)
				if !fr.rsv1 {
					t.Fatalf("event %d (%d bytes) was not compressed", i, len(p))
				}
				plain += len(want(p))
				wire += fr.wire
				heads += fr.head
				if i == 10 {
					pushFlush(f, sub, small)
					if fr := w.expectText(want(small), tc.takeover); fr.rsv1 {
						t.Fatal("a message below the threshold was compressed")
					}
				}
			}
			t.Logf("%s: %d bytes of messages took %d on the wire", tc.mode, plain, wire)
			if wire >= plain/2 {
				t.Fatalf("%d bytes of messages took %d on the wire", plain, wire)
			}
			// Their frames' headers aside, what was compressed is what the
			// client received.
			in, out := e.srv.CompressionStats()
			if int(in) != plain || int(out) != wire-heads {
				t.Fatalf("CompressionStats %d → %d bytes, want %d → %d", in, out, plain, wire-heads)
			}
		})
	}
}

// TestDeflateLegacy: the legacy graphql-ws protocol's `data` messages are
// compressed the same way, behind their own prefix.
func TestDeflateLegacy(t *testing.T) {
	for _, mode := range []Compression{CompressionNoContextTakeover, CompressionContextTakeover} {
		t.Run(string(mode), func(t *testing.T) {
			e := startEnv(t, Options{Compression: mode, KeepAlive: -1}, nil)
			w := dialRawProtocol(t, e, "permessage-deflate", SubprotocolLegacyWS)
			sess := e.session(t)
			w.send([]byte(`{"type":"connection_init"}`), false)
			w.expectText(`{"type":"connection_ack"}`, false)
			sess.expect(t, "init")
			w.send([]byte(`{"id":"1","type":"start","payload":{"query":"subscription { a }"}}`), false)
			sub := sess.expect(t, "subscribe").sub
			f := e.srv.NewFanout()
			takeover := mode == CompressionContextTakeover
			for i := range 4 {
				p := eventPayload(i)
				pushFlush(f, sub, p)
				f.Routed()
				if fr := w.expectText(`{"type":"data","id":"1","payload":`+string(p)+"}", takeover); !fr.rsv1 {
					t.Fatalf("message %d was not compressed", i)
				}
			}
		})
	}
}

// TestDeflateRealClient: coder/websocket's client, in each of its modes,
// negotiates with each server mode and reads every message (its inflater
// is the standard library's); the client's own compressed messages are
// read too.
func TestDeflateRealClient(t *testing.T) {
	for _, server := range []Compression{CompressionNoContextTakeover, CompressionContextTakeover} {
		for _, clientMode := range []websocket.CompressionMode{websocket.CompressionNoContextTakeover, websocket.CompressionContextTakeover} {
			t.Run(string(server)+"/"+strconv.Itoa(int(clientMode)), func(t *testing.T) {
				e := startEnv(t, Options{Compression: server}, nil)
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				defer cancel()
				c, resp, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{
					Subprotocols:         []string{SubprotocolTransportWS},
					HTTPClient:           e.client,
					CompressionMode:      clientMode,
					CompressionThreshold: 1,
				})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				if resp.Header.Get("Sec-WebSocket-Extensions") == "" {
					t.Fatal("permessage-deflate was not negotiated")
				}
				cl := &client{t: t, c: c}
				sess := e.session(t)
				cl.initTransport()
				sess.expect(t, "init")
				cl.send(`{"id":"1","type":"subscribe","payload":{"query":"subscription { a }"}}`)
				sub := sess.expect(t, "subscribe").sub
				f := e.srv.NewFanout()
				for i := range 50 {
					p := eventPayload(i)
					if i%3 == 0 {
						sub.Next(p)
					} else {
						pushFlush(f, sub, p)
						f.Routed()
					}
					cl.expect(`{"id":"1","type":"next","payload":` + string(p) + "}")
				}
				cl.send(`{"type":"ping","payload":{"n":"` + strings.Repeat("y", 300) + `"}}`)
				cl.expect(`{"type":"pong","payload":{"n":"` + strings.Repeat("y", 300) + `"}}`)
			})
		}
	}
}

// TestAppendStored: a prefix longer than one stored block still inflates.
func TestAppendStored(t *testing.T) {
	for _, n := range []int{0, 1, maxStored - 1, maxStored, maxStored + 1, 3 * maxStored} {
		p := bytes.Repeat([]byte("p"), n)
		b := appendStored(nil, p)
		if len(b) != storedLen(p) {
			t.Fatalf("%d bytes: %d stored, storedLen says %d", n, len(b), storedLen(p))
		}
		out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(b), bytes.NewReader(deflateTail))))
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(out, p) {
			t.Fatalf("%d bytes: inflated %d bytes, err %v", n, len(out), err)
		}
	}
}
