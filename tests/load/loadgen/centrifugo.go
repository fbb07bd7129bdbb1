//go:build linux

package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Centrifugo is the reference the performance targets are set against.
// With -server centrifugo the tool drives a Centrifugo server the same
// way it drives the node: the same connections, rooms (channels), event
// bodies, pacing, sequence checks and /proc readings. Only the protocol
// (Centrifugo's JSON client protocol) and the publish path (its HTTP
// API, where the node's is JetStream) differ. The tool never builds
// Centrifugo: give it a binary (-centrifugo-bin) or a running server.

// centrifugoAPIKey is the HTTP API key of a Centrifugo the tool spawns.
const centrifugoAPIKey = "fraiseql-loadgen"

// centrifugoConfig is a spawned Centrifugo's configuration: defaults,
// but for what the run needs (anonymous clients that may subscribe to
// any channel without a namespace, the HTTP API with a key, metrics and
// a health check, quiet logs). Channels keep no history, as by default.
func centrifugoConfig(port int) ([]byte, error) {
	return json.MarshalIndent(map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "error"},
		"client": map[string]any{
			"allow_anonymous_connect_without_token": true,
			// The tool's WebSocket client sends no Origin header.
			"allowed_origins": []string{"*"},
		},
		"channel": map[string]any{"without_namespace": map[string]any{
			"allow_subscribe_for_anonymous": true,
			"allow_subscribe_for_client":    true,
		}},
		"http_api":    map[string]any{"key": centrifugoAPIKey},
		"prometheus":  map[string]any{"enabled": true},
		"health":      map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
	}, "", "  ")
}

// spawnCentrifugo starts cfg.CentrifugoBin on a free loopback port with
// centrifugoConfig; the run then waits for its /health.
func spawnCentrifugo(_ context.Context, cfg *Config, logf func(string, ...any)) (_ *node, err error) {
	n, err := newChild(cfg, "fraiseql-loadgen-centrifugo-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.stop()
		}
	}()
	port, err := freePort()
	if err != nil {
		return n, err
	}
	conf, err := centrifugoConfig(port)
	if err != nil {
		return n, err
	}
	confPath := filepath.Join(n.dir, "config.json")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return n, err
	}
	if _, err := n.start(cfg.CentrifugoBin, []string{"--config", confPath}, "centrifugo.log", false); err != nil {
		return n, err
	}
	base := "127.0.0.1:" + strconv.Itoa(port)
	n.ws, n.api, n.apiKey = "ws://"+base+"/connection/websocket", "http://"+base+"/api", centrifugoAPIKey
	logf("centrifugo pid %d at %s (log %s)", n.pid, n.ws, n.logf.Name())
	return n, nil
}

// freePort returns a loopback port that was free a moment ago. Another
// process could take it before the server binds it; the run then fails at
// start, saying so, rather than measuring something else.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// centrifugoProto is Centrifugo's JSON client protocol: commands
// {"id":N,"connect":{}} and {"id":N,"subscribe":{"channel":C}} with
// replies carrying the same id, pushes {"push":{"channel":C,"pub":{"data":…}}},
// pings {} answered with {}; one frame may hold several messages, one
// per line.
type centrifugoProto struct{}

func (centrifugoProto) dialOptions() *websocket.DialOptions {
	return &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled}
}

func (centrifugoProto) handshake(ctx context.Context, ws *websocket.Conn) string {
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"id":1,"connect":{}}`)); err != nil {
		return "connect: " + errReason(err)
	}
	_, data, err := ws.Read(ctx)
	if err != nil {
		return "connect: " + errReason(err)
	}
	reply, rest, _ := bytes.Cut(data, newline)
	var m centrifugoReply
	if json.Unmarshal(reply, &m) != nil {
		return "connect: unreadable reply"
	}
	if m.Error != nil {
		return "connect: error " + strconv.Itoa(m.Error.Code)
	}
	if m.ID != 1 || m.Connect == nil {
		return "connect: unexpected reply"
	}
	// The rest of the frame can only be pings (nothing is subscribed yet).
	for line := range lines(rest) {
		if bytes.Equal(line, centrifugoPing) {
			if err := ws.Write(ctx, websocket.MessageText, centrifugoPing); err != nil {
				return "connect: pong: " + errReason(err)
			}
		}
	}
	return ""
}

// subscribe sends one subscribe command (id 2): Centrifugo refuses a
// second subscription to the same channel on a connection, so the tool
// runs it with one subscription per connection. Its reply confirms it.
func (centrifugoProto) subscribe(ctx context.Context, c *client) error {
	ch, _ := json.Marshal(c.cs.rooms[c.room])
	msg := append(append([]byte(`{"id":2,"subscribe":{"channel":`), ch...), `}}`...)
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := c.ws.Write(wctx, websocket.MessageText, msg); err != nil {
		return err
	}
	c.sent()
	return nil
}

type centrifugoReply struct {
	ID    int `json:"id"`
	Error *struct {
		Code int `json:"code"`
	} `json:"error"`
	Connect   json.RawMessage `json:"connect"`
	Subscribe json.RawMessage `json:"subscribe"`
}

var pushHead = []byte(`{"push":{"channel":"`)

// pubID is where the event's id starts in a push: the body the tool
// publishes begins with it ({"id":"<seq>-<ts>",…).
var pubID = []byte(`"pub":{"data":{"id":"`)

func (centrifugoProto) handle(c *client, frame []byte, now time.Time) {
	for line := range lines(frame) {
		centrifugoMessage(c, line, now)
	}
}

var newline = []byte{'\n'}

// centrifugoPing is a server ping, and the client's answer to it.
var centrifugoPing = []byte(`{}`)

// lines yields the messages of a frame, one per line (none for an empty
// frame, and no empty one after a final newline).
func lines(frame []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(frame) > 0 {
			line, rest, _ := bytes.Cut(frame, newline)
			if !yield(line) {
				return
			}
			frame = rest
		}
	}
}

func centrifugoMessage(c *client, msg []byte, now time.Time) {
	if seq, ts, ok := parsePush(msg); ok {
		c.event(1, seq, ts, 0, now)
		return
	}
	if bytes.Equal(msg, centrifugoPing) {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		_ = c.ws.Write(ctx, websocket.MessageText, centrifugoPing)
		cancel()
		return
	}
	var m centrifugoReply
	if json.Unmarshal(msg, &m) != nil || m.ID != 2 {
		c.cs.unknown.Add(1)
		return
	}
	if m.Error != nil {
		c.refused("centrifugo " + strconv.Itoa(m.Error.Code))
	}
	c.confirmed(now)
}

// parsePush reads the sequence and timestamp of a push the tool's
// publisher caused, without decoding JSON.
func parsePush(msg []byte) (seq uint64, ts int64, ok bool) {
	if !bytes.HasPrefix(msg, pushHead) {
		return 0, 0, false
	}
	i := bytes.Index(msg, pubID)
	if i < 0 {
		return 0, 0, false
	}
	rest := msg[i+len(pubID):]
	s, rest, ok := cutInt(rest)
	if !ok || len(rest) == 0 || rest[0] != '-' {
		return 0, 0, false
	}
	t, rest, ok := cutInt(rest[1:])
	if !ok || len(rest) == 0 || rest[0] != '"' {
		return 0, 0, false
	}
	return uint64(s), int64(t), true
}

// centrifugoSink publishes through Centrifugo's HTTP API from one
// goroutine, in order: an event alone with /api/publish, or, when several
// are waiting (the server is slower than the rate), all of them, up to
// maxBatch, in one /api/batch request, whose commands Centrifugo runs in
// order. Like the node's JetStream publishes, sends are asynchronous, so
// that one request's round trip does not bound the rate: at most
// maxInflight wait behind the request in flight, and a send finding them
// all waiting waits for room until its deadline.
type centrifugoSink struct {
	api, key string
	channels [][]byte // per room, its name as a JSON string
	hc       *http.Client
	// failed is told of events the server refused; unconfirmed of those
	// whose request was sent but got no reply (the server may have taken
	// them: they stay expected).
	failed, unconfirmed func(r int, body []byte, err error)
	waitingMax          atomic.Int64 // most events waiting in queue since the last takeWaitingMax

	queue   chan pubEvent
	pending atomic.Int64 // sent and not yet acknowledged
	done    chan struct{}
	// ctx ends the requests at close. A request has no timeout of its
	// own: one that timed out while the server still ran it would let
	// the next run beside it, out of order. An overloaded server's
	// replies can take many seconds.
	ctx    context.Context
	cancel context.CancelFunc
	grace  time.Duration // closeGrace
}

type pubEvent struct {
	room int
	body []byte
}

const maxBatch = 256

func newCentrifugoSink(ctx context.Context, api, key string, rooms []string, maxInflight int, failed, unconfirmed func(int, []byte, error)) *centrifugoSink {
	s := &centrifugoSink{api: api, key: key, failed: failed, unconfirmed: unconfirmed,
		hc:    &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}},
		queue: make(chan pubEvent, maxInflight),
		done:  make(chan struct{}),
		grace: closeGrace,
	}
	for _, r := range rooms {
		ch, _ := json.Marshal(r)
		s.channels = append(s.channels, ch)
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	go s.run() // ends when close closes the queue
	return s
}

func (s *centrifugoSink) send(r int, body []byte, deadline time.Time) error {
	s.pending.Add(1)
	defer s.noteWaiting()
	select {
	case s.queue <- pubEvent{r, body}:
		return nil
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case s.queue <- pubEvent{r, body}:
		return nil
	case <-t.C:
		s.pending.Add(-1)
		return errors.New("publish: maxInflight publishes unacknowledged until the deadline")
	}
}

func (s *centrifugoSink) noteWaiting() {
	n := int64(len(s.queue))
	for {
		m := s.waitingMax.Load()
		if n <= m || s.waitingMax.CompareAndSwap(m, n) {
			return
		}
	}
}

// takeWaitingMax returns the most events that waited in the tool's queue
// at once since the last call: their wait for the server to take the
// request before them is part of their latency.
func (s *centrifugoSink) takeWaitingMax() int64 { return s.waitingMax.Swap(0) }

func (s *centrifugoSink) run() {
	defer close(s.done)
	var batch []pubEvent
	var buf []byte
	for ev := range s.queue {
		batch = append(batch[:0], ev)
	more:
		for len(batch) < maxBatch {
			select {
			case ev, ok := <-s.queue:
				if !ok {
					break more
				}
				batch = append(batch, ev)
			default:
				break more
			}
		}
		buf = s.publish(batch, buf)
		s.pending.Add(-int64(len(batch)))
	}
}

// publish sends batch in one request and counts what failed.
func (s *centrifugoSink) publish(batch []pubEvent, buf []byte) []byte {
	cmd := func(buf []byte, ev pubEvent) []byte {
		buf = append(append(append(append(buf, `{"channel":`...), s.channels[ev.room]...), `,"data":`...), ev.body...)
		return append(buf, '}')
	}
	path := "/publish"
	buf = buf[:0]
	if len(batch) == 1 {
		buf = cmd(buf, batch[0])
	} else {
		path = "/batch"
		buf = append(buf, `{"commands":[`...)
		for i, ev := range batch {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = cmd(append(buf, `{"publish":`...), ev)
			buf = append(buf, '}')
		}
		buf = append(buf, `]}`...)
	}
	errs, sent, err := s.post(path, buf, len(batch))
	for i, ev := range batch {
		switch {
		case err != nil && sent:
			s.unconfirmed(ev.room, ev.body, err)
		case err != nil:
			s.failed(ev.room, ev.body, err)
		case errs[i] != nil:
			s.failed(ev.room, ev.body, errs[i])
		}
	}
	return buf
}

// apiError is the error of a Centrifugo API reply.
type apiError *struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// post sends one API request and returns, per command, its error, if
// any; err when the request as a whole failed, with sent true when it
// may have reached the server all the same (no reply, or a cut one).
func (s *centrifugoSink) post(path string, body []byte, n int) (errs []error, sent bool, err error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.api+path, bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("X-API-Key", s.key)
	req.Header.Set("Content-Type", "application/json")
	if s.ctx.Err() != nil {
		return nil, false, s.ctx.Err() // not sent
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, true, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, true, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("%s: %s", path, resp.Status)
	}
	var rep struct {
		Error   apiError `json:"error"`
		Replies []struct {
			Publish *struct {
				Error apiError `json:"error"`
			} `json:"publish"`
			Error apiError `json:"error"`
		} `json:"replies"`
	}
	if json.Unmarshal(b, &rep) != nil {
		return nil, true, fmt.Errorf("%s: unreadable reply %.80q", path, b)
	}
	if rep.Error != nil {
		return nil, false, fmt.Errorf("%s: error %d %s", path, rep.Error.Code, rep.Error.Message)
	}
	errs = make([]error, n)
	if path == "/batch" {
		if len(rep.Replies) != n {
			return nil, true, fmt.Errorf("%s: %d replies to %d commands", path, len(rep.Replies), n)
		}
		for i, r := range rep.Replies {
			switch {
			case r.Error != nil:
				errs[i] = fmt.Errorf("%s: error %d %s", path, r.Error.Code, r.Error.Message)
			case r.Publish == nil:
				errs[i] = fmt.Errorf("%s: a reply with no publish result", path)
			case r.Publish.Error != nil:
				errs[i] = fmt.Errorf("%s: error %d %s", path, r.Publish.Error.Code, r.Publish.Error.Message)
			}
		}
	}
	return errs, false, nil
}

// waitAcks waits, bounded by d, until every send so far is answered.
func (s *centrifugoSink) waitAcks(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for s.pending.Load() > 0 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// closeGrace is how long close lets queued publishes go on.
const closeGrace = 10 * time.Second

// close ends the sender: what is queued goes on for closeGrace, then
// the request in flight is cancelled and the rest fail at once.
func (s *centrifugoSink) close() {
	close(s.queue)
	t := time.NewTimer(s.grace)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.cancel()
		<-s.done
	}
	s.cancel()
	s.hc.CloseIdleConnections()
}
