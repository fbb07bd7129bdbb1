package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
	"github.com/fraiseql/subscriptions/limits"
)

// testIngest is the ingest mode of the package's test nodes:
// FRAISEQL_TEST_INGEST (stream or interest), by default stream. Running
// the package with FRAISEQL_TEST_INGEST=interest runs its tests in
// interest mode.
func testIngest() string { return os.Getenv("FRAISEQL_TEST_INGEST") }

// startNodeIngest starts a node whose cluster uses the given ingest mode.
func startNodeIngest(t *testing.T, ingest string) *Node {
	t.Helper()
	return startNodeOn(t, clustertest.RunServer(t), ingest)
}

// startNodeOn starts a node on the NATS server at url with the given
// ingest mode.
func startNodeOn(t *testing.T, url, ingest string) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cl, err := cluster.Open(ctx, cluster.Config{URL: url, Ingest: ingest}, log)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Schema: testSchema(t), Logger: log, Limits: limits.Config{ConnRatePerIP: -1}}, cl)
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		cl.Close()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background(), ln); err != nil {
		t.Fatal(err)
	}
	return n
}

// gqlClient is a minimal graphql-transport-ws client.
type gqlClient struct {
	t *testing.T
	c *websocket.Conn
}

func dialGQL(t *testing.T, n *Node) *gqlClient {
	t.Helper()
	c, err := wsClient(t, "", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	g := &gqlClient{t, c}
	g.send(map[string]any{"type": "connection_init"})
	if typ, _ := g.read(); typ != "connection_ack" {
		t.Fatalf("got %q, want connection_ack", typ)
	}
	return g
}

func (g *gqlClient) send(v any) {
	g.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.c.Write(ctx, websocket.MessageText, b); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gqlClient) read() (typ string, payload json.RawMessage) {
	g.t.Helper()
	f := g.frame()
	return f.Type, f.Payload
}

// frame is one server message.
type frame struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// frame reads the next server message, failing the test after 10 s.
func (g *gqlClient) frame() frame {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := g.c.Read(ctx)
	if err != nil {
		g.t.Fatal(err)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		g.t.Fatal(err)
	}
	return f
}

func (g *gqlClient) subscribe(room, cursor string) {
	p := map[string]any{"query": `subscription { messageAdded(room: "` + room + `") { id } }`}
	if cursor != "" {
		p["extensions"] = map[string]any{"cursor": cursor}
	}
	g.send(map[string]any{"id": "1", "type": "subscribe", "payload": p})
}

// next reads one event: its message id and cursor.
func (g *gqlClient) next() (id, cursor string) {
	g.t.Helper()
	typ, payload := g.read()
	if typ != "next" {
		g.t.Fatalf("got %q %s, want next", typ, payload)
	}
	var p struct {
		Data struct {
			MessageAdded struct {
				ID string `json:"id"`
			} `json:"messageAdded"`
		} `json:"data"`
		Extensions struct {
			Cursor string `json:"cursor"`
		} `json:"extensions"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		g.t.Fatal(err)
	}
	return p.Data.MessageAdded.ID, p.Extensions.Cursor
}

func (g *gqlClient) expect(ids ...int) (lastCursor string) {
	g.t.Helper()
	for _, want := range ids {
		id, cursor := g.next()
		if id != strconv.Itoa(want) {
			g.t.Fatalf("got message %s, want %d", id, want)
		}
		lastCursor = cursor
	}
	return lastCursor
}

// The publish → subscribe → resume-by-cursor flow is the same in both
// ingest modes; with interest, the node receives only the events of the
// rooms it has subscribers for, and none once they have left.
func TestIngestModesPublishSubscribeResume(t *testing.T) {
	for _, mode := range []string{cluster.IngestStream, cluster.IngestInterest} {
		t.Run(mode, func(t *testing.T) {
			n := startNodeIngest(t, mode)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			publish := func(room string, id int) {
				t.Helper()
				body := `{"id":"` + strconv.Itoa(id) + `","room":"` + room + `","text":"t"}`
				if _, err := n.cl.Publish(ctx, "public", "chat."+room, []byte(body), ""); err != nil {
					t.Fatal(err)
				}
			}
			consumed := func() float64 { return metricValue(t, n, "fraiseql_nats_events_consumed_total") }
			subjects := func() float64 { return metricValue(t, n, "fraiseql_ingest_subjects") }

			a := dialGQL(t, n)
			a.subscribe("r1", "")
			// Counted once Subscribe returns: with interest, its subject's
			// events reach the node from then on.
			waitFor(t, "the subscription", func() bool { return n.met.subsOpen.Load() == 1 })
			for i := 1; i <= 3; i++ {
				publish("r1", i)
				publish("r2", 100+i) // nobody's room
			}
			cursor := a.expect(1, 2)
			a.expect(3)
			a.c.Close(websocket.StatusNormalClosure, "")
			waitFor(t, "the subscription to end", func() bool { return n.met.subsOpen.Load() == 0 })
			publish("r1", 4)
			publish("r1", 5)

			b := dialGQL(t, n)
			b.subscribe("r1", cursor) // resumes after 2
			b.expect(3, 4, 5)
			publish("r1", 6)
			b.expect(6)

			switch mode {
			case cluster.IngestInterest:
				// r1's events while it had a subscriber: 1-3 and 6 (4 and
				// 5 came from the stream, by the resume); never r2's.
				waitFor(t, "r1's events only", func() bool { return consumed() == 4 })
				if subjects() != 1 {
					t.Fatalf("fraiseql_ingest_subjects = %v, want 1", subjects())
				}
				b.c.Close(websocket.StatusNormalClosure, "")
				waitFor(t, "no subject left", func() bool { return subjects() == 0 })
				publish("r1", 7)
				time.Sleep(100 * time.Millisecond)
				if consumed() != 4 {
					t.Fatalf("consumed = %v after the last subscriber left, want 4", consumed())
				}
			default:
				waitFor(t, "every event", func() bool { return consumed() == 9 })
			}
		})
	}
}

// A cursor from a node of one ingest mode resumes on a node of the other,
// both ways: cursors do not depend on the mode, so a deployment can
// change it node by node while clients keep their cursors.
func TestCursorsAcrossIngestModes(t *testing.T) {
	url := clustertest.RunServer(t)
	stream := startNodeOn(t, url, cluster.IngestStream)
	interest := startNodeOn(t, url, cluster.IngestInterest)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	publish := func(id int) {
		t.Helper()
		body := `{"id":"` + strconv.Itoa(id) + `","room":"r1","text":"t"}`
		if _, err := stream.cl.Publish(ctx, "public", "chat.r1", []byte(body), ""); err != nil {
			t.Fatal(err)
		}
	}
	from, to := stream, interest
	next := 1
	cursor := ""
	for range 2 { // stream → interest, then interest → stream
		a := dialGQL(t, from)
		a.subscribe("r1", cursor)
		waitFor(t, "the subscription", func() bool { return from.met.subsOpen.Load() == 1 })
		publish(next)
		publish(next + 1)
		cursor = a.expect(next, next+1)
		a.c.Close(websocket.StatusNormalClosure, "")
		waitFor(t, "the subscription to end", func() bool { return from.met.subsOpen.Load() == 0 })
		publish(next + 2)
		b := dialGQL(t, to)
		b.subscribe("r1", cursor) // resumes after next+1 on the other mode's node
		b.expect(next + 2)
		publish(next + 3)
		cursor = b.expect(next + 3)
		b.c.Close(websocket.StatusNormalClosure, "")
		waitFor(t, "the subscription to end", func() bool { return to.met.subsOpen.Load() == 0 })
		from, to, next = to, from, next+4
	}
}
