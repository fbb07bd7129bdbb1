package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fraiseql/subscriptions/cluster"
)

func testConfig() *Config {
	c := Config{}.withDefaults()
	return &c
}

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

func TestPubSubEvent(t *testing.T) {
	cfg := testConfig()
	tests := []struct {
		name, channel, payload string
		legacy                 bool
		want                   event
		reason                 string
	}{
		{name: "plain event", channel: "fraiseql:public:chat.r1", payload: ` {"id":"1","room":"r1","text":"hi"} `,
			want: event{tenant: "public", topic: "chat.r1", data: []byte(`{"id":"1","room":"r1","text":"hi"}`)}},
		{name: "envelope without tenant_id", channel: "fraiseql:events",
			payload: `{"id":"e1","event_type":"message_added","data":{"id":"1","room":"r1"},"channel":"chat.r1","timestamp":"2024-01-01T00:00:00Z","correlation_id":null}`,
			want:    event{tenant: "public", topic: "chat.r1", data: []byte(`{"id":"1","room":"r1"}`), msgID: "redis-e1"}},
		{name: "envelope with tenant_id on a legacy channel", channel: "events", legacy: true,
			payload: `{"id":"e2","event_type":"x","data":{"a":1},"channel":"orders.7","tenant_id":"acme","timestamp":"t","correlation_id":"c"}`,
			want:    event{tenant: "acme", topic: "orders.7", data: []byte(`{"a":1}`), msgID: "redis-e2"}},
		{name: "envelope with numeric id", channel: "fraiseql:x:y",
			payload: `{"id":42,"event_type":"x","data":{},"channel":"t"}`,
			want:    event{tenant: "public", topic: "t", data: []byte(`{}`), msgID: "redis-42"}},
		{name: "envelope without id has no dedup id", channel: "fraiseql:x:y",
			payload: `{"event_type":"x","data":{},"channel":"t","tenant_id":null}`,
			want:    event{tenant: "public", topic: "t", data: []byte(`{}`)}},
		{name: "not json", channel: "fraiseql:public:chat", payload: `hello`, reason: reasonNotJSONObject},
		{name: "json array", channel: "fraiseql:public:chat", payload: `[1,2]`, reason: reasonNotJSONObject},
		{name: "truncated json", channel: "fraiseql:public:chat", payload: `{"a":`, reason: reasonNotJSONObject},
		{name: "bad channel", channel: "fraiseql:events", payload: `{"a":1}`, reason: reasonBadChannel},
		{name: "plain event on legacy channel", channel: "events", legacy: true, payload: `{"a":1}`, reason: reasonBadEnvelope},
		{name: "envelope data not object", channel: "c", payload: `{"event_type":"x","data":"s","channel":"t"}`, reason: reasonNotJSONObject},
		{name: "envelope channel not string", channel: "c", payload: `{"event_type":"x","data":{},"channel":7}`, reason: reasonBadEnvelope},
		{name: "envelope tenant_id object", channel: "c", payload: `{"event_type":"x","data":{},"channel":"t","tenant_id":{}}`, reason: reasonBadEnvelope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pubsubEvent(cfg, tc.channel, []byte(tc.payload), tc.legacy)
			if tc.reason != "" {
				if r := reasonOf(err); r != tc.reason {
					t.Fatalf("err = %v (reason %q), want reason %q", err, r, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestStreamEvent(t *testing.T) {
	cfg := testConfig()
	key := "fraiseql:events:chat.r1"
	tests := []struct {
		name   string
		values map[string]any
		want   event
		reason string
	}{
		{name: "data field", values: map[string]any{"data": `{"id":"1"}`},
			want: event{tenant: "public", topic: "chat.r1", data: []byte(`{"id":"1"}`), msgID: "redis-stream-fraiseql:events:chat.r1-1-0"}},
		{name: "envelope in data keeps the key's topic and the entry's id", values: map[string]any{"data": `{"id":"e","event_type":"x","channel":"other","data":{"id":"2"},"tenant_id":"acme"}`},
			want: event{tenant: "acme", topic: "chat.r1", data: []byte(`{"id":"2"}`), msgID: "redis-stream-fraiseql:events:chat.r1-1-0"}},
		{name: "no data", values: map[string]any{"x": "1"}, reason: reasonNoData},
		{name: "data not object", values: map[string]any{"data": `"s"`}, reason: reasonNotJSONObject},
		{name: "data not json", values: map[string]any{"data": `{nope`}, reason: reasonNotJSONObject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := streamEvent(cfg, key, "1-0", tc.values)
			if tc.reason != "" {
				if r := reasonOf(err); r != tc.reason {
					t.Fatalf("err = %v (reason %q), want reason %q", err, r, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
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

func FuzzPubSubEvent(f *testing.F) {
	f.Add("fraiseql:public:chat.r1", `{"id":"1"}`, false)
	f.Add("fraiseql:events", `{"id":"e","event_type":"x","data":{},"channel":"t","tenant_id":"a"}`, true)
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, channel, payload string, legacy bool) {
		ev, err := pubsubEvent(cfg, channel, []byte(payload), legacy)
		if err != nil {
			if reasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(ev.data, &obj) != nil {
			t.Fatalf("event data %q is not a JSON object", ev.data)
		}
	})
}
