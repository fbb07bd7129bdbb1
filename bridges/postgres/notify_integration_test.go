//go:build integration

package postgres

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// NOTIFY needs no privilege: whoever can connect to the database can send
// these. The tests below are what such a role tries.

// notifyEnvelope is a FraiseQL envelope; tenant "-" leaves tenant_id out.
func notifyEnvelope(id, tenant, topic string, data map[string]any) string {
	m := map[string]any{"id": id, "event_type": "x", "channel": topic, "data": data,
		"timestamp": "2024-05-01T12:00:00Z", "correlation_id": nil}
	if tenant != "-" {
		m["tenant_id"] = tenant
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// notifyChannel is a NOTIFY channel no other test listens on.
func (h *harness) notifyChannel() string { return h.schema + "_n" }

// runNotifyBridge runs a bridge with cfg and waits until its NOTIFY source
// listens.
func (h *harness) runNotifyBridge(cfg Config) *Bridge {
	h.t.Helper()
	b, _ := h.runBridge(h.cl, cfg)
	waitFor(h.t, 10*time.Second, "notify leader", func() bool {
		for _, s := range b.Status() {
			if s.Name == sourceNotify {
				return s.Leader && s.Up
			}
		}
		return false
	})
	time.Sleep(200 * time.Millisecond) // LISTEN follows the lease by a moment
	return b
}

func (h *harness) notify(channel, payload string) {
	h.t.Helper()
	if _, err := h.conn.Exec(testCtx(h.t, 10*time.Second), `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		h.t.Fatal(err)
	}
}

func notifyRejected(b *Bridge, reason string) float64 {
	return testutil.ToFloat64(b.m.Rejected.WithLabelValues(sourceNotify, reason))
}

// subjectsOf lists the subjects of msgs.
func subjectsOf(msgs []stored) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.subject
	}
	return out
}

// TestPostgresNotifyEnvelopeCannotChooseItsTenant: a source configured
// for tenant acme (notify_channels, fixed to bridges.postgres.tenant)
// refuses envelopes that name another tenant, or an empty one, instead of
// writing into them.
func TestPostgresNotifyEnvelopeCannotChooseItsTenant(t *testing.T) {
	h := newHarness(t)
	ch := h.notifyChannel()
	cfg := h.config()
	cfg.Tenant = "acme"
	cfg.NotifyChannels = []string{ch}
	b := h.runNotifyBridge(cfg)

	h.notify(ch, notifyEnvelope("f1", "globex", "users.bob.notifications", map[string]any{"id": "f1", "text": "forged"}))
	h.notify(ch, notifyEnvelope("f2", "public", "audit", map[string]any{"id": "f2", "action": "forged"}))
	h.notify(ch, notifyEnvelope("f3", "", "audit", map[string]any{"id": "f3", "action": "empty tenant"}))
	h.notify(ch, notifyEnvelope("ok1", "-", "orders.7", map[string]any{"id": "7"}))
	h.notify(ch, notifyEnvelope("ok2", "acme", "orders.8", map[string]any{"id": "8"}))
	// Notifications are handled in order: once ok2 is stored, every
	// refusal before it is counted.
	waitFor(t, 10*time.Second, "acme's 2 events", func() bool { return streamCount(t, h.cl) >= 2 })
	msgs := streamContents(t, h.cl)
	if got := subjectsOf(msgs); len(got) != 2 || got[0] != "fraiseql.acme.orders.7" || got[1] != "fraiseql.acme.orders.8" {
		t.Fatalf("stream holds %v, want acme's orders.7 and orders.8 only", got)
	}
	for reason, want := range map[string]float64{reasonTenantDenied: 2, reasonBadTenant: 1} {
		if got := notifyRejected(b, reason); got != want {
			t.Errorf("rejected{source=postgres-notify,reason=%s} = %v, want %v", reason, got, want)
		}
	}
	waitFor(t, 5*time.Second, "3 dead letters", func() bool {
		return h.count(`SELECT count(*) FROM %s.dead_letter WHERE source = $1`, "notify:"+ch) == 3
	})
	if n := h.count(`SELECT count(*) FROM %s.dead_letter WHERE source = $1 AND reason = 'tenant_not_allowed' AND tenant = 'globex'`, "notify:"+ch); n != 1 {
		t.Errorf("dead_letter has %d tenant_not_allowed rows for globex, want 1", n)
	}
}

// TestPostgresNotifyIDCannotSuppressOutboxRow: a NOTIFY envelope whose id
// is "pg-<n>" must not make the stream drop outbox row n as a duplicate.
func TestPostgresNotifyIDCannotSuppressOutboxRow(t *testing.T) {
	h := newHarness(t)
	ch := h.notifyChannel()
	cfg := h.config()
	cfg.NotifyChannels = []string{ch}
	b := h.runNotifyBridge(cfg)

	first := h.publish("public", "orders.1", `{"id":"1"}`)
	waitFor(t, 10*time.Second, "first row", func() bool { return streamCount(t, h.cl) == 1 })
	next := first + 1 // the outbox's own sequence; nothing else writes this schema
	for _, id := range []string{"pg-" + strconv.FormatInt(next, 10), "pgcl-" + strconv.FormatInt(next, 10)} {
		h.notify(ch, notifyEnvelope(id, "-", "orders.2", map[string]any{"id": "forged"}))
	}
	waitFor(t, 10*time.Second, "2 notifications", func() bool { return streamCount(t, h.cl) == 3 })
	if row := h.publish("public", "orders.2", `{"id":"2"}`); row != next {
		t.Fatalf("outbox row id %d, want %d: the test cannot aim at it", row, next)
	}
	waitFor(t, 10*time.Second, "row forwarded", func() bool {
		return h.count(`SELECT count(*) FROM %s.outbox WHERE id = $1 AND forwarded_at IS NOT NULL`, next) == 1
	})
	msgs := streamContents(t, h.cl)
	found := false
	for _, m := range msgs {
		if m.msgID == "pg-"+strconv.FormatInt(next, 10) {
			found = m.data == `{"id": "2"}` || m.data == `{"id":"2"}`
		}
	}
	if !found {
		t.Fatalf("outbox row %d is not in the stream (suppressed by a NOTIFY id?): %+v; deduplicated{outbox} = %v",
			next, msgs, testutil.ToFloat64(b.m.Deduplicated.WithLabelValues(sourceOutbox)))
	}
}

// TestPostgresNotifyDedupIsScopedToTenantAndTopic: an envelope id
// deduplicates within its tenant and topic, not across them.
func TestPostgresNotifyDedupIsScopedToTenantAndTopic(t *testing.T) {
	h := newHarness(t)
	ch := h.notifyChannel()
	cfg := h.config()
	cfg.Legacy = []LegacySource{{Channels: []string{ch}, Tenants: []string{"acme"}}}
	b := h.runNotifyBridge(cfg)

	h.notify(ch, notifyEnvelope("e1", "-", "orders.1", map[string]any{"n": 1}))
	h.notify(ch, notifyEnvelope("e1", "-", "orders.1", map[string]any{"n": 1})) // duplicate
	h.notify(ch, notifyEnvelope("e1", "-", "orders.2", map[string]any{"n": 2})) // other topic
	h.notify(ch, notifyEnvelope("e1", "acme", "orders.1", map[string]any{"n": 3}))
	h.notify(ch, notifyEnvelope("last", "-", "orders.9", map[string]any{"n": 4}))
	waitFor(t, 10*time.Second, "4 events", func() bool { return streamCount(t, h.cl) >= 4 })
	msgs := streamContents(t, h.cl)
	want := []string{"fraiseql.public.orders.1", "fraiseql.public.orders.2", "fraiseql.acme.orders.1", "fraiseql.public.orders.9"}
	got := subjectsOf(msgs)
	if len(got) != len(want) {
		t.Fatalf("stream holds %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("stream holds %v, want %v", got, want)
		}
	}
	if msgs[0].msgID != notifyMsgID("public", "orders.1", "e1") || msgs[0].msgID == msgs[2].msgID {
		t.Fatalf("dedup ids %q, %q", msgs[0].msgID, msgs[2].msgID)
	}
	if got := testutil.ToFloat64(b.m.Deduplicated.WithLabelValues(sourceNotify)); got != 1 {
		t.Fatalf("deduplicated{postgres-notify} = %v, want 1", got)
	}
}

// TestPostgresNotifyLegacySourceTopics: a legacy source's topics restrict
// what its envelopes may name; refusals are counted.
func TestPostgresNotifyLegacySourceTopics(t *testing.T) {
	h := newHarness(t)
	ch := h.notifyChannel()
	cfg := h.config()
	cfg.Legacy = []LegacySource{{Channels: []string{ch}, Tenant: "acme", Tenants: []string{"globex"}, Topics: []string{"orders.*", "chat.>"}}}
	b := h.runNotifyBridge(cfg)

	h.notify(ch, notifyEnvelope("x1", "-", "audit", map[string]any{"n": 1}))                  // topic_not_allowed
	h.notify(ch, notifyEnvelope("x2", "globex", "users.bob.notifications", map[string]any{})) // topic_not_allowed
	h.notify(ch, notifyEnvelope("x3", "initech", "orders.1", map[string]any{}))               // tenant_not_allowed
	h.notify(ch, notifyEnvelope("x4", "-", "orders.>", map[string]any{}))                     // bad_topic
	h.notify(ch, notifyEnvelope("x5", "a.b", "orders.1", map[string]any{}))                   // bad_tenant
	h.notify(ch, notifyEnvelope("e1", "-", "orders.1", map[string]any{"n": 2}))
	h.notify(ch, notifyEnvelope("e2", "globex", "chat.r1.x", map[string]any{"n": 3}))
	waitFor(t, 10*time.Second, "2 events", func() bool { return streamCount(t, h.cl) >= 2 })
	if got := subjectsOf(streamContents(t, h.cl)); len(got) != 2 || got[0] != "fraiseql.acme.orders.1" || got[1] != "fraiseql.globex.chat.r1.x" {
		t.Fatalf("stream holds %v", got)
	}
	for reason, want := range map[string]float64{reasonTopicDenied: 2, reasonTenantDenied: 1, reasonBadTopic: 1, reasonBadTenant: 1} {
		if got := notifyRejected(b, reason); got != want {
			t.Errorf("rejected{source=postgres-notify,reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

// TestPostgresNotifyTraceParent: an envelope's traceparent is the stored
// event's traceparent header, so the publisher's trace continues on the
// nodes; an envelope without one stores none.
func TestPostgresNotifyTraceParent(t *testing.T) {
	h := newHarness(t)
	ch := h.notifyChannel()
	cfg := h.config()
	cfg.NotifyChannels = []string{ch}
	h.runNotifyBridge(cfg)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h.notify(ch, `{"id":"t1","event_type":"x","channel":"orders.1","data":{"id":"1"},"traceparent":"`+tp+`"}`)
	h.notify(ch, notifyEnvelope("t2", "-", "orders.2", map[string]any{"id": "2"}))
	waitFor(t, 10*time.Second, "2 events", func() bool { return streamCount(t, h.cl) >= 2 })
	msgs := streamContents(t, h.cl)
	if len(msgs) != 2 || msgs[0].trace != tp || msgs[1].trace != "" {
		t.Fatalf("stream holds %+v; want the first with traceparent %s, the second without", msgs, tp)
	}
}
