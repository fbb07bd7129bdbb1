//go:build integration

package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fraiseql/subscriptions/bridges/postgres/pgtest"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

func TestPostgresMigrateIsIdempotent(t *testing.T) {
	h := newHarness(t) // migrated once
	ctx := testCtx(t, 30*time.Second)
	// Concurrent runs serialise on the advisory lock.
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			c, err := pgx.Connect(ctx, h.pgURL)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			errs <- Migrate(ctx, c, h.schema)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := h.count(`SELECT count(*) FROM %s.schema_version`); n != LatestVersion() {
		t.Fatalf("schema_version has %d rows, want %d", n, LatestVersion())
	}
	if id := h.publish("public", "chat.r1", `{"a":1}`); id != 1 {
		t.Fatalf("first publish id = %d", id)
	}
	if err := Migrate(ctx, h.conn, "Bad-Schema"); err == nil {
		t.Fatal("Migrate accepted a bad schema name")
	}
}

func TestPostgresOutboxForwardsInOrder(t *testing.T) {
	h := newHarness(t)
	var ids []int64
	for i := range 20 { // rows written before the bridge starts
		ids = append(ids, h.publish("public", fmt.Sprintf("chat.r%d", i%3), fmt.Sprintf(`{"n":%d}`, i)))
	}
	b, _ := h.runBridge(h.cl, h.config())
	for i := 20; i < 50; i++ { // and while it runs
		ids = append(ids, h.publish([]string{"public", "acme"}[i%2], "chat.r1", fmt.Sprintf(`{"n":%d}`, i)))
	}
	waitFor(t, 20*time.Second, "50 events", func() bool { return streamCount(t, h.cl) == 50 })
	msgs := streamContents(t, h.cl)
	checkExactlyOnceInOrder(t, msgs, "pg-", ids)
	for i, m := range msgs {
		var body struct{ N int }
		if err := json.Unmarshal([]byte(m.data), &body); err != nil || body.N != i {
			t.Fatalf("stream[%d] = %s, want n=%d", i, m.data, i)
		}
		wantSubj := fmt.Sprintf("fraiseql.public.chat.r%d", i%3)
		if i >= 20 {
			wantSubj = "fraiseql." + []string{"public", "acme"}[i%2] + ".chat.r1"
		}
		if m.subject != wantSubj {
			t.Fatalf("stream[%d] subject %s, want %s", i, m.subject, wantSubj)
		}
	}
	waitFor(t, 5*time.Second, "rows marked forwarded", func() bool {
		return h.count(`SELECT count(*) FROM %s.outbox WHERE forwarded_at IS NULL`) == 0
	})
	if n := h.count(`SELECT last_id::int FROM %s.checkpoint WHERE source = 'outbox'`); int64(n) != ids[len(ids)-1] {
		t.Fatalf("checkpoint %d, want %d", n, ids[len(ids)-1])
	}
	waitFor(t, 5*time.Second, "lag 0", func() bool { return testutil.ToFloat64(b.m.Lag.WithLabelValues(sourceOutbox)) == 0 })
	if got := testutil.ToFloat64(b.m.Forwarded.WithLabelValues(sourceOutbox)); got != 50 {
		t.Fatalf("forwarded metric %v", got)
	}
	st := b.Status()
	if len(st) != 1 || st[0].Name != "postgres-outbox" || !st[0].Up || !st[0].Leader {
		t.Fatalf("status %+v", st)
	}
}

// A transaction that took an id and commits after a later id was
// forwarded is still forwarded: nothing is lost to out-of-order commits.
func TestPostgresOutboxLateCommitIsNotLost(t *testing.T) {
	h := newHarness(t)
	h.runBridge(h.cl, h.config())
	ctx := testCtx(t, 30*time.Second)
	slow := pgtest.Connect(t, h.pgURL)
	tx, err := slow.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var early int64
	if err := tx.QueryRow(ctx, `SELECT `+h.schema+`.publish('public', 'late', '{"which":"early id, late commit"}')`).Scan(&early); err != nil {
		t.Fatal(err)
	}
	later := h.publish("public", "late", `{"which":"later id"}`)
	waitFor(t, 10*time.Second, "the later id forwarded", func() bool { return streamCount(t, h.cl) == 1 })
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the early id forwarded", func() bool { return streamCount(t, h.cl) == 2 })
	checkExactlyOnceInOrder(t, streamContents(t, h.cl), "pg-", []int64{later, early})
}

func TestPostgresOutboxPoisonRowsAreSetAside(t *testing.T) {
	h := newHarness(t)
	b, _ := h.runBridge(h.cl, h.config())
	big := `{"blob":"` + strings.Repeat("x", 1<<20) + `"}`
	good1 := h.publish("public", "chat.r1", `{"n":1}`)
	badTenant := h.publish("a.b", "chat.r1", `{"n":2}`)
	notObject := h.publish("public", "chat.r1", `[1]`)
	tooLarge := h.publish("public", "chat.r1", big)
	badTopic := h.publish("public", "chat..r1", `{"n":5}`)
	good2 := h.publish("public", "chat.r1", `{"n":6}`)
	waitFor(t, 10*time.Second, "good rows", func() bool { return streamCount(t, h.cl) == 2 })
	checkExactlyOnceInOrder(t, streamContents(t, h.cl), "pg-", []int64{good1, good2})
	// Poison rows are set aside in the transaction that ends their batch,
	// which may commit just after the good rows reached the stream.
	waitFor(t, 10*time.Second, "4 dead letters", func() bool {
		var n int
		err := h.conn.QueryRow(testCtx(t, 5*time.Second), `SELECT count(*) FROM `+h.schema+`.dead_letter`).Scan(&n)
		return err == nil && n >= 4
	})

	rows, err := h.conn.Query(testCtx(t, 10*time.Second), `SELECT source_id, tenant, reason, length(payload) FROM `+h.schema+`.dead_letter ORDER BY source_id::bigint`)
	if err != nil {
		t.Fatal(err)
	}
	type dl struct {
		ID, Tenant, Reason string
		N                  int
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dl])
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id     int64
		reason string
	}{{badTenant, reasonBadTenant}, {notObject, reasonNotObject}, {tooLarge, reasonTooLarge}, {badTopic, reasonBadTopic}}
	if len(got) != len(want) {
		t.Fatalf("dead_letter = %+v", got)
	}
	for i, w := range want {
		if got[i].ID != fmt.Sprint(w.id) || got[i].Reason != w.reason {
			t.Fatalf("dead_letter[%d] = %+v, want id %d reason %s", i, got[i], w.id, w.reason)
		}
	}
	if got[2].N < 1<<20 {
		t.Fatalf("dead letter payload truncated: %d bytes", got[2].N)
	}
	if n := h.count(`SELECT count(*) FROM %s.outbox WHERE id = ANY($1)`, []int64{badTenant, notObject, tooLarge, badTopic}); n != 0 {
		t.Fatalf("%d poison rows still in the outbox", n)
	}
	if got := testutil.ToFloat64(b.m.Rejected.WithLabelValues(sourceOutbox, reasonTooLarge)); got != 1 {
		t.Fatalf("rejected{payload_too_large} = %v", got)
	}
}

// NATS stops for a while during publishing: the bridge catches up and
// the stream holds every row once, in order.
func TestPostgresOutboxSurvivesNATSOutage(t *testing.T) {
	h := newHarness(t)
	h.runBridge(h.cl, h.config())
	var ids []int64
	for i := range 100 {
		ids = append(ids, h.publish("public", "chat.r1", fmt.Sprintf(`{"n":%d}`, i)))
	}
	waitFor(t, 10*time.Second, "first 100", func() bool { return streamCount(t, h.cl) >= 50 })
	port := h.srv.Addr().(*net.TCPAddr).Port
	clustertest.StopServer(h.srv)
	for i := 100; i < 300; i++ {
		ids = append(ids, h.publish("public", "chat.r1", fmt.Sprintf(`{"n":%d}`, i)))
	}
	time.Sleep(2 * time.Second)            // an outage longer than the lease TTL
	opts := clustertest.Options(h.natsDir) // same port and store: a restart
	opts.Port = port
	h.srv = clustertest.StartServer(t, opts)
	for i := 300; i < 400; i++ {
		ids = append(ids, h.publish("public", "chat.r1", fmt.Sprintf(`{"n":%d}`, i)))
	}
	waitFor(t, 30*time.Second, "400 events", func() bool {
		return h.count(`SELECT count(*) FROM %s.outbox WHERE forwarded_at IS NULL`) == 0
	})
	checkExactlyOnceInOrder(t, streamContents(t, h.cl), "pg-", ids)
}

// The leader is cut off from NATS (as a crashed node would be): the other
// bridge takes over; nothing is lost or stored twice.
func TestPostgresOutboxLeaderFailover(t *testing.T) {
	h := newHarness(t)
	clB := h.openCluster("node-b")
	bA, _ := h.runBridge(h.cl, h.config())
	waitFor(t, 10*time.Second, "A leads", func() bool { return bA.Status()[0].Leader })
	bB, _ := h.runBridge(clB, h.config())

	var ids []int64
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := pgtest.Connect(t, h.pgURL)
	done := make(chan struct{})
	go func() { // publisher, stopped by cancel
		defer close(done)
		for i := 0; i < 600 && ctx.Err() == nil; i++ {
			var id int64
			if err := pub.QueryRow(ctx, `SELECT `+h.schema+`.publish('public', 'chat.r1', $1::jsonb)`, fmt.Sprintf(`{"n":%d}`, i)).Scan(&id); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	waitFor(t, 20*time.Second, "150 forwarded", func() bool { return streamCount(t, clB) >= 150 })
	h.cl.Conn().Close() // A: no renewals, no publishes, no lease release
	waitFor(t, 20*time.Second, "B leads", func() bool { return bB.Status()[0].Leader })
	<-done
	waitFor(t, 30*time.Second, "all forwarded", func() bool {
		return h.count(`SELECT count(*) FROM %s.outbox WHERE forwarded_at IS NULL`) == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 600 {
		t.Fatalf("published %d", len(ids))
	}
	checkExactlyOnceInOrder(t, streamContents(t, clB), "pg-", ids)
	if bA.Status()[0].Leader {
		t.Fatal("A still thinks it leads")
	}
}

func TestPostgresOutboxPrunesForwardedRows(t *testing.T) {
	h := newHarness(t)
	old := h.publish("public", "x", `{}`)
	cfg := h.config()
	cfg.Retention = time.Minute
	// Forwarded long ago: pruned. Forwarded now and pending: kept.
	if _, err := h.conn.Exec(testCtx(t, 5*time.Second), `UPDATE `+h.schema+`.outbox SET forwarded_at = now() - interval '2 minutes' WHERE id = $1`, old); err != nil {
		t.Fatal(err)
	}
	h.runBridge(h.cl, cfg)
	fresh := h.publish("public", "x", `{}`)
	waitFor(t, 10*time.Second, "fresh forwarded", func() bool { return streamCount(t, h.cl) == 1 })
	waitFor(t, 10*time.Second, "old pruned", func() bool { return h.count(`SELECT count(*) FROM %s.outbox WHERE id = $1`, old) == 0 })
	if h.count(`SELECT count(*) FROM %s.outbox WHERE id = $1`, fresh) != 1 {
		t.Fatal("fresh row pruned")
	}
}

func TestPostgresNotifyForwardsEnvelopes(t *testing.T) {
	h := newHarness(t)
	cfg := h.config()
	cfg.NotifyChannels = []string{"fraiseql_orders"}
	b, _ := h.runBridge(h.cl, cfg)
	waitFor(t, 10*time.Second, "notify leader", func() bool { return b.Status()[1].Leader && b.Status()[1].Up })
	time.Sleep(200 * time.Millisecond) // LISTEN issued after connect
	ctx := testCtx(t, 10*time.Second)
	send := func(payload string) {
		if _, err := h.conn.Exec(ctx, `SELECT pg_notify('fraiseql_orders', $1)`, payload); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"id":"e1","event_type":"x","data":{"id":"7"},"channel":"orders.7"}`)
	send(`not json`)
	send(`{"id":"e1","data":{"id":"7"},"channel":"orders.7"}`) // duplicate id
	send(`{"data":{"id":"8"},"tenant_id":"public"}`)
	waitFor(t, 10*time.Second, "2 events", func() bool { return streamCount(t, h.cl) == 2 })
	msgs := streamContents(t, h.cl)
	if msgs[0].subject != "fraiseql.public.orders.7" || msgs[0].msgID != notifyMsgID("public", "orders.7", "e1") || msgs[0].data != `{"id":"7"}` ||
		msgs[1].subject != "fraiseql.public.orders" || msgs[1].msgID != "" {
		t.Fatalf("stream %+v", msgs)
	}
	waitFor(t, 5*time.Second, "dead letter", func() bool {
		return h.count(`SELECT count(*) FROM %s.dead_letter WHERE source = 'notify:fraiseql_orders' AND reason = 'bad_envelope'`) == 1
	})
}

const changeLogDDL = `CREATE TABLE %s.tb_entity_change_log (
	pk_entity_change_log bigserial PRIMARY KEY,
	id uuid NOT NULL DEFAULT gen_random_uuid(),
	fk_customer_org text,
	fk_contact uuid,
	object_type text NOT NULL,
	object_id text NOT NULL,
	modification_type text NOT NULL,
	change_status text,
	object_data jsonb,
	extra_metadata jsonb,
	created_at timestamptz NOT NULL DEFAULT now())`

func TestPostgresChangeLogTailsTable(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t, 30*time.Second)
	if _, err := h.conn.Exec(ctx, fmt.Sprintf(changeLogDDL, h.schema)); err != nil {
		t.Fatal(err)
	}
	ins := func(conn *pgx.Conn, tenant any, typ, id, op string, data any) int64 {
		var pk int64
		if err := conn.QueryRow(ctx, `INSERT INTO `+h.schema+`.tb_entity_change_log (fk_customer_org, object_type, object_id, modification_type, object_data)
			VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING pk_entity_change_log`, tenant, typ, id, op, data).Scan(&pk); err != nil {
			t.Fatal(err)
		}
		return pk
	}
	before := ins(h.conn, "acme", "order", "1", "INSERT", `{"id":"1","status":"new"}`) // before the first run: skipped
	_ = before
	cfg := h.config()
	cfg.ChangeLog = ChangeLogConfig{Enabled: true, Table: h.schema + ".tb_entity_change_log", TopicTemplate: "{entity_type}.{entity_id}", GapTimeout: 5 * time.Second}
	b, _ := h.runBridge(h.cl, cfg)
	waitFor(t, 10*time.Second, "checkpoint", func() bool {
		return h.count(`SELECT count(*) FROM %s.checkpoint WHERE source LIKE 'changelog:%%'`) == 1
	})
	p1 := ins(h.conn, "acme", "order", "1", "UPDATE", `{"id":"1","status":"paid"}`)
	p2 := ins(h.conn, nil, "order", "2", "DELETE", nil)
	p3 := ins(h.conn, "a.b", "order", "3", "INSERT", `{"id":"3"}`) // poison tenant
	// A gap: an id taken by a transaction that commits later.
	slow := pgtest.Connect(t, h.pgURL)
	tx, err := slow.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var p4 int64
	if err := tx.QueryRow(ctx, `INSERT INTO `+h.schema+`.tb_entity_change_log (fk_customer_org, object_type, object_id, modification_type, object_data)
		VALUES ('acme', 'order', '4', 'INSERT', '{"id":"4"}') RETURNING pk_entity_change_log`).Scan(&p4); err != nil {
		t.Fatal(err)
	}
	p5 := ins(h.conn, "acme", "order", "5", "INSERT", `{"id":"5"}`)
	waitFor(t, 10*time.Second, "rows before the gap", func() bool { return streamCount(t, h.cl) == 2 })
	time.Sleep(500 * time.Millisecond)
	if n := streamCount(t, h.cl); n != 2 {
		t.Fatalf("tail moved past an id whose transaction is still open (%d events)", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A rolled-back id is passed once its transaction ended.
	tx2, err := slow.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var p6 int64
	tx2.QueryRow(ctx, `INSERT INTO `+h.schema+`.tb_entity_change_log (object_type, object_id, modification_type) VALUES ('order', '6', 'INSERT') RETURNING pk_entity_change_log`).Scan(&p6)
	tx2.Rollback(ctx)
	p7 := ins(h.conn, "acme", "order", "7", "INSERT", `{"id":"7"}`)
	waitFor(t, 4*time.Second, "all rows", func() bool { return streamCount(t, h.cl) == 5 })
	msgs := streamContents(t, h.cl)
	want := []struct {
		pk            int64
		subject, data string
	}{
		{p1, "fraiseql.acme.order.1", `{"id": "1", "status": "paid"}`},
		{p2, "fraiseql.public.order.2", `{"id":"2"}`},
		{p4, "fraiseql.acme.order.4", `{"id": "4"}`},
		{p5, "fraiseql.acme.order.5", `{"id": "5"}`},
		{p7, "fraiseql.acme.order.7", `{"id": "7"}`},
	}
	for i, w := range want {
		if m := msgs[i]; m.subject != w.subject || m.data != w.data || m.msgID != fmt.Sprintf("pgcl-%d", w.pk) {
			t.Fatalf("stream[%d] = %+v, want %+v", i, m, w)
		}
	}
	if n := h.count(`SELECT count(*) FROM %s.dead_letter WHERE source_id = $1 AND reason = 'bad_tenant'`, fmt.Sprint(p3)); n != 1 {
		t.Fatalf("poison change-log row not in dead_letter")
	}
	if st := b.Status(); len(st) != 2 || st[1].Name != "postgres-changelog" {
		t.Fatalf("status %+v", st)
	}
}

// TestPostgresOutboxTraceParent: publish's optional fourth argument is
// the stored event's traceparent header, so the publishing transaction's
// trace continues on the nodes; an invalid one is dropped (the event is
// not), and a three-argument call stores none.
func TestPostgresOutboxTraceParent(t *testing.T) {
	h := newHarness(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := testCtx(t, 10*time.Second)
	for _, arg := range []string{tp, "not-a-traceparent"} {
		if _, err := h.conn.Exec(ctx, `SELECT `+h.schema+`.publish('public', 'orders.1', '{"id":"1"}', $1)`, arg); err != nil {
			t.Fatal(err)
		}
	}
	h.publish("public", "orders.1", `{"id":"3"}`)
	h.runBridge(h.cl, h.config())
	waitFor(t, 10*time.Second, "3 events", func() bool { return streamCount(t, h.cl) >= 3 })
	msgs := streamContents(t, h.cl)
	if len(msgs) != 3 || msgs[0].trace != tp || msgs[1].trace != "" || msgs[2].trace != "" {
		t.Fatalf("stream holds %+v; want the first with traceparent %s, the others without", msgs, tp)
	}
}
