package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
func spawnCentrifugo(cfg *Config, logf func(string, ...any)) (_ *node, err error) {
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
	var m centrifugoReply
	if json.Unmarshal(firstLine(data), &m) != nil {
		return "connect: unreadable reply"
	}
	if m.Error != nil {
		return "connect: error " + strconv.Itoa(m.Error.Code)
	}
	if m.ID != 1 || m.Connect == nil {
		return "connect: unexpected reply"
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
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		centrifugoMessage(c, line, now)
	}
}

func centrifugoMessage(c *client, msg []byte, now time.Time) {
	if seq, ts, ok := parsePush(msg); ok {
		c.event(1, seq, ts, 0, now)
		return
	}
	if bytes.Equal(msg, []byte(`{}`)) { // a ping
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		_ = c.ws.Write(ctx, websocket.MessageText, []byte(`{}`))
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

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// centrifugoSink publishes through Centrifugo's HTTP API, one request per
// event on one kept-alive connection: in order, and acknowledged when
// send returns.
type centrifugoSink struct {
	api, key string
	rooms    []string
	hc       *http.Client
	buf      []byte
}

func newCentrifugoSink(api, key string, rooms []string) *centrifugoSink {
	return &centrifugoSink{api: api + "/publish", key: key, rooms: rooms,
		hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}}
}

func (s *centrifugoSink) send(r int, body []byte, _ time.Time) error {
	ch, _ := json.Marshal(s.rooms[r])
	s.buf = append(append(append(append(s.buf[:0], `{"channel":`...), ch...), `,"data":`...), body...)
	s.buf = append(s.buf, '}')
	req, err := http.NewRequest(http.MethodPost, s.api, bytes.NewReader(s.buf))
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var rep struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: %s", resp.Status)
	}
	if json.Unmarshal(b, &rep) != nil {
		return fmt.Errorf("publish: unreadable reply %.80q", b)
	}
	if rep.Error != nil {
		return fmt.Errorf("publish: error %d %s", rep.Error.Code, rep.Error.Message)
	}
	return nil
}

func (s *centrifugoSink) waitAcks(context.Context, time.Duration) bool { return true }

func (s *centrifugoSink) close() { s.hc.CloseIdleConnections() }
