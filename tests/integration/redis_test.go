//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/fraiseql/subscriptions/bridges/redis"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/node"
)

// ---- helpers ----

const redisStartHint = `start one with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no (or set REDIS_URL)`

// redisURL is the machine's Redis (REDIS_URL, default
// redis://127.0.0.1:6379/0). A test that cannot reach it fails.
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	rc := newRedisClient(t, u)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s is unreachable (%v); %s", u, err, redisStartHint)
	}
	return u
}

// newRedisClient returns a test client (no retries: a test sees every
// failure) closed in t.Cleanup.
func newRedisClient(t testing.TB, url string) *goredis.Client {
	t.Helper()
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	o.MaxRetries = -1
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	rc := goredis.NewClient(o)
	t.Cleanup(func() { rc.Close() })
	return rc
}

// uniq is a name part no other test run shares.
func uniq() string { return fmt.Sprintf("r%x%04x", time.Now().UnixNano()&0xffffffffff, rand.N(1<<16)) }

// delKeys deletes keys (and their dead-letter streams) at cleanup.
func delKeys(t testing.TB, rc *goredis.Client, keys ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		for _, k := range keys {
			rc.Del(ctx, k, k+":dead")
		}
	})
}

// runBridge starts a bridge on cl; the returned stop (also run at
// cleanup) cancels it and waits for Run to return.
func runBridge(t testing.TB, cfg redis.Config, cl *cluster.Cluster) (*redis.Bridge, func()) {
	t.Helper()
	b, err := redis.New(cfg, cl, testLogger(t))
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Run did not return within 15s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return b, stop
}

// waitLeading waits until the bridge leads its (single enabled) source and is connected.
func waitLeading(t testing.TB, b *redis.Bridge) {
	t.Helper()
	waitFor(t, 15*time.Second, "bridge leading and connected", func() bool {
		st := b.Status()
		return len(st) == 1 && st[0].Leader && st[0].Up
	})
}

func leading(b *redis.Bridge) bool {
	st := b.Status()
	return len(st) == 1 && st[0].Leader
}

// fastLimits lets a subscriber take thousands of events per second.
func fastLimits(n *node.Config, _ *cluster.Config) {
	n.Limits.EventRate = limits.Rate(1e6)
	n.Limits.EventBurst = 1e6
}

const msgQuery = `subscription($room: ID!) { messageAdded(room: $room) { id text } }`

// subscribeRoom subscribes id to room and waits until the node has
// registered want subscriptions.
func subscribeRoom(t testing.TB, e *env, c *client, id, room string, want int) {
	t.Helper()
	c.subscribe(id, msgQuery, map[string]any{"room": room}, "")
	waitFor(t, 5*time.Second, "subscription registered", func() bool { return e.node.Stats().Subscriptions == int64(want) })
}

// nextMsg reads one next for sub id and returns messageAdded {id, text}.
func nextMsg(t testing.TB, c *client, id string) (msgID, text string) {
	t.Helper()
	r := c.next(id)
	var m struct{ ID, Text string }
	if err := json.Unmarshal(r.Data["messageAdded"], &m); err != nil {
		t.Fatalf("bad messageAdded %s: %v", r.Data["messageAdded"], err)
	}
	return m.ID, m.Text
}

// readIDs reads n nexts (any subscription) and returns the event ids per subscription id.
func readIDs(t testing.TB, c *client, n int) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for range n {
		m := c.expectType("next")
		var r result
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Fatal(err)
		}
		var ev struct{ ID string }
		if err := json.Unmarshal(r.Data["messageAdded"], &ev); err != nil {
			t.Fatal(err)
		}
		got[m.ID] = append(got[m.ID], ev.ID)
	}
	return got
}

// jsBodies returns the bodies stored in the event stream on subject, in stream order.
func jsBodies(t testing.TB, cl *cluster.Cluster, subject string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := cl.JetStream().Stream(ctx, cl.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Subjects[subject])
	if n == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for len(out) < n {
		batch, err := cons.Fetch(n-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			out = append(out, string(m.Data()))
			got++
		}
		if got == 0 {
			t.Fatalf("stream has %d messages on %s, fetched only %d", n, subject, len(out))
		}
	}
	return out
}

// eventIDs extracts "id" from JSON bodies.
func eventIDs(t testing.TB, bodies []string) []string {
	t.Helper()
	ids := make([]string, len(bodies))
	for i, b := range bodies {
		var v struct{ ID string }
		if err := json.Unmarshal([]byte(b), &v); err != nil {
			t.Fatalf("body %q: %v", b, err)
		}
		ids[i] = v.ID
	}
	return ids
}

func seqIDs(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

func msgJSON(id int, room string) string {
	return fmt.Sprintf(`{"id":"%d","room":"%s","text":"m%d"}`, id, room, id)
}

// ---- pub/sub and envelopes ----

func TestRedisPubSubDeliversProjectedEvents(t *testing.T) {
	url := redisURL(t)
	rc := newRedisClient(t, url)
	room := uniq()
	e := newEnv(t)
	b, _ := runBridge(t, redis.Config{URL: url, Patterns: []string{"fraiseql:*:chat." + room}, DisableStreams: true, LeaseTTL: time.Second}, e.cl)
	waitLeading(t, b)
	c := dialTransport(t, e.ws)
	subscribeRoom(t, e, c, "1", room, 1)

	ctx := context.Background()
	ch := "fraiseql:public:chat." + room
	rc.Publish(ctx, ch, `{"id":"1","room":"`+room+`","text":"hi","secret":"x"}`)
	rc.Publish(ctx, ch, `not json`)                                                            // rejected
	rc.Publish(ctx, "fraiseql:acme:chat."+room, `{"id":"x","room":"r","text":"other tenant"}`) // another tenant
	rc.Publish(ctx, "fraiseql:bad.tenant:chat."+room, `{"id":"y"}`)                            // rejected: bad tenant
	rc.Publish(ctx, ch, `{"id":"2","room":"`+room+`","text":"there"}`)

	r := c.next("1")
	if got := string(r.Data["messageAdded"]); got != `{"id":"1","text":"hi"}` {
		t.Fatalf("first event %s", got)
	}
	if r.Extensions.Cursor == "" {
		t.Fatal("no cursor")
	}
	if id, text := nextMsg(t, c, "1"); id != "2" || text != "there" {
		t.Fatalf("second event %s %s", id, text)
	}
	c.expectNothing(300 * time.Millisecond)
	if got := eventIDs(t, jsBodies(t, e.cl, "fraiseql.acme.chat."+room)); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("acme events in JetStream: %v", got)
	}
}

// TestRedisLegacyEnvelopes: on declared legacy channels envelopes are
// unwrapped and name their tenant and topic, but only valid ones and only
// those their source allows; the rest is rejected and counted by reason.
func TestRedisLegacyEnvelopes(t *testing.T) {
	url := redisURL(t)
	rc := newRedisClient(t, url)
	room := uniq()
	nats := startNATS(t)
	pub := startNode(t, nats, nil)
	acme := startNode(t, nats, func(n *node.Config, _ *cluster.Config) { n.Tenant = "acme" })
	globex := startNode(t, nats, func(n *node.Config, _ *cluster.Config) { n.Tenant = "globex" })
	fixedCh := "fraiseql:events:" + room // legacy_channels: envelopes may name only the bridge's tenant
	multiCh := "fraiseql:multi:" + room  // may also name acme, for chat.* topics only
	b, _ := runBridge(t, redis.Config{
		URL: url, Patterns: []string{"fraiseql:*:chat." + room}, LegacyChannels: []string{fixedCh},
		Legacy:         []redis.LegacySource{{Channels: []string{multiCh}, Tenants: []string{"acme"}, Topics: []string{"chat.*"}}},
		DisableStreams: true, LeaseTTL: time.Second,
	}, pub.cl)
	waitLeading(t, b)
	cp := dialTransport(t, pub.ws)
	subscribeRoom(t, pub, cp, "p", room, 1)
	ca := dialTransport(t, acme.ws)
	subscribeRoom(t, acme, ca, "a", room, 1)
	cg := dialTransport(t, globex.ws)
	subscribeRoom(t, globex, cg, "g", room, 1)

	chat := "chat." + room
	env := func(id, tenant, topic, text string) string { // tenant "-": no tenant_id
		m := map[string]any{
			"id": id, "event_type": "message_added", "channel": topic,
			"data":      map[string]any{"id": id, "room": room, "text": text},
			"timestamp": "2024-05-01T12:00:00Z", "correlation_id": "c-" + id,
		}
		if tenant != "-" {
			m["tenant_id"] = tenant
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	ctx := context.Background()
	for _, m := range []struct{ ch, body string }{
		{fixedCh, env("e1", "-", chat, "default tenant")},
		{fixedCh, env("x1", "acme", chat, "legacy_channels name only the bridge's tenant")}, // tenant_not_allowed
		{multiCh, env("e2", "acme", chat, "for acme")},
		{multiCh, env("e3", "-", chat, "the source's tenant")},
		{multiCh, env("x2", "globex", chat, "not the source's")},                          // tenant_not_allowed
		{multiCh, env("x3", "acme", "users.bob.notifications", "not the source's topic")}, // topic_not_allowed
		{multiCh, env("x4", ">", chat, "")},                                               // bad_tenant
		{multiCh, env("x5", "acme.x", chat, "")},                                          // bad_tenant
		{multiCh, env("x6", "", chat, "")},                                                // bad_tenant
		{multiCh, env("x7", "acme", "chat.>", "")},                                        // bad_topic
		{multiCh, env("x8", "acme", "", "")},                                              // bad_topic
		{fixedCh, `{"id":"n","room":"r","text":"not an envelope"}`},                       // bad_envelope
		{fixedCh, env("e1", "-", chat, "default tenant")},                                 // same id: deduplicated
		{fixedCh, env("e4", "-", chat, "last")},
	} {
		if err := rc.Publish(ctx, m.ch, m.body).Err(); err != nil {
			t.Fatal(err)
		}
	}

	var gotPub []string
	for range 3 {
		id, _ := nextMsg(t, cp, "p")
		gotPub = append(gotPub, id)
	}
	if want := []string{"e1", "e3", "e4"}; !slices.Equal(gotPub, want) {
		t.Fatalf("public received %v, want %v", gotPub, want)
	}
	cp.expectNothing(300 * time.Millisecond)
	if id, text := nextMsg(t, ca, "a"); id != "e2" || text != "for acme" {
		t.Fatalf("acme received %s %q", id, text)
	}
	ca.expectNothing(100 * time.Millisecond)
	cg.expectNothing(10 * time.Millisecond)
	if n := countSubjects(t, pub.cl, "fraiseql.*.users.>"); n != 0 {
		t.Fatalf("%d events on users.>", n)
	}
	for reason, want := range map[string]float64{"tenant_not_allowed": 2, "topic_not_allowed": 1, "bad_tenant": 3, "bad_topic": 2, "bad_envelope": 1} {
		if got := rejected(t, b, "redis-pubsub", reason); got != want {
			t.Errorf("rejected{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := metricValue(t, b, "fraiseql_bridge_events_deduplicated_total", "redis-pubsub"); got != 1 {
		t.Errorf("deduplicated = %v, want 1", got)
	}
}

// ---- trust: the channel or key decides tenant and topic ----

// forgedEnvelope is a FraiseQL envelope whose body names its own tenant
// and topic, as an attacker forwarding user JSON would write it.
func forgedEnvelope(id, tenant, topic string, data map[string]any) string {
	m := map[string]any{"id": id, "event_type": "x", "channel": topic, "data": data,
		"timestamp": "2024-05-01T12:00:00Z", "correlation_id": nil}
	if tenant != "" {
		m["tenant_id"] = tenant
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// countSubjects counts the events in the event stream on the subjects
// that filter (which may hold wildcards) matches.
func countSubjects(t testing.TB, cl *cluster.Cluster, filter string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cl.JetStream().Stream(ctx, cl.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// victims connects globex's bob (notifications), a globex admin and a
// public admin (auditLog) to e, the targets of forged envelopes.
func victims(t *testing.T, e *env) []*client {
	t.Helper()
	admin := jwt.MapClaims{"roles": []string{"admin"}}
	bob := dialAs(t, e, token(t, testSecret, "globex", "bob", nil))
	bob.subscribe("n", `subscription { notifications { id text } }`, nil, "")
	gadmin := dialAs(t, e, token(t, testSecret, "globex", "gadmin", admin))
	gadmin.subscribe("a", `subscription { auditLog { id action } }`, nil, "")
	padmin := dialAs(t, e, token(t, testSecret, "public", "padmin", admin))
	padmin.subscribe("a", `subscription { auditLog { id action } }`, nil, "")
	waitFor(t, 5*time.Second, "3 victim subscriptions", func() bool { return e.node.Stats().Subscriptions == 3 })
	return []*client{bob, gadmin, padmin}
}

// TestRedisPubSubChannelDecidesTenantAndTopic: an envelope in the body of
// a message on acme's channel cannot write into globex (or into the
// bridge's default tenant): the channel decides tenant and topic, and the
// body is the event, kept as it is.
func TestRedisPubSubChannelDecidesTenantAndTopic(t *testing.T) {
	url := redisURL(t)
	rc := newRedisClient(t, url)
	room := uniq()
	prefix := "t" + room // own prefix: default patterns, yet hermetic
	e := authEnv(t)
	b, _ := runBridge(t, redis.Config{URL: url, Prefix: prefix, DisableStreams: true, LeaseTTL: time.Second}, e.cl)
	waitLeading(t, b)
	vs := victims(t, e)

	bodies := []string{
		forgedEnvelope("f1", "globex", "users.bob.notifications", map[string]any{"id": "f1", "text": "forged"}),
		forgedEnvelope("f2", "globex", "audit", map[string]any{"id": "f2", "action": "forged"}),
		forgedEnvelope("f3", "", "audit", map[string]any{"id": "f3", "action": "forged, default tenant"}),
	}
	ctx := context.Background()
	for _, body := range bodies {
		if err := rc.Publish(ctx, prefix+":acme:chat."+room, body).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "3 events forwarded", func() bool {
		return metricValue(t, b, "fraiseql_bridge_events_forwarded_total", "redis-pubsub") >= 3
	})
	for _, v := range vs {
		v.expectNothing(100 * time.Millisecond)
	}
	for _, f := range []string{"fraiseql.globex.>", "fraiseql.public.>"} {
		if n := countSubjects(t, e.cl, f); n != 0 {
			t.Errorf("%d forged events on %s", n, f)
		}
	}
	if got := jsBodies(t, e.cl, "fraiseql.acme.chat."+room); !slices.Equal(got, bodies) {
		t.Fatalf("acme chat.%s holds\n %q\nwant the bodies as published\n %q", room, got, bodies)
	}
}

// TestRedisStreamKeyDecidesTenantAndTopic: the same through a Streams
// entry on a key that is not declared legacy: the key decides the topic,
// the configured tenant the tenant, and the entry's data is the event.
func TestRedisStreamKeyDecidesTenantAndTopic(t *testing.T) {
	url := redisURL(t)
	rc := newRedisClient(t, url)
	room := uniq()
	prefix := "t" + room
	key := prefix + ":events:chat." + room // matched by the default stream_pattern
	delKeys(t, rc, key)
	e := authEnv(t)
	vs := victims(t, e)

	bodies := []string{
		forgedEnvelope("f1", "globex", "users.bob.notifications", map[string]any{"id": "f1", "text": "forged"}),
		forgedEnvelope("f2", "public", "audit", map[string]any{"id": "f2", "action": "forged"}),
	}
	ctx := context.Background()
	for _, body := range bodies {
		if err := rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"data", body}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Written before the bridge starts, so its first SCAN finds the key.
	b, _ := runBridge(t, redis.Config{URL: url, Prefix: prefix, Tenant: "acme", DisablePubSub: true,
		Group: "g-" + room, Consumer: "c1", LeaseTTL: time.Second, BlockTimeout: 200 * time.Millisecond}, e.cl)
	waitLeading(t, b)
	waitFor(t, 10*time.Second, "2 events forwarded", func() bool {
		return metricValue(t, b, "fraiseql_bridge_events_forwarded_total", "redis-streams") >= 2
	})
	for _, v := range vs {
		v.expectNothing(100 * time.Millisecond)
	}
	for _, f := range []string{"fraiseql.globex.>", "fraiseql.public.>"} {
		if n := countSubjects(t, e.cl, f); n != 0 {
			t.Errorf("%d forged events on %s", n, f)
		}
	}
	if got := jsBodies(t, e.cl, "fraiseql.acme.chat."+room); !slices.Equal(got, bodies) {
		t.Fatalf("acme chat.%s holds\n %q\nwant the entries' data as written\n %q", room, got, bodies)
	}
}

// ---- Streams ----

func TestRedisStreamsDeliverInOrder(t *testing.T) {
	url := redisURL(t)
	rc := newRedisClient(t, url)
	room := uniq()
	key := "fraiseql:events:chat." + room
	delKeys(t, rc, key)
	ctx := context.Background()
	// Written before the bridge ever ran: the group starts at id 0.
	for i := 1; i <= 5; i++ {
		rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"data", msgJSON(i, room)}})
	}
	e := startNode(t, startNATS(t), fastLimits)
	c := dialTransport(t, e.ws)
	subscribeRoom(t, e, c, "1", room, 1)
	group := "g-" + room
	b, _ := runBridge(t, redis.Config{
		URL: url, DisablePubSub: true, StreamPattern: "fraiseql:events:chat." + room + "*",
		Legacy: []redis.LegacySource{{Streams: []string{"fraiseql:events:chat." + room + "*"}}},
		Group:  group, Consumer: "c1", LeaseTTL: time.Second, BlockTimeout: 200 * time.Millisecond,
	}, e.cl)
	waitLeading(t, b)
	for i := 6; i <= 200; i++ {
		rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"data", msgJSON(i, room)}})
	}
	// The envelope form in a data field, unwrapped on a legacy key.
	rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"data",
		`{"id":"ev","event_type":"message_added","channel":"chat.` + room + `","data":{"id":"201","room":"` + room + `","text":"env"},"timestamp":"t","correlation_id":null}`}})

	got := readIDs(t, c, 201)["1"]
	if want := seqIDs(1, 201); !slices.Equal(got, want) {
		t.Fatalf("subscriber received %v", got)
	}
	c.expectNothing(200 * time.Millisecond)
	if got := eventIDs(t, jsBodies(t, e.cl, "fraiseql.public.chat."+room)); !slices.Equal(got, seqIDs(1, 201)) {
		t.Fatalf("JetStream holds %v", got)
	}
	waitFor(t, 5*time.Second, "no pending entries", func() bool {
		p, err := rc.XPending(ctx, key, group).Result()
		return err == nil && p.Count == 0
	})
}

func TestRedisStreamsPoisonDeadLettered(t *testing.T) {
	url := redisURL(t)
	rc := newRedisClient(t, url)
	room := uniq()
	key := "fraiseql:events:chat." + room
	badKey := "fraiseql:events:bad topic " + room
	delKeys(t, rc, key, badKey)
	e := startNode(t, startNATS(t), func(n *node.Config, c *cluster.Config) { c.MaxMsgSize = 2048 })
	c := dialTransport(t, e.ws)
	subscribeRoom(t, e, c, "1", room, 1)
	b, _ := runBridge(t, redis.Config{
		URL: url, DisablePubSub: true, Streams: []string{key, badKey}, StreamPattern: "-",
		Legacy: []redis.LegacySource{{Streams: []string{key}, Tenants: []string{"acme"}}},
		Group:  "g-" + room, Consumer: "c1", LeaseTTL: time.Second, BlockTimeout: 200 * time.Millisecond,
	}, e.cl)
	waitLeading(t, b)

	ctx := context.Background()
	add := func(k string, values ...any) string {
		t.Helper()
		id, err := rc.XAdd(ctx, &goredis.XAddArgs{Stream: k, Values: values}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return k + " " + id // entry ids of two keys may be equal
	}
	add(key, "data", msgJSON(1, room))
	poison := map[string]string{ // key and entry id -> reason
		add(key, "data", "not json"): "not_json_object",
		add(key, "other", "field"):   "no_data",
		add(key, "data", `[1,2,3]`):  "not_json_object",
		add(key, "data", `{"id":"e","event_type":"x","channel":"c","data":{"id":"9"},"tenant_id":"bad.tenant"}`): "bad_tenant",
		add(key, "data", `{"id":"e","event_type":"x","channel":"c","data":{"id":"9"},"tenant_id":">"}`):          "bad_tenant",
		add(key, "data", `{"id":"e","event_type":"x","channel":"c","data":{"id":"9"},"tenant_id":"globex"}`):     "tenant_not_allowed",
		add(key, "data", `{"id":"big","text":"`+strings.Repeat("x", 4096)+`"}`):                                  "too_large",
		add(badKey, "data", `{"id":"t"}`): "bad_topic",
	}
	add(key, "data", `{"id":"e","event_type":"x","channel":"ignored","data":{"id":"a"},"tenant_id":"acme"}`) // allowed: acme's chat.<room>
	add(key, "data", msgJSON(2, room))

	got := readIDs(t, c, 2)["1"]
	if !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("subscriber received %v", got)
	}
	c.expectNothing(200 * time.Millisecond)

	var dead []goredis.XMessage
	waitFor(t, 5*time.Second, "8 dead letters", func() bool {
		a, _ := rc.XRange(ctx, key+":dead", "-", "+").Result()
		bb, _ := rc.XRange(ctx, badKey+":dead", "-", "+").Result()
		dead = append(a, bb...)
		return len(dead) == 8
	})
	for _, d := range dead {
		src := fmt.Sprintf("%v %v", d.Values["source_key"], d.Values["source_id"])
		if want, ok := poison[src]; !ok || d.Values["reason"] != want {
			t.Errorf("dead letter of %s: reason %v, want %q", src, d.Values["reason"], want)
		}
		if d.Values["error"] == "" {
			t.Errorf("dead letter without error: %v", d.Values)
		}
	}
	if d := dead[0]; d.Values["data"] != "not json" || d.Values["source_key"] != key {
		t.Errorf("dead letter does not keep the entry: %v", d.Values)
	}
	for _, k := range []string{key, badKey} {
		p, err := rc.XPending(ctx, k, "g-"+room).Result()
		if err != nil || p.Count != 0 {
			t.Errorf("%s: pending %+v, %v", k, p, err)
		}
	}
	if got := jsBodies(t, e.cl, "fraiseql.acme.chat."+room); !slices.Equal(got, []string{`{"id":"a"}`}) {
		t.Errorf("acme holds %q", got)
	}
	for reason, want := range map[string]float64{"tenant_not_allowed": 1, "bad_tenant": 2, "bad_topic": 1, "not_json_object": 2, "no_data": 1, "too_large": 1} {
		if got := rejected(t, b, "redis-streams", reason); got != want {
			t.Errorf("rejected{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

// privateRedis is a redis-server this test owns (AOF, fsync always), on a
// random port, killed and restarted at will; the machine's Redis is never
// touched.
type privateRedis struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
}

func startPrivateRedis(t testing.TB) *privateRedis {
	t.Helper()
	const bin = "/usr/bin/redis-server"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found (%v): install redis-server (apt-get install redis-server)", bin, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &privateRedis{t: t, port: port, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("/usr/bin/redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--dir", r.dir, "--daemonize", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	o := &goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}}
	rc := goredis.NewClient(o)
	defer rc.Close()
	waitFor(r.t, 10*time.Second, "private redis-server up", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return rc.Ping(ctx).Err() == nil
	})
}

// kill SIGKILLs the server (as a crash would) and waits for it.
func (r *privateRedis) kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

func TestRedisPubSubResubscribesAfterRedisRestart(t *testing.T) {
	pr := startPrivateRedis(t)
	rc := newRedisClient(t, pr.url())
	room := uniq()
	e := startNode(t, startNATS(t), nil)
	b, _ := runBridge(t, redis.Config{URL: pr.url(), DisableStreams: true, LeaseTTL: time.Second}, e.cl)
	waitLeading(t, b)
	c := dialTransport(t, e.ws)
	subscribeRoom(t, e, c, "1", room, 1)
	ctx := context.Background()
	ch := "fraiseql:public:chat." + room
	rc.Publish(ctx, ch, msgJSON(1, room))
	if id, _ := nextMsg(t, c, "1"); id != "1" {
		t.Fatalf("got %s", id)
	}
	pr.kill()
	waitFor(t, 10*time.Second, "bridge reports Redis down", func() bool { return !b.Status()[0].Up })
	if st := b.Status()[0]; st.LastError == "" {
		t.Errorf("down without an error: %+v", st)
	}
	pr.start()
	waitLeading(t, b) // resubscribed
	rc.Publish(ctx, ch, msgJSON(2, room))
	if id, _ := nextMsg(t, c, "1"); id != "2" {
		t.Fatalf("got %s", id)
	}
	c.expectNothing(200 * time.Millisecond)
}

func TestRedisStreamsSurviveRedisRestart(t *testing.T) {
	pr := startPrivateRedis(t)
	rc := newRedisClient(t, pr.url())
	rooms := []string{uniq(), uniq()}
	keys := []string{"fraiseql:events:chat." + rooms[0], "fraiseql:events:chat." + rooms[1]}
	e := startNode(t, startNATS(t), fastLimits)
	c := dialTransport(t, e.ws)
	subscribeRoom(t, e, c, rooms[0], rooms[0], 1)
	subscribeRoom(t, e, c, rooms[1], rooms[1], 2)
	b, _ := runBridge(t, redis.Config{
		URL: pr.url(), DisablePubSub: true, Streams: keys, StreamPattern: "-", Consumer: "c1",
		LeaseTTL: time.Second, BlockTimeout: 200 * time.Millisecond, BatchSize: 50,
	}, e.cl)
	waitLeading(t, b)

	// Publisher: 1,000 entries per key, interleaved, explicit ids so that a
	// retried XADD is idempotent; an XADD counts once Redis acknowledged it
	// (or refuses the id because an earlier attempt already stored it).
	const perKey = 1000
	var mu sync.Mutex
	acked := 0
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		ctx := context.Background()
		for n := 1; n <= perKey; n++ {
			for k, key := range keys {
				for {
					err := rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, ID: fmt.Sprintf("%d-1", n), Values: []any{"data", msgJSON(n, rooms[k])}}).Err()
					if err == nil || strings.Contains(err.Error(), "equal or smaller") {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				acked++
				mu.Unlock()
			}
		}
	}()
	waitFor(t, 30*time.Second, "half the entries written", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return acked >= perKey
	})
	pr.kill()
	// Down long enough for go-redis's own retries to give up, so the
	// bridge's reconnect path runs.
	time.Sleep(3 * time.Second)
	pr.start()
	<-pubDone

	got := readIDs(t, c, 2*perKey)
	c.expectNothing(300 * time.Millisecond)
	for k, room := range rooms {
		if want := seqIDs(1, perKey); !slices.Equal(got[room], want) {
			t.Errorf("room %d: subscriber received %d events, not 1..%d in order (first %v)", k, len(got[room]), perKey, got[room][:min(10, len(got[room]))])
		}
		if js := eventIDs(t, jsBodies(t, e.cl, "fraiseql.public.chat."+room)); !slices.Equal(js, seqIDs(1, perKey)) {
			t.Errorf("room %d: JetStream holds %d events, not 1..%d in order", k, len(js), perKey)
		}
	}
	reconnects := metricValue(t, b, "fraiseql_bridge_reconnects_total", "redis-streams")
	t.Logf("bridge reconnects across the restart: %v", reconnects)
	if reconnects < 1 {
		t.Error("the bridge never reconnected: was Redis restarted?")
	}
}

func TestRedisStreamsLeaderFailover(t *testing.T) {
	url := redisURL(t)
	rc := newRedisClient(t, url)
	room := uniq()
	key := "fraiseql:events:chat." + room
	group := "g-" + room
	delKeys(t, rc, key)
	ctx := context.Background()
	const total = 1500
	// A consumer that died holding entries 1..30: they must be reclaimed.
	if err := rc.XGroupCreateMkStream(ctx, key, group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	pipe := rc.Pipeline()
	for i := 1; i <= total; i++ {
		pipe.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"data", msgJSON(i, room)}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rc.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "ghost", Streams: []string{key, ">"}, Count: 30, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}

	nats := startNATS(t)
	n1 := startNode(t, nats, fastLimits)
	n2 := startNode(t, nats, fastLimits)
	c := dialTransport(t, n2.ws)
	subscribeRoom(t, n2, c, "1", room, 1)
	cfg := redis.Config{URL: url, DisablePubSub: true, Streams: []string{key}, StreamPattern: "-", Group: group,
		LeaseTTL: time.Second, ClaimMinIdle: 300 * time.Millisecond, BlockTimeout: 100 * time.Millisecond, BatchSize: 20}
	cfg.Consumer = "node-a"
	a, stopA := runBridge(t, cfg, n1.cl)
	waitFor(t, 10*time.Second, "a leads", func() bool { return leading(a) })
	cfg.Consumer = "node-b"
	bb, _ := runBridge(t, cfg, n2.cl)

	subj := "fraiseql.public.chat." + room
	waitFor(t, 30*time.Second, "a forwarded a third", func() bool {
		return metricValue(t, a, "fraiseql_bridge_events_forwarded_total", "redis-streams") >= total/3
	})
	stopA() // mid-stream: its in-flight batch is published but not acknowledged
	waitFor(t, 10*time.Second, "b leads", func() bool { return leading(bb) })
	pa, _ := rc.XPending(ctx, key, group).Result()
	t.Logf("after a stopped: pending %d %v", pa.Count, pa.Consumers)

	got := readIDs(t, c, total)["1"]
	c.expectNothing(300 * time.Millisecond)
	if want := seqIDs(1, total); !slices.Equal(got, want) {
		t.Fatalf("subscriber received %d events, not 1..%d in order", len(got), total)
	}
	if js := eventIDs(t, jsBodies(t, n1.cl, subj)); !slices.Equal(js, seqIDs(1, total)) {
		t.Fatalf("JetStream holds %d events, not 1..%d exactly once in order", len(js), total)
	}
	waitFor(t, 5*time.Second, "nothing pending", func() bool {
		p, err := rc.XPending(ctx, key, group).Result()
		return err == nil && p.Count == 0
	})
	t.Logf("forwarded: a %v, b %v; b deduplicated %v",
		metricValue(t, a, "fraiseql_bridge_events_forwarded_total", "redis-streams"),
		metricValue(t, bb, "fraiseql_bridge_events_forwarded_total", "redis-streams"),
		metricValue(t, bb, "fraiseql_bridge_events_deduplicated_total", "redis-streams"))
}

// rejected reads fraiseql_bridge_events_rejected_total{source,reason}.
func rejected(t testing.TB, b *redis.Bridge, source, reason string) float64 {
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
	t.Fatalf("no rejected_total{source=%q,reason=%q}", source, reason)
	return 0
}

// metricValue reads a bridge metric's value for source (summed over other labels).
func metricValue(t testing.TB, b *redis.Bridge, name, source string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(b.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == source {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

// ---- latency ----

// BenchmarkRedisLatency measures Redis → WebSocket latency: from the
// PUBLISH (or XADD) returning to the subscriber reading the `next`, one
// event in flight at a time, through the bridge, JetStream and a node.
// Run: go test -tags integration -run '^$' -bench RedisLatency -benchtime 1000x ./tests/integration/
func BenchmarkRedisLatency(b *testing.B) {
	for _, path := range []string{"pubsub", "streams"} {
		b.Run(path, func(b *testing.B) {
			url := redisURL(b)
			rc := newRedisClient(b, url)
			room := uniq()
			key := "fraiseql:events:chat." + room
			delKeys(b, rc, key)
			e := startNode(b, startNATS(b), fastLimits)
			cfg := redis.Config{URL: url, LeaseTTL: time.Second, BlockTimeout: time.Second}
			if path == "pubsub" {
				cfg.Patterns, cfg.DisableStreams = []string{"fraiseql:*:chat." + room}, true
			} else {
				cfg.Streams, cfg.StreamPattern, cfg.DisablePubSub, cfg.Group, cfg.Consumer = []string{key}, "-", true, "g-"+room, "c1"
			}
			br, _ := runBridge(b, cfg, e.cl)
			waitLeading(b, br)
			c := dialTransport(b, e.ws)
			subscribeRoom(b, e, c, "1", room, 1)
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				body := msgJSON(i, room)
				start := time.Now()
				var err error
				if path == "pubsub" {
					err = rc.Publish(ctx, "fraiseql:public:chat."+room, body).Err()
				} else {
					err = rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"data", body}}).Err()
				}
				if err != nil {
					b.Fatal(err)
				}
				c.expectType("next")
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
			b.ReportMetric(float64(q(0.50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(q(0.99).Microseconds()), "p99-µs")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
			b.Logf("%s: %d events: p50 %v p99 %v max %v", path, len(lat), q(0.50), q(0.99), lat[len(lat)-1])
		})
	}
}
