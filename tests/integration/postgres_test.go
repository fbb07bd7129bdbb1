//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/bridges/postgres"
	"github.com/fraiseql/subscriptions/bridges/postgres/pgtest"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/node"
)

const pgRoomQuery = `subscription($room: ID!) { messageAdded(room: $room) { id text } }`

// pgFastEvents lifts the per-subscription event rate for bulk tests.
func pgFastEvents(n *node.Config, _ *cluster.Config) {
	n.Limits.EventRate = limits.Rate(1e6)
	n.Limits.EventBurst = 1e6
}

// pgRunBridge runs a PostgreSQL bridge on cl until the test ends.
func pgRunBridge(t testing.TB, cfg postgres.Config, cl *cluster.Cluster) *postgres.Bridge {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 200 * time.Millisecond
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = time.Second
	}
	b, err := postgres.New(cfg, cl, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // owned by the cleanup below
		defer close(done)
		b.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 10*time.Second, "bridge leads", func() bool {
		for _, s := range b.Status() {
			if !s.Leader || !s.Up {
				return false
			}
		}
		return true
	})
	return b
}

// pgSetup returns the shared PostgreSQL URL and a migrated private schema.
func pgSetup(t testing.TB) (url, schema string, conn *pgx.Conn) {
	t.Helper()
	url = pgtest.URL(t)
	schema = pgtest.Schema(t, url)
	conn = pgtest.Connect(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := postgres.Migrate(ctx, conn, schema); err != nil {
		t.Fatal(err)
	}
	return url, schema, conn
}

func pgExec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// pgStream returns the bodies and Nats-Msg-Ids stored on subject, in order.
func pgStream(t testing.TB, cl *cluster.Cluster, subject string) (bodies, msgIDs []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cons, err := cl.JetStream().OrderedConsumer(ctx, cl.StreamName(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			bodies = append(bodies, string(m.Data()))
			msgIDs = append(msgIDs, m.Headers().Get(jetstream.MsgIDHeader))
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
		if n == 0 {
			return bodies, msgIDs
		}
	}
}

// pgMetric returns the bridge metric name{source}.
func pgMetric(t testing.TB, b *postgres.Bridge, name, source string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(b.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == source {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func TestPostgresOutboxToWebSocket(t *testing.T) {
	url, schema, conn := pgSetup(t)
	nats := startNATS(t)
	pub := startNode(t, nats, nil)
	acme := startNode(t, nats, func(n *node.Config, _ *cluster.Config) { n.Tenant = "acme" })
	pgRunBridge(t, postgres.Config{URL: url, Schema: schema}, pub.cl)

	cp := dialTransport(t, pub.ws)
	cp.subscribe("p", pgRoomQuery, map[string]any{"room": "r1"}, "")
	ca := dialTransport(t, acme.ws)
	ca.subscribe("a", pgRoomQuery, map[string]any{"room": "r1"}, "")
	waitFor(t, 5*time.Second, "subscriptions", func() bool {
		return pub.node.Stats().Subscriptions == 1 && acme.node.Stats().Subscriptions == 1
	})

	pgExec(t, conn, `SELECT `+schema+`.publish('public', 'chat.r1', '{"id":"1","room":"r1","text":"hi","secret":"x"}')`)
	pgExec(t, conn, `SELECT `+schema+`.publish('acme', 'chat.r1', '{"id":"2","room":"r1","text":"for acme"}')`)
	pgExec(t, conn, `SELECT `+schema+`.publish('public', 'chat.r1', '{"id":"3","room":"r1","text":"again"}')`)

	m := cp.expectType("next")
	var r result
	if err := json.Unmarshal(m.Payload, &r); err != nil {
		t.Fatal(err)
	}
	if got := string(r.Data["messageAdded"]); got != `{"id":"1","text":"hi"}` || r.Extensions.Cursor == "" {
		t.Fatalf("public got %s", m.Payload)
	}
	if id, _ := nextMsg(t, cp, "p"); id != "3" {
		t.Fatalf("public's second event is %s, want 3 (acme's must not arrive)", id)
	}
	if id, text := nextMsg(t, ca, "a"); id != "2" || text != "for acme" {
		t.Fatalf("acme got %s %q", id, text)
	}
	cp.expectNothing(200 * time.Millisecond)
	ca.expectNothing(100 * time.Millisecond)
}

func TestPostgresNotifyToWebSocket(t *testing.T) {
	url, schema, conn := pgSetup(t)
	e := newEnv(t)
	pgRunBridge(t, postgres.Config{URL: url, Schema: schema, NotifyChannels: []string{"fraiseql_chat"}}, e.cl)
	c := dialTransport(t, e.ws)
	c.subscribe("1", pgRoomQuery, map[string]any{"room": "n1"}, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	time.Sleep(200 * time.Millisecond) // LISTEN follows the lease by a moment
	env := func(id, channel, text string) string {
		b, _ := json.Marshal(map[string]any{"id": id, "event_type": "message_added", "channel": channel,
			"data": map[string]string{"id": id, "room": "n1", "text": text}, "timestamp": time.Now().Format(time.RFC3339), "correlation_id": "c1"})
		return string(b)
	}
	pgExec(t, conn, `SELECT pg_notify('fraiseql_chat', $1)`, env("e1", "chat.n1", "first"))
	pgExec(t, conn, `SELECT pg_notify('fraiseql_chat', $1)`, env("e1", "chat.n1", "first")) // same id: deduplicated
	pgExec(t, conn, `SELECT pg_notify('fraiseql_chat', $1)`, env("e2", "chat.n1", "second"))
	for _, want := range []string{"first", "second"} {
		if _, text := nextMsg(t, c, "1"); text != want {
			t.Fatalf("got %q, want %q", text, want)
		}
	}
	c.expectNothing(200 * time.Millisecond)
}

func TestPostgresChangeLogToWebSocket(t *testing.T) {
	url, schema, conn := pgSetup(t)
	pgExec(t, conn, `CREATE TABLE `+schema+`.tb_entity_change_log (
		pk_entity_change_log bigserial PRIMARY KEY, id uuid DEFAULT gen_random_uuid(), fk_customer_org text, fk_contact uuid,
		object_type text, object_id text, modification_type text, change_status text, object_data jsonb, extra_metadata jsonb,
		created_at timestamptz DEFAULT now())`)
	e := newEnv(t)
	pgRunBridge(t, postgres.Config{URL: url, Schema: schema, ChangeLog: postgres.ChangeLogConfig{
		Enabled: true, Table: schema + ".tb_entity_change_log", TopicTemplate: "orders.{entity_id}", FromStart: true,
	}}, e.cl)
	c := dialTransport(t, e.ws)
	c.subscribe("o", `subscription { orderUpdated(id: "7") { id status } }`, nil, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	pgExec(t, conn, `INSERT INTO `+schema+`.tb_entity_change_log (fk_customer_org, object_type, object_id, modification_type, object_data)
		VALUES (NULL, 'order', '7', 'UPDATE', '{"id":"7","status":"paid","total":3}'), ('public', 'order', '8', 'UPDATE', '{"id":"8","status":"x"}')`)
	r := c.next("o")
	if got := string(r.Data["orderUpdated"]); got != `{"id":"7","status":"paid"}` {
		t.Fatalf("got %s", got)
	}
	c.expectNothing(200 * time.Millisecond)
}

// PostgreSQL is killed (SIGKILL to every process) twice while a
// publisher writes 2,000 events: every committed event reaches the stream
// and the subscriber exactly once, in order.
func TestPostgresChaosKillDuringPublishing(t *testing.T) {
	const total = 2000
	pg := pgtest.StartPrivate(t)
	schema := "fraiseql"
	e := startNode(t, startNATS(t), pgFastEvents)
	b := pgRunBridge(t, postgres.Config{URL: pg.URL(), Schema: schema, Migrate: true, PollInterval: 100 * time.Millisecond}, e.cl)
	c := dialTransport(t, e.ws)
	c.subscribe("s", pgRoomQuery, map[string]any{"room": "chaos"}, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })

	var committed sync.Map // event number -> true
	progress := make(chan int, total)
	pubDone := make(chan error, 1)
	go func() { // the publisher; ends after total events
		pubDone <- pgPublishAll(pg.URL(), schema, total, &committed, progress)
	}()
	killAt := map[int]bool{400: true, 1300: true}
	for n := range progress {
		if killAt[n] {
			pg.Kill()
			time.Sleep(time.Second)
			pg.Start()
		}
		if n == total {
			break
		}
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}

	if got := pgMetric(t, b, "fraiseql_bridge_reconnects_total", "postgres-outbox"); got < 2 {
		t.Fatalf("bridge reconnected %v times; PostgreSQL was killed twice", got)
	}

	// The subscriber: 0..total-1 in order, once each.
	for i := range total {
		if id, _ := nextMsg(t, c, "s"); id != strconv.Itoa(i) {
			t.Fatalf("subscriber's event %d is %s", i, id)
		}
	}
	c.expectNothing(300 * time.Millisecond)

	// The stream: the committed rows, in id order, once each, "pg-<id>".
	conn := pgtest.Connect(t, pg.URL())
	rows, err := conn.Query(context.Background(), `SELECT id, payload->>'id' FROM `+schema+`.outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var wantIDs []string
	n := 0
	for rows.Next() {
		var id int64
		var ev string
		if err := rows.Scan(&id, &ev); err != nil {
			t.Fatal(err)
		}
		if ev != strconv.Itoa(n) {
			t.Fatalf("outbox row %d holds event %s, want %d (publisher committed twice or skipped)", id, ev, n)
		}
		n++
		wantIDs = append(wantIDs, "pg-"+strconv.FormatInt(id, 10))
	}
	if rows.Err() != nil || n != total {
		t.Fatalf("outbox has %d rows (%v)", n, rows.Err())
	}
	bodies, msgIDs := pgStream(t, e.cl, "fraiseql.public.chat.chaos")
	if len(bodies) != total {
		t.Fatalf("stream has %d events, want %d", len(bodies), total)
	}
	for i := range total {
		var v struct{ ID string }
		json.Unmarshal([]byte(bodies[i]), &v)
		if v.ID != strconv.Itoa(i) || msgIDs[i] != wantIDs[i] {
			t.Fatalf("stream[%d] = %s %s, want event %d %s", i, msgIDs[i], bodies[i], i, wantIDs[i])
		}
	}
}

// pgPublishAll publishes events 0..total-1 through publish(), one
// transaction each, retrying each until it is known to be committed: after
// an error it reconnects and looks the event up before trying again, so
// an event whose commit succeeded but whose reply was lost is not written
// twice. It sends the count of committed events on progress.
func pgPublishAll(url, schema string, total int, committed *sync.Map, progress chan<- int) error {
	defer close(progress)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for i := 0; i < total; {
		if ctx.Err() != nil {
			return fmt.Errorf("publisher stuck at event %d", i)
		}
		if conn == nil || conn.IsClosed() {
			var err error
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			conn, err = pgx.Connect(cctx, url)
			ccancel()
			if err != nil {
				conn = nil
				time.Sleep(50 * time.Millisecond)
				continue
			}
			// Did the last attempt commit?
			var exists bool
			if err := conn.QueryRow(ctx, `SELECT exists(SELECT 1 FROM `+schema+`.outbox WHERE payload->>'id' = $1)`, strconv.Itoa(i)).Scan(&exists); err != nil {
				conn.Close(ctx)
				conn = nil
				continue
			}
			if exists {
				committed.Store(i, true)
				i++
				progress <- i
				continue
			}
		}
		body := fmt.Sprintf(`{"id":"%d","room":"chaos","text":"m%d"}`, i, i)
		if _, err := conn.Exec(ctx, `SELECT `+schema+`.publish('public', 'chat.chaos', $1::jsonb)`, body); err != nil {
			conn.Close(ctx)
			conn = nil // reconnect and check
			continue
		}
		committed.Store(i, true)
		i++
		progress <- i
	}
	return nil
}

// ---- trust: NOTIFY needs no privilege ----

// pgRejected reads fraiseql_bridge_events_rejected_total{source,reason}
// (0 when the series does not exist yet).
func pgRejected(t testing.TB, b *postgres.Bridge, source, reason string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(b.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fraiseql_bridge_events_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["source"] == source && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestPostgresNotifyCannotWriteIntoOtherTenants: any role that can
// connect may NOTIFY a listed channel. On a channel of notify_channels,
// fixed to the bridge's tenant (acme), envelopes naming globex, public or
// an empty tenant reach no one and are counted; acme's own envelope is
// delivered.
func TestPostgresNotifyCannotWriteIntoOtherTenants(t *testing.T) {
	url, schema, conn := pgSetup(t)
	ch := schema + "_events"
	e := authEnv(t)
	b := pgRunBridge(t, postgres.Config{URL: url, Schema: schema, Tenant: "acme", NotifyChannels: []string{ch}}, e.cl)
	vs := victims(t, e)
	alice := dialAs(t, e, token(t, testSecret, "acme", "alice", nil))
	alice.subscribe("c", pgRoomQuery, map[string]any{"room": "n1"}, "")
	waitFor(t, 5*time.Second, "4 subscriptions", func() bool { return e.node.Stats().Subscriptions == 4 })
	time.Sleep(200 * time.Millisecond) // LISTEN follows the lease by a moment

	for _, body := range []string{
		forgedEnvelope("f1", "globex", "users.bob.notifications", map[string]any{"id": "f1", "text": "forged"}),
		forgedEnvelope("f2", "globex", "audit", map[string]any{"id": "f2", "action": "forged"}),
		forgedEnvelope("f3", "public", "audit", map[string]any{"id": "f3", "action": "forged"}),
		`{"id":"f4","event_type":"x","channel":"audit","data":{"id":"f4","action":"empty tenant"},"tenant_id":""}`,
		forgedEnvelope("ok", "acme", "chat.n1", map[string]any{"id": "ok", "room": "n1", "text": "for acme"}),
	} {
		pgExec(t, conn, `SELECT pg_notify($1, $2)`, ch, body)
	}
	if id, text := nextMsg(t, alice, "c"); id != "ok" || text != "for acme" {
		t.Fatalf("acme received %s %q", id, text)
	}
	for _, v := range vs {
		v.expectNothing(100 * time.Millisecond)
	}
	for _, f := range []string{"fraiseql.globex.>", "fraiseql.public.>", "fraiseql.acme.audit"} {
		if n := countSubjects(t, e.cl, f); n != 0 {
			t.Errorf("%d forged events on %s", n, f)
		}
	}
	for reason, want := range map[string]float64{"tenant_not_allowed": 3, "bad_tenant": 1} {
		if got := pgRejected(t, b, "postgres-notify", reason); got != want {
			t.Errorf("rejected{source=postgres-notify,reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

// TestPostgresNotifyIDCannotSuppressOutboxRow: a NOTIFY envelope whose id
// is the outbox's next dedup id ("pg-<n>") does not make the stream drop
// row n: the subscriber gets the row.
func TestPostgresNotifyIDCannotSuppressOutboxRow(t *testing.T) {
	url, schema, conn := pgSetup(t)
	ch := schema + "_events"
	e := newEnv(t)
	pgRunBridge(t, postgres.Config{URL: url, Schema: schema, NotifyChannels: []string{ch}}, e.cl)
	c := dialTransport(t, e.ws)
	c.subscribe("1", pgRoomQuery, map[string]any{"room": "n2"}, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	time.Sleep(200 * time.Millisecond) // LISTEN follows the lease by a moment

	// A fresh schema's outbox starts at id 1.
	pgExec(t, conn, `SELECT pg_notify($1, $2)`, ch,
		forgedEnvelope("pg-1", "", "chat.n2", map[string]any{"id": "notify", "room": "n2", "text": "via notify"}))
	if id, _ := nextMsg(t, c, "1"); id != "notify" {
		t.Fatalf("got %s, want the notification first", id)
	}
	var row int64
	if err := conn.QueryRow(context.Background(), `SELECT `+schema+`.publish('public', 'chat.n2', '{"id":"row","room":"n2","text":"via outbox"}')`).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if row != 1 {
		t.Fatalf("outbox row id %d, want 1: the test cannot aim at it", row)
	}
	if id, text := nextMsg(t, c, "1"); id != "row" || text != "via outbox" {
		t.Fatalf("got %s %q, want outbox row 1", id, text)
	}
}
