//go:build linux

package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// subscription is the document every subscription sends: the demo schema
// has no timestamp field, so the publisher encodes "<seq>-<unix nanos>"
// into the message id and pads the text.
const subscriptionQuery = `subscription($room: ID!) { messageAdded(room: $room) { id text } }`

const (
	dialTimeout  = 10 * time.Second
	ackTimeout   = 10 * time.Second
	writeTimeout = 5 * time.Second
	// readLimit allows the largest payload plus the envelope.
	readLimit = 2 << 20
)

// clients is the shared state of all connections.
type clients struct {
	proto  protocol
	target string
	rooms  []string
	subs   int
	phases *phases
	// sse, when set, makes every client speak GraphQL over SSE (one
	// request per subscription) instead of proto over a WebSocket.
	sse *sseTarget
	// compress offers permessage-deflate on WebSocket dials.
	compress bool
	// hc dials WebSockets through wireConn, so wire bytes are counted.
	hc *http.Client

	connectTime   *Histogram // dial start → connection_ack
	subscribeTime *Histogram // first subscribe sent → pong after the last

	alive      atomic.Int64 // TCP connections open (SSE: one per subscription)
	compressed atomic.Int64 // WebSocket connections that negotiated permessage-deflate; SSE: gzip response bodies
	wire       counter      // bytes read from the sockets, before any inflate
	dials      atomic.Uint64
	subscribed atomic.Int64   // connections whose subscribe round trip completed
	accepted   atomic.Int64   // subscriptions sent and not refused
	roomSubs   []atomic.Int64 // accepted subscriptions per room
	nexts      atomic.Uint64
	unknown    atomic.Uint64 // messages the tool could not read
	completes  atomic.Uint64 // server-sent complete
	closing    atomic.Bool   // set before the tool closes connections

	mu          sync.Mutex
	connectErrs map[string]int // by reason
	refused     map[string]int // subscribe errors by extensions.code
	closes      map[string]int // unexpected closes by status

	wg sync.WaitGroup // reader goroutines
}

func newClients(proto protocol, target string, rooms []string, subs int, ps *phases) *clients {
	cs := &clients{
		proto:         proto,
		target:        target,
		rooms:         rooms,
		subs:          subs,
		phases:        ps,
		roomSubs:      make([]atomic.Int64, len(rooms)),
		connectTime:   NewHistogram(),
		subscribeTime: NewHistogram(),
		connectErrs:   map[string]int{},
		refused:       map[string]int{},
		closes:        map[string]int{},
	}
	var d net.Dialer
	cs.hc = &http.Client{Transport: &http.Transport{
		// Proxy is nil: loopback only, never a proxy from the environment.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &wireConn{Conn: conn, n: &cs.wire, shard: int(cs.dials.Add(1))}, nil
		},
	}}
	return cs
}

// wireConn counts the bytes read from a connection: what the server put
// on the wire, compressed or not.
type wireConn struct {
	net.Conn
	n     *counter
	shard int
}

func (w *wireConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if n > 0 {
		w.n.add(w.shard, uint64(n))
	}
	return n, err
}

func (cs *clients) count(m map[string]int, key string) {
	cs.mu.Lock()
	m[key]++
	cs.mu.Unlock()
}

func (cs *clients) snapshot(m map[string]int) map[string]int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// client is one simulated client and its subscriptions: one WebSocket
// connection, or (SSE) one HTTP request per subscription. Its fields after
// the atomics are owned by its reader goroutine (SSE: seqs[i] by stream
// i's).
type client struct {
	cs   *clients
	idx  int
	room int
	ws   *websocket.Conn
	// streams are the SSE requests, subscription i+1 on streams[i]; set
	// before their readers start.
	streams []*sseStream
	// sseSubTime is the slowest of the streams' request → response head.
	sseSubTime time.Duration

	subStart atomic.Int64 // unix nanos the subscribes were sent; 0: none

	seqs []SeqTracker // one per subscription, by id-1
	buf  []byte
}

// protocol is how the tool speaks to the server under test over a
// WebSocket: the node's graphql-transport-ws (graphqlWS), or Centrifugo's
// JSON protocol, for measuring both on the same machine. GraphQL over SSE
// is not a protocol on a WebSocket: see sseTarget.
type protocol interface {
	dialOptions() *websocket.DialOptions
	// handshake opens the session on a new connection; it returns "" or a
	// countable reason it failed.
	handshake(ctx context.Context, ws *websocket.Conn) string
	// subscribe sends c's subscriptions and then what proves them live:
	// the reply to it calls c.confirmed.
	subscribe(ctx context.Context, c *client) error
	// handle accounts one message read from c.
	handle(c *client, msg []byte, now time.Time)
}

// dial opens the connection and completes the protocol's handshake. It
// records the connect time; on failure the reason is counted and nil
// returned.
func (cs *clients) dial(ctx context.Context, idx, room int) *client {
	if cs.sse != nil {
		return cs.dialSSE(ctx, idx, room)
	}
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	opts := cs.proto.dialOptions()
	opts.HTTPClient = cs.hc
	if cs.compress {
		// The server may answer with no_context_takeover: coder/websocket
		// then falls back to it.
		opts.CompressionMode = websocket.CompressionContextTakeover
	}
	ws, resp, err := websocket.Dial(dctx, cs.target, opts)
	if err != nil {
		reason := "dial: " + errReason(err)
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			reason = fmt.Sprintf("http %d", resp.StatusCode)
		}
		cs.count(cs.connectErrs, reason)
		return nil
	}
	if headerHasToken(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		cs.compressed.Add(1)
	}
	ws.SetReadLimit(readLimit)
	actx, cancel2 := context.WithTimeout(ctx, ackTimeout)
	defer cancel2()
	if reason := cs.proto.handshake(actx, ws); reason != "" {
		ws.CloseNow()
		cs.count(cs.connectErrs, reason)
		return nil
	}
	cs.connectTime.RecordDuration(time.Since(start), idx)
	c := &client{cs: cs, idx: idx, room: room, ws: ws, seqs: make([]SeqTracker, cs.subs), buf: make([]byte, 0, 512)}
	cs.alive.Add(1)
	cs.wg.Add(1)
	go c.readLoop() // owned by cs.wg; ends when the connection closes
	return c
}

// headerHasToken reports whether the comma-separated header value v
// names token, parameters aside ("permessage-deflate; client_no_context_takeover").
func headerHasToken(v, token string) bool {
	for t := range strings.SplitSeq(v, ",") {
		name, _, _ := strings.Cut(t, ";")
		if strings.EqualFold(strings.TrimSpace(name), token) {
			return true
		}
	}
	return false
}

// subscribe sends c's subscriptions (WebSocket). An SSE client subscribed
// when it connected, one request per subscription: this records that
// round trip (request → response head) instead.
func (cs *clients) subscribe(ctx context.Context, c *client) error {
	if cs.sse != nil {
		if c.subStart.Swap(0) != 0 {
			cs.subscribeTime.RecordDuration(c.sseSubTime, c.idx)
			cs.subscribed.Add(1)
		}
		return nil
	}
	return cs.proto.subscribe(ctx, c)
}

// graphqlWS is the node's protocol, graphql-transport-ws.
type graphqlWS struct{}

func (graphqlWS) dialOptions() *websocket.DialOptions {
	return &websocket.DialOptions{
		Subprotocols:    []string{"graphql-transport-ws"},
		CompressionMode: websocket.CompressionDisabled,
	}
}

// handshake sends connection_init and waits for connection_ack,
// answering pings meanwhile.
func (graphqlWS) handshake(ctx context.Context, ws *websocket.Conn) string {
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"connection_init"}`)); err != nil {
		return "init: " + errReason(err)
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return "ack: " + errReason(err)
		}
		var m struct{ Type string }
		if json.Unmarshal(data, &m) != nil {
			return "ack: unreadable message"
		}
		if m.Type == "ping" {
			_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`))
			continue
		}
		if m.Type != "connection_ack" {
			return "ack: got " + m.Type
		}
		return ""
	}
}

// errReason shortens an error to a countable reason.
func errReason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case websocket.CloseStatus(err) != -1:
		return "close " + strconv.Itoa(int(websocket.CloseStatus(err)))
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// subscribe sends Subs subscribe messages (ids "1".."S"), then a ping: the
// node handles one connection's messages in order and registers a
// subscription before reading the next message, so the pong proves that
// every subscription is live (or refused: an error arrives first).
func (graphqlWS) subscribe(ctx context.Context, c *client) error {
	vars, _ := json.Marshal(c.cs.rooms[c.room])
	var msg []byte
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	for i := 1; i <= c.cs.subs; i++ {
		msg = msg[:0]
		msg = append(msg, `{"id":"`...)
		msg = strconv.AppendInt(msg, int64(i), 10)
		msg = append(msg, `","type":"subscribe","payload":{"query":`...)
		msg = strconv.AppendQuote(msg, subscriptionQuery)
		msg = append(msg, `,"variables":{"room":`...)
		msg = append(msg, vars...)
		msg = append(msg, `}}}`...)
		if err := c.ws.Write(wctx, websocket.MessageText, msg); err != nil {
			return err
		}
		c.sent()
	}
	return c.ws.Write(wctx, websocket.MessageText, []byte(`{"type":"ping"}`))
}

// sent counts one subscription sent (accepted until refused).
func (c *client) sent() {
	c.cs.accepted.Add(1)
	c.cs.roomSubs[c.room].Add(1)
}

// refused counts a subscription the server refused, by code.
func (c *client) refused(code string) {
	c.cs.count(c.cs.refused, code)
	c.cs.accepted.Add(-1)
	c.cs.roomSubs[c.room].Add(-1)
}

// confirmed records the subscribe round trip: every subscription of c
// is live or refused.
func (c *client) confirmed(now time.Time) {
	if start := c.subStart.Swap(0); start != 0 {
		c.cs.subscribeTime.RecordDuration(now.Sub(time.Unix(0, start)), c.idx)
		c.cs.subscribed.Add(1)
	}
}

func (c *client) readLoop() {
	defer c.cs.wg.Done()
	defer c.cs.alive.Add(-1)
	for {
		// Background: no per-read timer (coder/websocket arms one for a
		// cancellable ctx); the tool ends reads by closing the connection.
		_, r, err := c.ws.Reader(context.Background())
		if err == nil {
			c.buf, err = readAll(r, c.buf[:0])
		}
		if err != nil {
			if !c.cs.closing.Load() {
				c.cs.count(c.cs.closes, errReason(err))
			}
			c.ws.CloseNow()
			return
		}
		c.cs.proto.handle(c, c.buf, time.Now())
	}
}

// readAll reads r into buf, reusing its capacity.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

var (
	nextHead = []byte(`{"id":"`)
	nextMid  = []byte(`","type":"next","payload":{"data":{"messageAdded":{"id":"`)
	dropKey  = []byte(`"dropped":`)
)

// parseNext reads the next messages the node writes for our selection,
// {"id":"<sub>","type":"next","payload":{"data":{"messageAdded":{"id":"<seq>-<ts>",…
// without decoding JSON. ok is false for anything else, which then goes
// through encoding/json.
func parseNext(msg []byte) (sub int, seq uint64, ts int64, ok bool) {
	if !bytes.HasPrefix(msg, nextHead) {
		return 0, 0, 0, false
	}
	rest := msg[len(nextHead):]
	sub, rest, ok = cutInt(rest)
	if !ok || !bytes.HasPrefix(rest, nextMid) {
		return 0, 0, 0, false
	}
	if seq, ts, ok = cutEventID(rest[len(nextMid):]); !ok {
		return 0, 0, 0, false
	}
	return sub, seq, ts, true
}

// cutEventID reads `<seq>-<unix nanos>"` at the start of b, the id the
// publisher gave the event, up to its closing quote.
func cutEventID(b []byte) (seq uint64, ts int64, ok bool) {
	s, rest, ok := cutInt(b)
	if !ok || len(rest) == 0 || rest[0] != '-' {
		return 0, 0, false
	}
	t, rest, ok := cutInt(rest[1:])
	if !ok || len(rest) == 0 || rest[0] != '"' {
		return 0, 0, false
	}
	return uint64(s), int64(t), true
}

// cutInt reads leading decimal digits (at most 19).
func cutInt(b []byte) (int, []byte, bool) {
	n, i := 0, 0
	for ; i < len(b) && i < 19 && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int(b[i]-'0')
	}
	return n, b[i:], i > 0
}

// parseEventID splits "<seq>-<unix nanos>".
func parseEventID(id string) (seq uint64, ts int64, ok bool) {
	s, rest, ok := cutInt([]byte(id))
	if !ok || len(rest) < 2 || rest[0] != '-' {
		return 0, 0, false
	}
	t, rest, ok := cutInt(rest[1:])
	if !ok || len(rest) != 0 {
		return 0, 0, false
	}
	return uint64(s), int64(t), true
}

type wireMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

type nextPayload struct {
	Data struct {
		MessageAdded struct {
			ID string `json:"id"`
		} `json:"messageAdded"`
	} `json:"data"`
	Extensions struct {
		Dropped uint64 `json:"dropped"`
	} `json:"extensions"`
}

func (graphqlWS) handle(c *client, msg []byte, now time.Time) {
	if sub, seq, ts, ok := parseNext(msg); ok {
		var dropped uint64
		if bytes.Contains(msg, dropKey) { // the pad is 'x's and the cursor base64: no false hits
			var m struct{ Payload nextPayload }
			if json.Unmarshal(msg, &m) == nil {
				dropped = m.Payload.Extensions.Dropped
			}
		}
		c.event(sub, seq, ts, dropped, now)
		return
	}
	var m wireMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		c.cs.unknown.Add(1)
		return
	}
	switch m.Type {
	case "ping":
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		_ = c.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`))
		cancel()
	case "pong":
		c.confirmed(now)
	case "next":
		var p nextPayload
		sub, err := strconv.Atoi(m.ID)
		if err != nil || json.Unmarshal(m.Payload, &p) != nil {
			c.cs.unknown.Add(1)
			return
		}
		c.decodedEvent(sub, &p, now)
	case "error":
		var errs []struct {
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		}
		code := "unknown"
		if json.Unmarshal(m.Payload, &errs) == nil && len(errs) > 0 && errs[0].Extensions.Code != "" {
			code = errs[0].Extensions.Code
		}
		c.refused(code)
	case "complete":
		c.cs.completes.Add(1)
	default:
		c.cs.unknown.Add(1)
	}
}

// decodedEvent accounts the event of a payload the fast parsers could not
// read, or counts it unreadable.
func (c *client) decodedEvent(sub int, p *nextPayload, now time.Time) {
	seq, ts, ok := parseEventID(p.Data.MessageAdded.ID)
	if !ok {
		c.cs.unknown.Add(1)
		return
	}
	c.event(sub, seq, ts, p.Extensions.Dropped, now)
}

// event accounts one delivered event of subscription sub (1-based).
func (c *client) event(sub int, seq uint64, ts int64, dropped uint64, now time.Time) {
	c.cs.nexts.Add(1)
	if sub < 1 || sub > len(c.seqs) {
		c.cs.unknown.Add(1)
		return
	}
	o, skipped := c.seqs[sub-1].Observe(seq)
	p := c.cs.phases.find(c.room, seq)
	if p == nil {
		return
	}
	if dropped > 0 {
		p.dropped.add(c.idx, dropped)
	}
	switch o {
	case InOrder:
	case Gap:
		p.skipped.add(c.idx, skipped)
	case Duplicate:
		p.dups.add(c.idx, 1)
		return
	case Reorder, TooLate:
		p.reorders.add(c.idx, 1)
	}
	p.delivered.add(c.idx, 1)
	p.latency.Record(now.UnixNano()-ts, c.idx)
}

// close ends the connection (SSE: every request's) now, with no close
// handshake: with thousands of connections, waiting for each one's
// handshake would dominate the run's end.
func (c *client) close() {
	if c.ws != nil {
		c.ws.CloseNow()
	}
	for _, s := range c.streams {
		_ = s.conn.Close()
	}
}
