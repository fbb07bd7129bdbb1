//go:build linux

package loadgen

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// GraphQL over Server-Sent Events, as the node serves it (docs/protocol.md,
// "GraphQL over SSE"; the graphql-sse library's "distinct connections"
// mode): one HTTP/1.1 POST per subscription, Accept: text/event-stream,
// body {query, variables, extensions}; the response is an event stream
//
//	event: next
//	data: {"data":{"messageAdded":{"id":"<seq>-<ts>","text":"…"}},"extensions":{"cursor":"…"}}
//	id: <the same cursor>
//
// and ends with `event: complete`. A simulated client with S
// subscriptions makes S requests, so S TCP connections: that is what an
// application using this mode does. The stream is read as the WebSocket
// clients read frames: no JSON decoding for the node's `next` events, one
// copy of each event's data into a buffer the stream reuses.

// sseReadBuffer is each stream's read buffer: an event of the default
// 512-byte body is about 700 bytes, so a read takes several at once. A
// longer line is assembled in the stream's own buffer.
const sseReadBuffer = 4096

// sseTarget is what the SSE clients send: the node's address and, per
// room, the whole HTTP request.
type sseTarget struct {
	addr string   // host:port
	reqs [][]byte // by room
}

// newSSETarget builds the requests for endpoint (http://host:port/path;
// a ws:// address, as a spawned node prints it, is the same endpoint).
// With gz the requests say Accept-Encoding: gzip (the node's
// ws.sse_compression), and a gzip response body is decoded as it streams.
func newSSETarget(endpoint string, rooms []string, gz bool) (*sseTarget, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "ws":
	default:
		return nil, fmt.Errorf("%q: the SSE endpoint is http://host:port/path", endpoint)
	}
	t := &sseTarget{addr: u.Host, reqs: make([][]byte, len(rooms))}
	acceptEncoding := ""
	if gz {
		acceptEncoding = "Accept-Encoding: gzip\r\n"
	}
	for i, room := range rooms {
		body, err := json.Marshal(map[string]any{
			"query":      subscriptionQuery,
			"variables":  map[string]string{"room": room},
			"extensions": map[string]any{},
		})
		if err != nil {
			return nil, err
		}
		t.reqs[i] = []byte("POST " + u.RequestURI() + " HTTP/1.1\r\n" +
			"Host: " + u.Host + "\r\n" +
			"Accept: text/event-stream\r\n" +
			"Content-Type: application/json\r\n" +
			acceptEncoding +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))
	}
	return t, nil
}

// sseStream is one subscription's request and its event stream. Its
// fields after conn are owned by its reader goroutine.
type sseStream struct {
	c    *client
	sub  int // 1-based, as a WebSocket subscription id
	conn net.Conn

	br        *bufio.Reader
	gzip      bool   // the body is gzip (Content-Encoding): read() decodes it from br
	long      []byte // a line longer than br's buffer
	kind      sseKind
	data      []byte // the event's data lines, joined by "\n"
	hasData   bool
	completed bool   // `complete` arrived: the end is the server's, and normal
	closeNote string // "close <code>" from the node's closing comment
}

type sseKind uint8

const (
	sseMessage sseKind = iota // no event field (or one the tool does not know)
	sseNext
	sseComplete
)

// dialSSE opens c's Subs requests one after another. Connect time is from
// the first dial to the last response head; a client whose request fails
// closes the others and counts as failed, by the first reason.
func (cs *clients) dialSSE(ctx context.Context, idx, room int) *client {
	start := time.Now()
	c := &client{cs: cs, idx: idx, room: room, seqs: make([]SeqTracker, cs.subs), streams: make([]*sseStream, 0, cs.subs)}
	for sub := 1; sub <= cs.subs; sub++ {
		s, took, reason := cs.openStream(ctx, c, sub)
		if reason != "" {
			c.close()
			cs.count(cs.connectErrs, reason)
			return nil
		}
		c.streams = append(c.streams, s)
		c.sseSubTime = max(c.sseSubTime, took)
	}
	cs.connectTime.RecordDuration(time.Since(start), idx)
	for _, s := range c.streams {
		c.sent()
		cs.alive.Add(1)
		cs.wg.Add(1)
		go s.readLoop() // owned by cs.wg; ends when the connection closes
	}
	return c
}

// openStream dials, sends the request and reads the response head. took
// is request written → head read; reason is "" or why it failed.
func (cs *clients) openStream(ctx context.Context, c *client, sub int) (s *sseStream, took time.Duration, reason string) {
	d := net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", cs.sse.addr)
	if err != nil {
		return nil, 0, "dial: " + errReason(err)
	}
	conn := &wireConn{Conn: raw, n: &cs.wire, shard: c.idx}
	fail := func(reason string) (*sseStream, time.Duration, string) {
		_ = raw.Close()
		return nil, 0, reason
	}
	_ = raw.SetDeadline(time.Now().Add(ackTimeout))
	t0 := time.Now()
	if _, err := raw.Write(cs.sse.reqs[c.room]); err != nil {
		return fail("request: " + errReason(err))
	}
	br := bufio.NewReaderSize(conn, sseReadBuffer)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fail("head: " + errReason(err))
	}
	if resp.StatusCode != http.StatusOK {
		return fail("http " + strconv.Itoa(resp.StatusCode))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fail("head: Content-Type " + ct)
	}
	// The node streams until it closes (Connection: close, no length):
	// the events follow the head in br, unframed.
	if resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0 {
		return fail("head: a framed body, not a stream until close")
	}
	gz := false
	switch enc := resp.Header.Get("Content-Encoding"); enc {
	case "":
	case "gzip":
		gz = true
		cs.compressed.Add(1)
	default:
		return fail("head: Content-Encoding " + enc)
	}
	took = time.Since(t0)
	_ = raw.SetDeadline(time.Time{})
	return &sseStream{c: c, sub: sub, conn: conn, br: br, gzip: gz, data: make([]byte, 0, 1024)}, took, ""
}

func (s *sseStream) readLoop() {
	cs := s.c.cs
	defer cs.wg.Done()
	defer cs.alive.Add(-1)
	err := s.read()
	if !cs.closing.Load() && !s.completed {
		reason := s.closeNote
		if reason == "" {
			reason = errReason(err)
		}
		cs.count(cs.closes, reason)
	}
	_ = s.conn.Close()
}

// read interprets the event stream (the HTML standard's "event stream
// interpretation": field lines, comments, a blank line dispatches the
// event) until the connection ends; lines end with "\n" or "\r\n".
//
// A gzip body is decoded here, not in openStream: the gzip header may
// come only with the first event. The decoder reads from br (a
// ByteReader, so it takes no more than the gzip stream), and the node
// flushes after every write, so each event decodes as it arrives.
func (s *sseStream) read() error {
	if s.gzip {
		zr, err := gzip.NewReader(s.br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		zr.Multistream(false)
		s.br = bufio.NewReaderSize(zr, sseReadBuffer)
	}
	for {
		line, err := s.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			s.long = append(s.long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if len(s.long) > readLimit {
					return errors.New("a line over the read limit")
				}
				line, err = s.br.ReadSlice('\n')
				s.long = append(s.long, line...)
			}
			line = s.long
		}
		if err != nil {
			return err
		}
		s.line(line[:len(line)-1], time.Now)
	}
}

// line handles one line without its "\n"; now is called only when an
// event is dispatched.
func (s *sseStream) line(line []byte, now func() time.Time) {
	line, _ = bytes.CutSuffix(line, []byte{'\r'})
	if len(line) == 0 {
		s.dispatch(now())
		return
	}
	if line[0] == ':' {
		s.comment(line[1:])
		return
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "event":
		switch string(value) {
		case "next":
			s.kind = sseNext
		case "complete":
			s.kind = sseComplete
		default:
			s.kind = sseMessage
		}
	case "data":
		if s.hasData {
			s.data = append(s.data, '\n')
		}
		s.data = append(s.data, value...)
		s.hasData = true
	}
	// "id" is the cursor, which the data carries too; "retry" and
	// unknown fields do not matter here.
}

// closeComment is how the node says why it ends a stream it did not
// complete: ": close <WebSocket close code> <reason>".
var closeComment = []byte(" close ")

func (s *sseStream) comment(text []byte) {
	if rest, ok := bytes.CutPrefix(text, closeComment); ok {
		code, _, _ := bytes.Cut(rest, []byte{' '})
		s.closeNote = "close " + string(code)
	}
}

// dispatch accounts the event read so far. An event with no data line is
// not dispatched, as the standard says.
func (s *sseStream) dispatch(now time.Time) {
	kind, hasData := s.kind, s.hasData
	s.kind, s.hasData = sseMessage, false
	data := s.data
	s.data = s.data[:0]
	if !hasData {
		return
	}
	cs := s.c.cs
	switch kind {
	case sseNext:
		s.c.sseNext(s.sub, data, now)
	case sseComplete:
		s.completed = true
		cs.completes.Add(1)
	default:
		cs.unknown.Add(1)
	}
}

// sseDataHead is how the node's `next` data for our selection starts.
var sseDataHead = []byte(`{"data":{"messageAdded":{"id":"`)

// sseNext accounts a `next` event of subscription sub: an event, or the
// subscription's refusal ({"errors":[…]}, followed by complete).
func (c *client) sseNext(sub int, data []byte, now time.Time) {
	if rest, ok := bytes.CutPrefix(data, sseDataHead); ok {
		if seq, ts, ok := cutEventID(rest); ok {
			var dropped uint64
			if bytes.Contains(data, dropKey) { // the pad is 'x's and the cursor base64: no false hits
				var p nextPayload
				if json.Unmarshal(data, &p) == nil {
					dropped = p.Extensions.Dropped
				}
			}
			c.event(sub, seq, ts, dropped, now)
			return
		}
	}
	var p struct {
		nextPayload
		Errors []struct {
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		c.cs.unknown.Add(1)
		return
	}
	if len(p.Errors) > 0 {
		code := p.Errors[0].Extensions.Code
		if code == "" {
			code = "unknown"
		}
		c.refused(code)
		return
	}
	c.decodedEvent(sub, &p.nextPayload, now)
}
