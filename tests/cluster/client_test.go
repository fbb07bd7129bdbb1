//go:build chaos

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Client bounds.
const (
	dialTimeout     = 10 * time.Second
	maxConnAttempts = 2000 // per client, over the whole test
	maxCodedErrors  = 100  // per client; beyond it the client gives up
	backoffMin      = 50 * time.Millisecond
	backoffMax      = time.Second
)

// clientConfig is how one client connects.
type clientConfig struct {
	room string
	// withText selects the text field too (big events travel whole).
	withText bool
	// first is the endpoint of the first connection; "" picks from
	// endpoints.
	first string
	// endpoints lists where the client may (re)connect.
	endpoints func() []string
	// rcvBuf > 0 sets the socket's receive buffer (bytes), so that a
	// client that stops reading fills its window quickly.
	rcvBuf int
	// sse: the client speaks GraphQL over SSE (sse_client_test.go) and
	// resumes with Last-Event-ID.
	sse bool
}

// recovery is one interruption of a client's subscription: a lost
// connection or a coded error, and how long the client took to be back.
type recovery struct {
	down   time.Time // when the client noticed
	reason string
	had    int64     // the last id received before
	target int64     // the publisher's last acked id when the client was back
	up     time.Time // connection_ack on the new connection (or resubscribe)
	first  time.Time // first event after up
	live   time.Time // first event with id >= target: caught up
}

// segment: the events from index from on came over a connection to ep.
type segment struct {
	from int
	ep   string
}

// client is a resuming graphql-transport-ws client. run owns the fields
// below mu's; the rest is shared with the test under mu.
type client struct {
	id  int
	cfg clientConfig
	pub *publisher

	pauseUntil atomic.Int64 // unix nanos: do not read before then

	mu           sync.Mutex
	ids          []int64   // every event id received, in order, across connections
	at           []int64   // when each was received (unix nanos)
	cursor       string    // the last event's cursor
	segs         []segment // which endpoint delivered ids[from:]
	recs         []*recovery
	errs         map[string]int // coded errors by extensions.code
	closes       map[string]int // connection ends by reason
	dialFailures int
	dropped      int // extensions.dropped reported by the node
	gaveUp       string
}

func newClient(id int, cfg clientConfig, pub *publisher) *client {
	return &client{id: id, cfg: cfg, pub: pub, errs: map[string]int{}, closes: map[string]int{}}
}

// last returns the last id received (0 for none).
func (c *client) last() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) == 0 {
		return 0
	}
	return c.ids[len(c.ids)-1]
}

// pause stops the client reading for d (a client that stops reading).
func (c *client) pause(d time.Duration) { c.pauseUntil.Store(time.Now().Add(d).UnixNano()) }

// run connects, subscribes and reads until ctx is done, reconnecting on
// any failure to the next endpoint and resubscribing with its last cursor.
func (c *client) run(ctx context.Context) {
	var rec *recovery
	backoff := backoffMin
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt >= maxConnAttempts {
			c.giveUp(fmt.Sprintf("%d connection attempts", attempt))
			return
		}
		url := c.pick(attempt)
		if url == "" {
			sleepCtx(ctx, backoff)
			continue
		}
		connect := c.connectWS
		if c.cfg.sse {
			connect = c.connectSSE
		}
		reason, err := connect(ctx, url, rec)
		if err != nil {
			c.mu.Lock()
			c.dialFailures++
			c.mu.Unlock()
			sleepCtx(ctx, jitter(backoff))
			backoff = min(2*backoff, backoffMax)
			continue
		}
		backoff = backoffMin
		if ctx.Err() != nil {
			return
		}
		if reason == "" { // too many coded errors: session gave up
			return
		}
		rec = &recovery{down: time.Now(), reason: reason, had: c.last()}
		c.mu.Lock()
		c.recs = append(c.recs, rec)
		c.closes[reason]++
		c.mu.Unlock()
	}
}

func (c *client) giveUp(why string) {
	c.mu.Lock()
	c.gaveUp = why
	c.mu.Unlock()
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(time.Now().UnixNano()%int64(d/2+1))
}

// pick chooses the endpoint of connection attempt n: the configured first
// one, then the live endpoints in turn, starting from the client's own
// offset so that clients spread over the nodes.
func (c *client) pick(n int) string {
	if n == 0 && c.cfg.first != "" {
		return c.cfg.first
	}
	eps := c.cfg.endpoints()
	if len(eps) == 0 {
		return ""
	}
	return eps[(c.id+n)%len(eps)]
}

// connectWS connects to url and runs a session on it: it returns why the
// session ended, or the error of a connection that could not be made.
func (c *client) connectWS(ctx context.Context, url string, rec *recovery) (string, error) {
	conn, err := c.dial(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.CloseNow()
	c.connected(url)
	return c.session(ctx, conn, rec), nil
}

// connected starts the segment of the events that come from url.
func (c *client) connected(url string) {
	c.mu.Lock()
	c.segs = append(c.segs, segment{from: len(c.ids), ep: url})
	c.mu.Unlock()
}

// dial opens a connection and completes connection_init/ack.
func (c *client) dial(ctx context.Context, url string) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	opts := &websocket.DialOptions{
		Subprotocols:    []string{"graphql-transport-ws"},
		CompressionMode: websocket.CompressionDisabled,
	}
	if c.cfg.rcvBuf > 0 {
		opts.HTTPClient = smallBufferClient(c.cfg.rcvBuf)
	}
	conn, _, err := websocket.Dial(dctx, url, opts)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(4 << 20)
	if err := conn.Write(dctx, websocket.MessageText, []byte(`{"type":"connection_init"}`)); err != nil {
		conn.CloseNow()
		return nil, err
	}
	for range 10 { // an ack, maybe after pings
		_, data, err := conn.Read(dctx)
		if err != nil {
			conn.CloseNow()
			return nil, err
		}
		var m struct{ Type string }
		if err := json.Unmarshal(data, &m); err != nil {
			conn.CloseNow()
			return nil, err
		}
		switch m.Type {
		case "connection_ack":
			return conn, nil
		case "ping":
			_ = conn.Write(dctx, websocket.MessageText, []byte(`{"type":"pong"}`))
		default:
			conn.CloseNow()
			return nil, fmt.Errorf("got %s before connection_ack", m.Type)
		}
	}
	conn.CloseNow()
	return nil, errors.New("no connection_ack")
}

// smallBufferClient dials with SO_RCVBUF set before connecting (so the
// TCP window stays small).
func smallBufferClient(size int) *http.Client {
	d := &net.Dialer{Timeout: dialTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// Wire messages.
type (
	inMessage struct {
		Type    string          `json:"type"`
		ID      string          `json:"id"`
		Payload json.RawMessage `json:"payload"`
	}
	nextPayload struct {
		Data struct {
			MessageAdded *struct {
				ID string `json:"id"`
			} `json:"messageAdded"`
		} `json:"data"`
		Errors     []gqlError `json:"errors"`
		Extensions struct {
			Cursor  string `json:"cursor"`
			Dropped int    `json:"dropped"`
		} `json:"extensions"`
	}
	gqlError struct {
		Message    string `json:"message"`
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	}
)

// session subscribes on conn (with the last cursor, if any) and reads
// until the connection ends. It returns why ("" when the client must stop).
// A coded error ends that subscription only: the client resubscribes on
// the same connection with its cursor, as the error asks.
func (c *client) session(ctx context.Context, conn *websocket.Conn, rec *recovery) string {
	subID := 0
	subscribe := func() error {
		subID++
		c.mu.Lock()
		cursor := c.cursor
		c.mu.Unlock()
		if rec != nil {
			rec.target = c.pub.lastAcked(c.cfg.room)
			rec.up = time.Now()
		}
		fields := "id"
		if c.cfg.withText {
			fields = "id text"
		}
		payload := map[string]any{
			"query":     "subscription($room: ID!) { messageAdded(room: $room) { " + fields + " } }",
			"variables": map[string]any{"room": c.cfg.room},
		}
		if cursor != "" {
			payload["extensions"] = map[string]any{"cursor": cursor}
		}
		msg, _ := json.Marshal(map[string]any{"id": strconv.Itoa(subID), "type": "subscribe", "payload": payload})
		wctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		return conn.Write(wctx, websocket.MessageText, msg)
	}
	if err := subscribe(); err != nil {
		return "subscribe: " + errReason(err)
	}
	for {
		if until := c.pauseUntil.Load(); until != 0 {
			sleepCtx(ctx, time.Until(time.Unix(0, until)))
			c.pauseUntil.CompareAndSwap(until, 0)
		}
		_, data, err := conn.Read(ctx)
		if err != nil {
			return errReason(err)
		}
		now := time.Now()
		var m inMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return "unreadable message"
		}
		switch m.Type {
		case "ping":
			wctx, cancel := context.WithTimeout(ctx, dialTimeout)
			_ = conn.Write(wctx, websocket.MessageText, []byte(`{"type":"pong"}`))
			cancel()
			continue
		case "pong":
			continue
		}
		if m.ID != strconv.Itoa(subID) {
			continue // a late message of an ended subscription
		}
		switch m.Type {
		case "next":
			if bad := c.next(m.Payload, now, rec); bad != "" {
				return bad
			}
		case "error", "complete":
			code := m.Type
			if m.Type == "error" {
				var errs []gqlError
				_ = json.Unmarshal(m.Payload, &errs)
				code = "error"
				if len(errs) > 0 {
					code = errs[0].Extensions.Code
				}
			}
			if !c.countError(code) {
				return ""
			}
			rec = &recovery{down: now, reason: "error " + code, had: c.last()}
			c.mu.Lock()
			c.recs = append(c.recs, rec)
			c.mu.Unlock()
			sleepCtx(ctx, jitter(200*time.Millisecond))
			if err := subscribe(); err != nil {
				return "resubscribe: " + errReason(err)
			}
		}
	}
}

// next records one `next` payload: its id, cursor and dropped count, and
// the recovery's progress. It returns why the payload is wrong, or "".
func (c *client) next(payload []byte, now time.Time, rec *recovery) string {
	var p nextPayload
	if err := json.Unmarshal(payload, &p); err != nil || p.Data.MessageAdded == nil || len(p.Errors) > 0 {
		return fmt.Sprintf("bad next %.200s", payload)
	}
	id, err := strconv.ParseInt(p.Data.MessageAdded.ID, 10, 64)
	if err != nil {
		return fmt.Sprintf("bad id %q", p.Data.MessageAdded.ID)
	}
	c.mu.Lock()
	c.ids = append(c.ids, id)
	c.at = append(c.at, now.UnixNano())
	if p.Extensions.Cursor != "" {
		c.cursor = p.Extensions.Cursor
	}
	c.dropped += p.Extensions.Dropped
	c.mu.Unlock()
	if rec != nil {
		if rec.first.IsZero() {
			rec.first = now
		}
		if rec.live.IsZero() && id >= rec.target {
			rec.live = now
		}
	}
	return ""
}

// countError counts a subscription that ended with code; false: the
// client gives up (too many).
func (c *client) countError(code string) bool {
	c.mu.Lock()
	c.errs[code]++
	n := 0
	for _, v := range c.errs {
		n += v
	}
	c.mu.Unlock()
	if n > maxCodedErrors {
		c.giveUp(fmt.Sprintf("%d coded errors", n))
		return false
	}
	return true
}

// errReason shortens a connection error to a countable reason.
func errReason(err error) string {
	if s := websocket.CloseStatus(err); s != -1 {
		return "close " + strconv.Itoa(int(s))
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	}
	return "eof/closed"
}

// clients runs a set of clients until stop.
type clients struct {
	all    []*client
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startClients starts one client per config, dialing in batches of 100
// (every 100 ms), and stops them at the end of the test.
func startClients(w *world, pub *publisher, cfgs []clientConfig) *clients {
	ctx, cancel := context.WithCancel(context.Background())
	cs := &clients{cancel: cancel}
	w.t.Cleanup(cs.stop)
	for i, cfg := range cfgs {
		c := newClient(i, cfg, pub)
		cs.all = append(cs.all, c)
		cs.wg.Go(func() { c.run(ctx) }) // owned by cs: ends with stop
		if i%100 == 99 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return cs
}

func (cs *clients) stop() {
	cs.cancel()
	cs.wg.Wait()
}
