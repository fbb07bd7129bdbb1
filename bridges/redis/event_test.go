package redis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/fraiseql/subscriptions/cluster"
)

func TestParseChannel(t *testing.T) {
	tests := []struct {
		name, prefix, channel string
		tenant, topic         string
		ok                    bool
	}{
		{"tenant and topic", "fraiseql", "fraiseql:public:chat.r1", "public", "chat.r1", true},
		{"topic keeps colons", "fraiseql", "fraiseql:acme:a:b", "acme", "a:b", true},
		{"other prefix", "app", "app:t1:orders.7", "t1", "orders.7", true},
		{"wrong prefix", "fraiseql", "other:public:chat", "", "", false},
		{"prefix is a prefix of a word", "fraiseql", "fraiseqlx:public:chat", "", "", false},
		{"no topic", "fraiseql", "fraiseql:public", "", "", false},
		{"empty topic", "fraiseql", "fraiseql:public:", "", "", false},
		{"empty tenant", "fraiseql", "fraiseql::chat", "", "", false},
		{"legacy channel name", "fraiseql", "fraiseql:events", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tenant, topic, ok := parseChannel(tc.prefix, tc.channel)
			if tenant != tc.tenant || topic != tc.topic || ok != tc.ok {
				t.Fatalf("parseChannel(%q, %q) = %q, %q, %v; want %q, %q, %v", tc.prefix, tc.channel, tenant, topic, ok, tc.tenant, tc.topic, tc.ok)
			}
		})
	}
}

// testSources is a configuration with two legacy sources: the shorthand
// legacy_channels ("events", fixed to the default tenant) and a source
// for channel "multi" and keys "fraiseql:events:chat.*" that may name
// acme and initech, for chat.> and orders.* topics only.
func testSources(t testing.TB) (*Config, map[string]*legacySource, []*legacySource) {
	t.Helper()
	c := Config{LegacyChannels: []string{"events"}, Legacy: []LegacySource{{
		Channels: []string{"multi"}, Streams: []string{"fraiseql:events:chat.*"}, Tenant: "acme",
		Tenants: []string{"initech"}, Topics: []string{"chat.>", "orders.*"},
	}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	chans, streams := c.resolveLegacy()
	return &c, chans, streams
}

// testTP is a W3C traceparent.
const testTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func sameEvent(a, b event) bool {
	return a.tenant == b.tenant && a.topic == b.topic && bytes.Equal(a.data, b.data) && a.msgID == b.msgID && a.envelopeShaped == b.envelopeShaped &&
		a.traceparent == b.traceparent
}

func (e event) String() string {
	return fmt.Sprintf("{tenant %q topic %q data %q msgID %q envelopeShaped %v traceparent %q}", e.tenant, e.topic, e.data, e.msgID, e.envelopeShaped, e.traceparent)
}

func envJSON(id, tenant, channel, data string) string {
	s := `{"event_type":"x","channel":` + strconv.Quote(channel) + `,"data":` + data
	if id != "" {
		s += `,"id":` + strconv.Quote(id)
	}
	if tenant != "-" {
		s += `,"tenant_id":` + strconv.Quote(tenant)
	}
	return s + "}"
}

func TestPubSubEvent(t *testing.T) {
	cfg, chans, _ := testSources(t)
	forged := envJSON("f", "globex", "users.bob.notifications", `{"id":"f"}`)
	tests := []struct {
		name, channel, payload string
		legacy                 bool // on the channel's legacy source (plain SUBSCRIBE)
		want                   event
		reason                 string
	}{
		{name: "plain event", channel: "fraiseql:public:chat.r1", payload: ` {"id":"1","room":"r1","text":"hi"} `,
			want: event{tenant: "public", topic: "chat.r1", data: []byte(`{"id":"1","room":"r1","text":"hi"}`)}},
		// The channel decides: an envelope on a pattern channel is the event, as it is.
		{name: "forged envelope on a pattern channel stays on the channel's tenant and topic", channel: "fraiseql:acme:chat.r1", payload: forged,
			want: event{tenant: "acme", topic: "chat.r1", data: []byte(forged), envelopeShaped: true}},
		{name: "envelope without tenant_id on a pattern channel", channel: "fraiseql:acme:chat.r1", payload: envJSON("", "-", "audit", `{}`),
			want: event{tenant: "acme", topic: "chat.r1", data: []byte(envJSON("", "-", "audit", `{}`)), envelopeShaped: true}},
		{name: "pattern channel with a bad tenant", channel: "fraiseql:a*:chat", payload: `{}`, reason: reasonBadTenant},
		{name: "pattern channel with a bad topic", channel: "fraiseql:acme:chat.>", payload: `{}`, reason: reasonBadTopic},
		{name: "not json", channel: "fraiseql:public:chat", payload: `hello`, reason: reasonNotJSONObject},
		{name: "json array", channel: "fraiseql:public:chat", payload: `[1,2]`, reason: reasonNotJSONObject},
		{name: "truncated json", channel: "fraiseql:public:chat", payload: `{"a":`, reason: reasonNotJSONObject},
		{name: "bad channel", channel: "fraiseql:events", payload: `{"a":1}`, reason: reasonBadChannel},

		// legacy_channels: envelopes only, fixed to the bridge's tenant.
		{name: "legacy envelope without tenant_id", channel: "events", legacy: true,
			payload: `{"id":"e1","event_type":"message_added","data":{"id":"1","room":"r1"},"channel":"chat.r1","timestamp":"2024-01-01T00:00:00Z","correlation_id":null}`,
			want:    event{tenant: "public", topic: "chat.r1", data: []byte(`{"id":"1","room":"r1"}`), msgID: envelopeMsgID("public", "chat.r1", "e1")}},
		{name: "legacy envelope naming the source's tenant", channel: "events", legacy: true, payload: envJSON("e2", "public", "orders.7", `{"a":1}`),
			want: event{tenant: "public", topic: "orders.7", data: []byte(`{"a":1}`), msgID: envelopeMsgID("public", "orders.7", "e2")}},
		{name: "legacy_channels envelope naming another tenant", channel: "events", legacy: true, payload: forged, reason: reasonTenantDenied},
		{name: "legacy envelope with numeric id", channel: "events", legacy: true, payload: `{"id":42,"event_type":"x","data":{},"channel":"t"}`,
			want: event{tenant: "public", topic: "t", data: []byte(`{}`), msgID: envelopeMsgID("public", "t", "42")}},
		{name: "legacy envelope without id has no dedup id", channel: "events", legacy: true, payload: `{"event_type":"x","data":{},"channel":"t","tenant_id":null}`,
			want: event{tenant: "public", topic: "t", data: []byte(`{}`)}},
		// A legacy envelope's traceparent goes on to the nodes; a plain
		// event's body is never read for one.
		{name: "legacy envelope with a traceparent", channel: "events", legacy: true,
			payload: `{"event_type":"x","data":{},"channel":"t","traceparent":"` + testTP + `"}`,
			want:    event{tenant: "public", topic: "t", data: []byte(`{}`), traceparent: testTP}},
		{name: "legacy envelope with a traceparent not a string", channel: "events", legacy: true,
			payload: `{"event_type":"x","data":{},"channel":"t","traceparent":7}`,
			want:    event{tenant: "public", topic: "t", data: []byte(`{}`)}},
		{name: "plain event with a traceparent key", channel: "fraiseql:public:chat.r1", payload: `{"traceparent":"` + testTP + `"}`,
			want: event{tenant: "public", topic: "chat.r1", data: []byte(`{"traceparent":"` + testTP + `"}`)}},
		{name: "plain event on legacy channel", channel: "events", legacy: true, payload: `{"a":1}`, reason: reasonBadEnvelope},
		{name: "envelope data not object", channel: "events", legacy: true, payload: `{"event_type":"x","data":"s","channel":"t"}`, reason: reasonNotJSONObject},
		{name: "envelope channel not string", channel: "events", legacy: true, payload: `{"event_type":"x","data":{},"channel":7}`, reason: reasonBadEnvelope},
		{name: "envelope tenant_id object", channel: "events", legacy: true, payload: `{"event_type":"x","data":{},"channel":"t","tenant_id":{}}`, reason: reasonBadEnvelope},

		// A legacy source with tenants and topics.
		{name: "source default tenant", channel: "multi", legacy: true, payload: envJSON("m1", "-", "chat.r1", `{"id":"1"}`),
			want: event{tenant: "acme", topic: "chat.r1", data: []byte(`{"id":"1"}`), msgID: envelopeMsgID("acme", "chat.r1", "m1")}},
		{name: "allowed tenant", channel: "multi", legacy: true, payload: envJSON("m2", "initech", "orders.7", `{"id":"7"}`),
			want: event{tenant: "initech", topic: "orders.7", data: []byte(`{"id":"7"}`), msgID: envelopeMsgID("initech", "orders.7", "m2")}},
		{name: "tenant outside the source's", channel: "multi", legacy: true, payload: envJSON("m", "globex", "chat.r1", `{}`), reason: reasonTenantDenied},
		{name: "topic outside the source's", channel: "multi", legacy: true, payload: envJSON("m", "acme", "users.bob.notifications", `{}`), reason: reasonTopicDenied},
		{name: "topic one token short of chat.>", channel: "multi", legacy: true, payload: envJSON("m", "acme", "chat", `{}`), reason: reasonTopicDenied},
		{name: "tenant with >", channel: "multi", legacy: true, payload: envJSON("m", ">", "chat.r1", `{}`), reason: reasonBadTenant},
		{name: "tenant with *", channel: "multi", legacy: true, payload: envJSON("m", "*", "chat.r1", `{}`), reason: reasonBadTenant},
		{name: "tenant with .", channel: "multi", legacy: true, payload: envJSON("m", "acme.x", "chat.r1", `{}`), reason: reasonBadTenant},
		{name: "empty tenant", channel: "multi", legacy: true, payload: envJSON("m", "", "chat.r1", `{}`), reason: reasonBadTenant},
		{name: "topic with >", channel: "multi", legacy: true, payload: envJSON("m", "acme", "chat.>", `{}`), reason: reasonBadTopic},
		{name: "topic with *", channel: "multi", legacy: true, payload: envJSON("m", "acme", "chat.*", `{}`), reason: reasonBadTopic},
		{name: "topic with an empty token", channel: "multi", legacy: true, payload: envJSON("m", "acme", "chat..r1", `{}`), reason: reasonBadTopic},
		{name: "empty topic", channel: "multi", legacy: true, payload: envJSON("m", "acme", "", `{}`), reason: reasonBadTopic},
		{name: "topic with a space", channel: "multi", legacy: true, payload: envJSON("m", "acme", "chat.r 1", `{}`), reason: reasonBadTopic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var src *legacySource
			if tc.legacy {
				if src = chans[tc.channel]; src == nil {
					t.Fatalf("no legacy source for %q", tc.channel)
				}
			}
			got, err := pubsubEvent(cfg, tc.channel, []byte(tc.payload), src)
			if tc.reason != "" {
				if r := reasonOf(err); r != tc.reason {
					t.Fatalf("err = %v (reason %q), want reason %q", err, r, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameEvent(got, tc.want) {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestRejectionsNameTheSetting: a refusal by a legacy source's trust says
// which setting to change.
func TestRejectionsNameTheSetting(t *testing.T) {
	cfg, chans, _ := testSources(t)
	_, err := pubsubEvent(cfg, "events", []byte(envJSON("e", "globex", "chat.r1", `{}`)), chans["events"])
	if err == nil || !strings.Contains(err.Error(), "bridges.redis.legacy_channels") || !strings.Contains(err.Error(), `"globex"`) {
		t.Errorf("legacy_channels: %v", err)
	}
	_, err = pubsubEvent(cfg, "multi", []byte(envJSON("e", "globex", "chat.r1", `{}`)), chans["multi"])
	if err == nil || !strings.Contains(err.Error(), "bridges.redis.legacy[0].tenants") {
		t.Errorf("tenants: %v", err)
	}
	_, err = pubsubEvent(cfg, "multi", []byte(envJSON("e", "acme", "audit", `{}`)), chans["multi"])
	if err == nil || !strings.Contains(err.Error(), "bridges.redis.legacy[0].topics") {
		t.Errorf("topics: %v", err)
	}
}

func TestStreamEvent(t *testing.T) {
	cfg, _, sources := testSources(t)
	key, other := "fraiseql:events:chat.r1", "fraiseql:events:orders.7"
	forged := `{"id":"e","event_type":"x","channel":"users.bob.notifications","data":{"id":"2"},"tenant_id":"globex"}`
	msgID := streamMsgID(key, "1-0")
	tests := []struct {
		name   string
		key    string
		values map[string]any
		want   event
		reason string
	}{
		{name: "data field", key: other, values: map[string]any{"data": `{"id":"1"}`},
			want: event{tenant: "public", topic: "orders.7", data: []byte(`{"id":"1"}`), msgID: streamMsgID(other, "1-0")}},
		// Not legacy: the key and the configured tenant decide; data is the event as it is.
		{name: "forged envelope on a key not declared legacy", key: other, values: map[string]any{"data": forged},
			want: event{tenant: "public", topic: "orders.7", data: []byte(forged), msgID: streamMsgID(other, "1-0"), envelopeShaped: true}},
		{name: "traceparent field", key: other, values: map[string]any{"data": `{"id":"1"}`, "traceparent": testTP},
			want: event{tenant: "public", topic: "orders.7", data: []byte(`{"id":"1"}`), msgID: streamMsgID(other, "1-0"), traceparent: testTP}},
		{name: "legacy envelope's traceparent, the entry's field first", key: key,
			values: map[string]any{"data": `{"event_type":"x","channel":"c","data":{"id":"3"},"traceparent":"env"}`, "traceparent": testTP},
			want:   event{tenant: "acme", topic: "chat.r1", data: []byte(`{"id":"3"}`), msgID: msgID, traceparent: testTP}},
		{name: "legacy envelope's traceparent", key: key,
			values: map[string]any{"data": `{"event_type":"x","channel":"c","data":{"id":"3"},"traceparent":"` + testTP + `"}`},
			want:   event{tenant: "acme", topic: "chat.r1", data: []byte(`{"id":"3"}`), msgID: msgID, traceparent: testTP}},
		{name: "no data", key: other, values: map[string]any{"x": "1"}, reason: reasonNoData},
		{name: "data not object", key: other, values: map[string]any{"data": `"s"`}, reason: reasonNotJSONObject},
		{name: "data not json", key: other, values: map[string]any{"data": `{nope`}, reason: reasonNotJSONObject},
		{name: "bad topic from the key", key: "fraiseql:events:bad topic", values: map[string]any{"data": `{}`}, reason: reasonBadTopic},

		// Legacy key (source tenant acme, may name initech, topics chat.> and orders.*).
		{name: "legacy plain entry has the source's tenant", key: key, values: map[string]any{"data": `{"id":"1"}`},
			want: event{tenant: "acme", topic: "chat.r1", data: []byte(`{"id":"1"}`), msgID: msgID}},
		{name: "legacy envelope keeps the key's topic and the entry's id", key: key,
			values: map[string]any{"data": `{"id":"e","event_type":"x","channel":"other","data":{"id":"2"},"tenant_id":"initech"}`},
			want:   event{tenant: "initech", topic: "chat.r1", data: []byte(`{"id":"2"}`), msgID: msgID}},
		{name: "legacy envelope without tenant_id", key: key, values: map[string]any{"data": `{"event_type":"x","channel":"c","data":{"id":"3"}}`},
			want: event{tenant: "acme", topic: "chat.r1", data: []byte(`{"id":"3"}`), msgID: msgID}},
		{name: "legacy envelope naming a tenant outside the source's", key: key, values: map[string]any{"data": forged}, reason: reasonTenantDenied},
		{name: "legacy envelope with a bad tenant", key: key, values: map[string]any{"data": `{"event_type":"x","channel":"c","data":{},"tenant_id":"a>b"}`}, reason: reasonBadTenant},
		{name: "legacy envelope with an empty tenant", key: key, values: map[string]any{"data": `{"event_type":"x","channel":"c","data":{},"tenant_id":""}`}, reason: reasonBadTenant},
		{name: "legacy key topic outside the source's", key: "fraiseql:events:chat.", values: map[string]any{"data": `{}`}, reason: reasonBadTopic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := streamEvent(cfg, tc.key, "1-0", tc.values, streamSource(sources, tc.key))
			if tc.reason != "" {
				if r := reasonOf(err); r != tc.reason {
					t.Fatalf("err = %v (reason %q), want reason %q", err, r, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameEvent(got, tc.want) {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestEnvelopeMsgID: an envelope's id is a dedup id only within its tenant
// and topic, so no source can suppress another tenant's event by reusing
// an id; long ids are hashed within the limit.
func TestEnvelopeMsgID(t *testing.T) {
	if envelopeMsgID("acme", "chat.r1", "e1") == envelopeMsgID("globex", "chat.r1", "e1") {
		t.Error("two tenants share a dedup id")
	}
	if envelopeMsgID("acme", "chat.r1", "e1") == envelopeMsgID("acme", "chat.r2", "e1") {
		t.Error("two topics share a dedup id")
	}
	if a, b := envelopeMsgID("acme", "chat.r1", "e1"), envelopeMsgID("acme", "chat.r1", "e1"); a != b {
		t.Error("not deterministic")
	}
	long := strings.Repeat("i", 2000)
	if id := envelopeMsgID("acme", "t", long); len(id) > maxMsgID || id == envelopeMsgID("acme", "t", long+"x") {
		t.Errorf("long id: %q", id)
	}
}

func TestStreamTopicAndMsgID(t *testing.T) {
	if got := streamTopic("fraiseql", "fraiseql:events:orders.7"); got != "orders.7" {
		t.Errorf("streamTopic = %q", got)
	}
	if got := streamTopic("fraiseql", "custom"); got != "custom" {
		t.Errorf("streamTopic = %q", got)
	}
	long := strings.Repeat("k", 1000)
	id := streamMsgID(long, "1-1")
	if len(id) > maxMsgID || !strings.HasPrefix(id, "redis-stream-h") || !strings.HasSuffix(id, "-1-1") {
		t.Errorf("long key msg id %q (%d bytes)", id, len(id))
	}
	if streamMsgID(long, "1-1") == streamMsgID(long+"x", "1-1") {
		t.Error("different keys share a msg id")
	}
}

func TestReasonOf(t *testing.T) {
	tests := map[error]string{
		fmt.Errorf("x: %w", cluster.ErrBadTenant):       reasonBadTenant,
		fmt.Errorf("x: %w", cluster.ErrBadTopic):        reasonBadTopic,
		fmt.Errorf("x: %w", cluster.ErrPayloadTooLarge): reasonTooLarge,
		reject(reasonNoData, "x"):                       reasonNoData,
		errors.New("nats: timeout"):                     "",
		cluster.ErrClosed:                               "",
	}
	for err, want := range tests {
		if got := reasonOf(err); got != want {
			t.Errorf("reasonOf(%v) = %q, want %q", err, got, want)
		}
	}
}

// FuzzPubSubEvent: whatever the body, an event has a reason when refused,
// a JSON object body, a valid tenant and topic, and on a pattern channel
// exactly the channel's tenant and topic; on the legacy source only its
// tenants and topics.
func FuzzPubSubEvent(f *testing.F) {
	f.Add("fraiseql:public:chat.r1", `{"id":"1"}`, false)
	f.Add("fraiseql:acme:chat.r1", `{"id":"e","event_type":"x","data":{},"channel":"t","tenant_id":"globex"}`, false)
	f.Add("multi", `{"id":"e","event_type":"x","data":{},"channel":"chat.a","tenant_id":"initech"}`, true)
	cfg, chans, _ := testSources(f)
	f.Fuzz(func(t *testing.T, channel, payload string, legacy bool) {
		var src *legacySource
		if legacy {
			src = chans["multi"]
		}
		ev, err := pubsubEvent(cfg, channel, []byte(payload), src)
		if err != nil {
			if reasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if validateRoute(ev.tenant, ev.topic) != nil {
			t.Fatalf("invalid route %q %q", ev.tenant, ev.topic)
		}
		if src == nil {
			if tenant, topic, _ := parseChannel(cfg.Prefix, channel); ev.tenant != tenant || ev.topic != topic {
				t.Fatalf("channel %q routed to %q %q", channel, ev.tenant, ev.topic)
			}
		} else if !src.AllowTenant(ev.tenant) || !src.AllowTopic(ev.topic) {
			t.Fatalf("legacy source routed to %q %q", ev.tenant, ev.topic)
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(ev.data, &obj) != nil {
			t.Fatalf("event data %q is not a JSON object", ev.data)
		}
	})
}
