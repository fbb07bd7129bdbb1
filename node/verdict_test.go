package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fraiseql/subscriptions/query"
)

// Resume verdicts (docs/protocol.md, "Resume verdict"): a client that asks
// with extensions.resume "verdict" learns, before the replayed events,
// whether its history was complete (recovered) or retention removed events
// after its cursor (gap, then the replay goes on from the first event
// stored and continues live). A client that does not ask sees no change.

const wantRecovered = `{"data":null,"extensions":{"resume":{"verdict":"recovered"}}}`

// subscribeExt sends a graphql-transport-ws subscribe to room r1 with id
// and extensions ext (nil for none).
func (g *gqlClient) subscribeExt(id string, ext map[string]any) {
	g.t.Helper()
	p := map[string]any{"query": roomQuery}
	if ext != nil {
		p["extensions"] = ext
	}
	g.send(map[string]any{"id": id, "type": "subscribe", "payload": p})
}

// verdict reads the next message, which must be a `next` whose payload is
// a resume verdict, and returns it.
func (g *gqlClient) verdict() (raw string, v resumeVerdictWire) {
	g.t.Helper()
	typ, payload := g.read()
	if typ != "next" {
		g.t.Fatalf("got %q %s, want next with the resume verdict", typ, payload)
	}
	return string(payload), decodeVerdict(g.t, payload)
}

// resumeVerdictWire is extensions.resume of a verdict.
type resumeVerdictWire struct {
	Verdict, After, Until string
}

func decodeVerdict(t *testing.T, payload []byte) resumeVerdictWire {
	t.Helper()
	var p struct {
		Data       json.RawMessage
		Extensions map[string]json.RawMessage
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	var v resumeVerdictWire
	if string(p.Data) != "null" || len(p.Extensions) != 1 || json.Unmarshal(p.Extensions["resume"], &v) != nil || v.Verdict == "" {
		t.Fatalf("payload %s is not a resume verdict: data null, extensions {resume} only", payload)
	}
	return v
}

// errorCode reads the next message, which must be an `error`, and returns
// its first code.
func (g *gqlClient) errorCode() string {
	g.t.Helper()
	typ, payload := g.read()
	var errs []struct{ Extensions struct{ Code string } }
	if typ != "error" || json.Unmarshal(payload, &errs) != nil || len(errs) == 0 {
		g.t.Fatalf("got %q %s, want error", typ, payload)
	}
	return errs[0].Extensions.Code
}

// missEvents subscribes, receives events 1..upTo, disconnects, and
// returns the cursor of each event received.
func missEvents(t *testing.T, n *Node, upTo int) []string {
	t.Helper()
	a := dialGQL(t, n)
	a.subscribe("r1", "")
	waitFor(t, "the subscription", func() bool { return n.met.subsOpen.Load() == 1 })
	cursors := make([]string, upTo+1)
	for i := 1; i <= upTo; i++ {
		publishRoom(t, n, "public", i)
		cursors[i] = a.expect(i)
	}
	a.c.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the subscription to end", func() bool { return n.met.subsOpen.Load() == 0 })
	return cursors
}

func resumes(t *testing.T, n *Node, result string) float64 {
	t.Helper()
	return metricValue(t, n, "fraiseql_resumes_total", "result", result)
}

// recovered, with missed events and with none; then live, no duplicate.
func TestResumeVerdictRecovered(t *testing.T) {
	n := startNode(t, nil)
	cursors := missEvents(t, n, 2)
	publishRoom(t, n, "public", 3, 4) // missed

	b := dialGQL(t, n)
	b.subscribeExt("1", map[string]any{"cursor": cursors[2], "resume": "verdict"})
	if raw, _ := b.verdict(); raw != wantRecovered {
		t.Fatalf("verdict = %s, want %s", raw, wantRecovered)
	}
	last := b.expect(3, 4)
	waitFor(t, "the resume to go live", func() bool { return resumes(t, n, "ok") == 1 })
	publishRoom(t, n, "public", 5)
	b.expect(5) // live; a duplicate of 3 or 4 would come first

	// Nothing missed: the verdict, then live.
	c := dialGQL(t, n)
	c.subscribeExt("1", map[string]any{"cursor": last, "resume": "verdict"})
	c.verdict()
	c.expect(5)
	waitFor(t, "the second resume to go live", func() bool { return resumes(t, n, "ok") == 2 })
	publishRoom(t, n, "public", 6)
	c.expect(6)
	b.expect(6)
	if got := resumes(t, n, "gap"); got != 0 {
		t.Fatalf(`fraiseql_resumes_total{result="gap"} = %v, want 0`, got)
	}
}

// eventsStream returns the node's stream, and a context for calls on it.
func eventsStream(t *testing.T, n *Node) (jetstream.Stream, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	st, err := n.cl.JetStream().Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	return st, ctx
}

// keepLastEvents sets the node's stream retention to its last count events.
func keepLastEvents(t *testing.T, n *Node, count int64) {
	t.Helper()
	st, ctx := eventsStream(t, n)
	cfg := st.CachedInfo().Config
	cfg.MaxMsgs = count
	if _, err := n.cl.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// firstStored is the stream's first sequence.
func firstStored(t *testing.T, n *Node) uint64 {
	t.Helper()
	st, ctx := eventsStream(t, n)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.FirstSeq
}

// gap: retention removed events after the cursor. An opted-in client
// learns the range, then gets what is stored and live, with no error and
// no duplicate; a client that did not opt in still gets CURSOR_EXPIRED;
// the verdict's until is a cursor to resume after.
func TestResumeVerdictGap(t *testing.T) {
	n := startNode(t, nil)
	keepLastEvents(t, n, 3)
	cursors := missEvents(t, n, 1)             // event 1 is sequence 1
	publishRoom(t, n, "public", 2, 3, 4, 5, 6) // 1, 2 and 3 are removed

	b := dialGQL(t, n)
	b.subscribeExt("1", map[string]any{"cursor": cursors[1], "resume": "verdict"})
	raw, v := b.verdict()
	if v.Verdict != "gap" || v.After != cursors[1] {
		t.Fatalf("verdict = %s, want gap after the client's cursor", raw)
	}
	if seq, err := n.cl.ParseCursor("public", v.Until); err != nil || seq != firstStored(t, n)-1 {
		t.Fatalf("until = %q: sequence %d, %v; want the last one removed, %d", v.Until, seq, err, firstStored(t, n)-1)
	}
	b.expect(4, 5, 6)

	// Resuming after until: recovered.
	d := dialGQL(t, n)
	d.subscribeExt("1", map[string]any{"cursor": v.Until, "resume": "verdict"})
	if raw, _ := d.verdict(); raw != wantRecovered {
		t.Fatalf("after until: verdict %s, want recovered", raw)
	}
	d.expect(4, 5, 6)

	// Over SSE: the verdict event has no id.
	e := sseOpen(t, n, http.MethodGet, "extensions="+url.QueryEscape(`{"resume":"verdict"}`),
		map[string]string{"Last-Event-ID": cursors[1]})
	if ev := e.event(); ev.event != "next" || ev.id != "" || decodeVerdict(t, []byte(ev.data)).Verdict != "gap" {
		t.Fatalf("SSE: got %+v, want a next event with no id carrying the gap verdict", ev)
	}
	e.expect(4, 5, 6)

	// Not opted in: as before.
	c := dialGQL(t, n)
	c.subscribeExt("1", map[string]any{"cursor": cursors[1]})
	if code := c.errorCode(); code != CodeCursorExpired {
		t.Fatalf("without resume: got %s, want %s", code, CodeCursorExpired)
	}

	waitFor(t, "the resumes to go live", func() bool { return resumes(t, n, "gap") == 2 && resumes(t, n, "ok") == 1 })
	if got := resumes(t, n, "cursor_expired"); got != 1 {
		t.Fatalf(`fraiseql_resumes_total{result="cursor_expired"} = %v, want 1`, got)
	}
	// Live, with no duplicate: 7 comes next to each.
	publishRoom(t, n, "public", 7)
	b.expect(7)
	d.expect(7)
	e.expect(7)
}

// Over SSE, opted in through a GET URL's extensions: the verdict event
// has no id, so Last-Event-ID stays the last event's cursor, and a
// reconnect after it (what an EventSource does) resumes from there.
func TestResumeVerdictSSE(t *testing.T) {
	n := startNode(t, nil)
	cursors := missEvents(t, n, 2)
	publishRoom(t, n, "public", 3)
	ext := "extensions=" + url.QueryEscape(`{"resume":"verdict"}`)

	a := sseOpen(t, n, http.MethodGet, ext, map[string]string{"Last-Event-ID": cursors[2]})
	if ev := a.event(); ev.event != "next" || ev.id != "" || ev.data != wantRecovered {
		t.Fatalf("got %+v, want a next event with no id carrying %s", ev, wantRecovered)
	}
	lastID := a.expect(3)
	a.c.Close()
	waitFor(t, "the subscription to end with its client", func() bool { return n.met.subsOpen.Load() == 0 && n.wss.Conns() == 0 })
	publishRoom(t, n, "public", 4)

	b := sseOpen(t, n, http.MethodGet, ext, map[string]string{"Last-Event-ID": lastID})
	if ev := b.event(); ev.id != "" || ev.data != wantRecovered {
		t.Fatalf("reconnect: got %+v, want the verdict with no id", ev)
	}
	b.expect(4)
	waitFor(t, "the resumed subscription", func() bool { return n.met.subsOpen.Load() == 1 })
	publishRoom(t, n, "public", 5)
	b.expect(5)

	// Without the extension, Last-Event-ID resumes as before: no verdict.
	c := sseOpen(t, n, http.MethodGet, "", map[string]string{"Last-Event-ID": lastID})
	c.expect(4, 5)
}

// The legacy graphql-ws protocol: the verdict is a `data` message.
func TestResumeVerdictLegacy(t *testing.T) {
	n := startNode(t, nil)
	cursors := missEvents(t, n, 1)
	publishRoom(t, n, "public", 2)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+n.Addr()+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	g := &gqlClient{t, c}
	read := func() frame { // skips keep-alives
		t.Helper()
		for {
			if f := g.frame(); f.Type != "ka" {
				return f
			}
		}
	}
	g.send(map[string]any{"type": "connection_init"})
	if f := read(); f.Type != "connection_ack" {
		t.Fatalf("got %q, want connection_ack", f.Type)
	}
	g.send(map[string]any{"id": "1", "type": "start", "payload": map[string]any{
		"query": roomQuery, "extensions": map[string]any{"cursor": cursors[1], "resume": "verdict"}}})
	if f := read(); f.Type != "data" || f.ID != "1" || string(f.Payload) != wantRecovered {
		t.Fatalf("got %q %s, want data with %s", f.Type, f.Payload, wantRecovered)
	}
	if f := read(); f.Type != "data" || !json.Valid(f.Payload) || decodeID(t, f.Payload) != "2" {
		t.Fatalf("got %q %s, want data with event 2", f.Type, f.Payload)
	}
}

func decodeID(t *testing.T, payload []byte) string {
	t.Helper()
	var p struct {
		Data struct{ MessageAdded struct{ ID string } } `json:"data"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	return p.Data.MessageAdded.ID
}

// Refusals stay errors, verdict or not: a resume value that is not
// "verdict", a cursor that is not one. A verdict asked for without a
// cursor is not a resume: no verdict.
func TestResumeVerdictRefusals(t *testing.T) {
	n := startNode(t, nil)
	cursors := missEvents(t, n, 1)
	g := dialGQL(t, n)
	for i, ext := range []map[string]any{
		{"cursor": cursors[1], "resume": "verdicts"},
		{"cursor": cursors[1], "resume": true},
		{"resume": ""},
	} {
		g.subscribeExt(string(rune('a'+i)), ext)
		if code := g.errorCode(); code != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("extensions %v: got %s, want GRAPHQL_VALIDATION_FAILED", ext, code)
		}
	}
	g.subscribeExt("bad", map[string]any{"cursor": "not-a-cursor", "resume": "verdict"})
	if code := g.errorCode(); code != CodeBadCursor {
		t.Fatalf("bad cursor: got %s, want %s", code, CodeBadCursor)
	}
	g.subscribeExt("none", map[string]any{"resume": nil})
	g.subscribeExt("new", map[string]any{"resume": "verdict"})
	waitFor(t, "the subscriptions", func() bool { return n.met.subsOpen.Load() == 2 })
	publishRoom(t, n, "public", 2)
	for range 2 {
		if id, _ := g.next(); id != "2" {
			t.Fatalf("without a cursor: got event %q, want 2 and no verdict", id)
		}
	}
}

// hookSink is a queueSink that runs hook before it queues the at-th frame
// sent with NextWait.
type hookSink struct {
	queueSink
	at, sent int
	hook     func()
}

func (s *hookSink) NextWait(ctx context.Context, p []byte) bool {
	if s.sent++; s.sent == s.at {
		s.hook()
	}
	return s.queueSink.NextWait(ctx, p)
}

// A gap can also open during a replay: live events overflowed what the
// subscription may hold back, and retention removed some before the next
// round read them from the stream. The client is told, with a second
// verdict, and the subscription goes on from the first event stored.
func TestResumeVerdictGapInALaterRound(t *testing.T) {
	n := testNode(t)
	keepLastEvents(t, n, 5)
	publishRoom(t, n, "public", 1, 2, 3) // sequences 1 to 3
	plan, err := n.compiler.Load().Compile(query.Request{Query: roomQuery})
	if err != nil {
		t.Fatal(err)
	}
	sink := &hookSink{queueSink: queueSink{q: make(chan []byte, 32)}, at: 2}
	sub := testSub(sink)
	sub.plan, sub.tenant, sub.subject = plan, "public", "fraiseql.public.chat.r1"
	sub.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	sub.replaying, sub.maxHeld = true, 1
	sink.hook = func() { // as round 1 sends event 1, after the verdict
		publishRoom(t, n, "public", 4, 5, 6, 7, 8, 9, 10) // 6 to 10 stay stored
		sub.deliver(nil, 4, []byte("live 4"))             // held back
		sub.deliver(nil, 5, []byte("live 5"))             // overflows: round 2 reads the stream after 3
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if result := n.replay(ctx, sub, 0, resumeRequest{cursor: "C", verdict: true}); result != resumeGap {
		t.Fatalf("result %q, want %q", result, resumeGap)
	}
	var got []string
	for len(sink.q) > 0 {
		p := <-sink.q
		if id := decodeID(t, p); id != "" {
			got = append(got, id)
			continue
		}
		v := decodeVerdict(t, p)
		got = append(got, v.Verdict)
		if v.Verdict == "gap" {
			after, err1 := n.cl.ParseCursor("public", v.After)
			until, err2 := n.cl.ParseCursor("public", v.Until)
			if after != 3 || until != 5 || err1 != nil || err2 != nil {
				t.Errorf("gap after %d until %d (%v, %v), want after 3 until 5", after, until, err1, err2)
			}
		}
	}
	if want := "recovered 1 2 3 gap 6 7 8 9 10"; strings.Join(got, " ") != want {
		t.Fatalf("sent %q, want %q", strings.Join(got, " "), want)
	}
}
