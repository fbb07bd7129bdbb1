package postgres

import (
	"strings"
	"testing"
)

func TestNotifyEvent(t *testing.T) {
	fixed := Config{NotifyChannels: []string{"fraiseql_orders"}}.WithDefaults().resolveLegacy()["fraiseql_orders"]
	multi := Config{Tenant: "public", Legacy: []LegacySource{{Channels: []string{"c"}, Tenant: "acme", Tenants: []string{"globex"}, Topics: []string{"orders.*", "chat.>"}}}}.
		WithDefaults().resolveLegacy()["c"]
	anyT := Config{Legacy: []LegacySource{{Channels: []string{"c"}, Tenants: []string{"*"}}}}.WithDefaults().resolveLegacy()["c"]
	tests := []struct {
		name    string
		src     *legacySource
		channel string
		payload string
		want    Event // MsgID: the id before scoping; Tenant and Topic also on refusals
		wantErr string
	}{
		{
			name: "full envelope", src: fixed, channel: "fraiseql_orders",
			payload: `{"id":"e1","event_type":"order_updated","data":{"id":"7","status":"paid"},"channel":"orders.7","timestamp":"2024-01-01T00:00:00Z","correlation_id":"c"}`,
			want:    Event{Tenant: "public", Topic: "orders.7", Data: []byte(`{"id":"7","status":"paid"}`), MsgID: "e1"},
		},
		{
			name: "a traceparent goes on to the nodes", src: fixed, channel: "fraiseql_orders",
			payload: `{"id":"e1","data":{"id":"7"},"channel":"orders.7","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`,
			want:    Event{Tenant: "public", Topic: "orders.7", Data: []byte(`{"id":"7"}`), MsgID: "e1", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		},
		{
			name: "its own tenant named", src: fixed, channel: "fraiseql_chat",
			payload: `{"id":42,"data":{"text":"hi"},"tenant_id":"public"}`,
			want:    Event{Tenant: "public", Topic: "chat", Data: []byte(`{"text":"hi"}`), MsgID: "42"},
		},
		{
			name: "null tenant_id: the source's", src: multi, channel: "c",
			payload: `{"data":{"n":1},"channel":"orders.1","tenant_id":null}`,
			want:    Event{Tenant: "acme", Topic: "orders.1", Data: []byte(`{"n":1}`)},
		},
		{
			name: "channel without prefix, no id", src: anyT, channel: "metrics",
			payload: `{"data":{"cpu":1}}`,
			want:    Event{Tenant: "public", Topic: "metrics", Data: []byte(`{"cpu":1}`)},
		},
		{name: "another tenant on notify_channels", src: fixed, channel: "fraiseql_x", payload: `{"data":{},"tenant_id":"globex","channel":"audit"}`,
			want: Event{Tenant: "globex", Topic: "audit"}, wantErr: reasonTenantDenied},
		{name: "listed tenant", src: multi, channel: "c", payload: `{"data":{},"tenant_id":"globex","channel":"chat.r1.x"}`,
			want: Event{Tenant: "globex", Topic: "chat.r1.x", Data: []byte(`{}`)}},
		{name: "unlisted tenant", src: multi, channel: "c", payload: `{"data":{},"tenant_id":"public","channel":"orders.1"}`,
			want: Event{Tenant: "public", Topic: "orders.1"}, wantErr: reasonTenantDenied},
		{name: "numeric tenant", src: anyT, channel: "c", payload: `{"data":{},"tenant_id":42,"channel":"x"}`,
			want: Event{Tenant: "42", Topic: "x", Data: []byte(`{}`)}},
		{name: "empty tenant", src: anyT, channel: "c", payload: `{"data":{},"tenant_id":"","channel":"x"}`, want: Event{Topic: "x"}, wantErr: reasonBadTenant},
		{name: "wildcard tenant", src: anyT, channel: "c", payload: `{"data":{},"tenant_id":">","channel":"x"}`, want: Event{Tenant: ">", Topic: "x"}, wantErr: reasonBadTenant},
		{name: "dotted tenant", src: anyT, channel: "c", payload: `{"data":{},"tenant_id":"a.b","channel":"x"}`, want: Event{Tenant: "a.b", Topic: "x"}, wantErr: reasonBadTenant},
		{name: "tenant object", src: anyT, channel: "c", payload: `{"data":{},"tenant_id":{},"channel":"x"}`, want: Event{Tenant: "public", Topic: "x"}, wantErr: reasonBadEnvelope},
		{name: "topic outside topics", src: multi, channel: "c", payload: `{"data":{},"channel":"audit"}`, want: Event{Tenant: "acme", Topic: "audit"}, wantErr: reasonTopicDenied},
		{name: "topic one token short", src: multi, channel: "c", payload: `{"data":{},"channel":"orders"}`, want: Event{Tenant: "acme", Topic: "orders"}, wantErr: reasonTopicDenied},
		{name: "wildcard topic", src: anyT, channel: "c", payload: `{"data":{},"channel":"chat.>"}`, want: Event{Tenant: "public", Topic: "chat.>"}, wantErr: reasonBadTopic},
		{name: "empty topic token", src: anyT, channel: "c", payload: `{"data":{},"channel":"chat..r1"}`, want: Event{Tenant: "public", Topic: "chat..r1"}, wantErr: reasonBadTopic},
		{name: "not json", src: fixed, channel: "fraiseql_x", payload: `hello`, wantErr: reasonBadEnvelope},
		{name: "trailing garbage", src: fixed, channel: "fraiseql_x", payload: `{"data":{}} x`, wantErr: reasonBadEnvelope},
		{name: "no data", src: fixed, channel: "fraiseql_x", payload: `{"id":"1"}`, want: Event{Tenant: "public", Topic: "x"}, wantErr: reasonMissingData},
		{name: "null data", src: fixed, channel: "fraiseql_x", payload: `{"data":null}`, want: Event{Tenant: "public", Topic: "x"}, wantErr: reasonMissingData},
		{name: "data array", src: fixed, channel: "fraiseql_x", payload: `{"data":[1]}`, want: Event{Tenant: "public", Topic: "x"}, wantErr: reasonNotObject},
		{name: "id object", src: fixed, channel: "fraiseql_x", payload: `{"id":{},"data":{}}`, want: Event{Tenant: "public", Topic: "x"}, wantErr: reasonBadEnvelope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.src.notifyEvent(tc.channel, []byte(tc.payload))
			if got.Tenant != tc.want.Tenant || got.Topic != tc.want.Topic {
				t.Errorf("routed to %q %q, want %q %q", got.Tenant, got.Topic, tc.want.Tenant, tc.want.Topic)
			}
			if tc.wantErr != "" {
				if err == nil || reasonOf(err) != tc.wantErr {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantID := ""
			if tc.want.MsgID != "" {
				wantID = notifyMsgID(tc.want.Tenant, tc.want.Topic, tc.want.MsgID)
			}
			if string(got.Data) != string(tc.want.Data) || got.MsgID != wantID || got.TraceParent != tc.want.TraceParent {
				t.Fatalf("got %+v (data %s), want data %s, msg id %q", got, got.Data, tc.want.Data, wantID)
			}
		})
	}
}

// TestRefusalNamesTheSetting: the logged error says which key to change.
func TestRefusalNamesTheSetting(t *testing.T) {
	srcs := Config{NotifyChannels: []string{"a"}, Legacy: []LegacySource{{Channels: []string{"b"}}, {Channels: []string{"c"}, Tenants: []string{"x"}, Topics: []string{"chat.*"}}}}.
		WithDefaults().resolveLegacy()
	for _, tc := range []struct{ ch, payload, want string }{
		{"a", `{"data":{},"tenant_id":"globex"}`, "bridges.postgres.notify_channels accept only tenant \"public\""},
		{"b", `{"data":{},"tenant_id":"globex"}`, "list more in bridges.postgres.legacy[0].tenants"},
		{"c", `{"data":{},"tenant_id":"globex"}`, "bridges.postgres.legacy[1].tenants"},
		{"c", `{"data":{},"channel":"audit"}`, "outside bridges.postgres.legacy[1].topics"},
	} {
		_, err := srcs[tc.ch].notifyEvent(tc.ch, []byte(tc.payload))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: err %v, want it to say %s", tc.ch, tc.payload, err, tc.want)
		}
	}
}

// TestNotifyMsgID: a NOTIFY envelope's dedup id is scoped to its tenant
// and topic and can never be another source's ("pg-", "pgcl-", "redis-").
func TestNotifyMsgID(t *testing.T) {
	ids := map[string]bool{}
	for _, tt := range [][3]string{{"public", "x", "pg-1"}, {"acme", "x", "pg-1"}, {"public", "y", "pg-1"}, {"public", "x", "pgcl-1"}, {"public", "x.y", "1"}, {"public.x", "y", "1"}} {
		id := notifyMsgID(tt[0], tt[1], tt[2])
		if !strings.HasPrefix(id, "pgn-") || !strings.HasSuffix(id, "-"+tt[2]) {
			t.Errorf("notifyMsgID(%q) = %q", tt, id)
		}
		if ids[id] {
			t.Errorf("notifyMsgID(%q) = %q collides", tt, id)
		}
		ids[id] = true
	}
	if a, b := notifyMsgID("public", "x", "e1"), notifyMsgID("public", "x", "e1"); a != b {
		t.Error("not deterministic")
	}
}

func TestLongEnvelopeIDIsHashed(t *testing.T) {
	scope := len(notifyMsgID("public", "x", ""))
	for _, n := range []int{maxMsgIDLen - scope - 1, maxMsgIDLen - scope, maxMsgIDLen - scope + 1, 5000} {
		id := strings.Repeat("a", n)
		got := notifyMsgID("public", "x", id)
		hashed := !strings.HasSuffix(got, "-"+id)
		if len(got) > maxMsgIDLen || hashed != (n > maxMsgIDLen-scope) {
			t.Errorf("id of %d bytes: msg id %q (%d bytes, hashed %v)", n, got, len(got), hashed)
		}
	}
	if notifyMsgID("public", "x", strings.Repeat("a", 5000)) == notifyMsgID("public", "x", strings.Repeat("a", 5001)) {
		t.Error("long ids collide")
	}
}

func TestExpandTemplate(t *testing.T) {
	vals := map[string]string{"entity_type": "order", "entity_id": "a.b*>c d", "operation": "update"}
	tests := []struct{ tpl, want, wantErr string }{
		{"{entity_type}.{entity_id}", "order.a_b__c_d", ""},
		{"changes.{entity_type}.{operation}", "changes.order.update", ""},
		{"static", "static", ""},
		{"{nope}", "", "unknown placeholder"},
		{"{entity_type", "", "unclosed"},
		{"x}", "", "unbalanced"},
	}
	for _, tc := range tests {
		got, err := expandTemplate(tc.tpl, vals)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %s", tc.tpl, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.tpl, got, err, tc.want)
		}
	}
	if got, _ := expandTemplate("{entity_id}", map[string]string{"entity_id": ""}); got != "_" {
		t.Errorf("empty value: %q", got)
	}
}

func TestIsObject(t *testing.T) {
	for in, want := range map[string]bool{`{}`: true, ` {"a":1} `: true, `[1]`: false, `"x"`: false, `{`: false, `{}{}`: false, ``: false} {
		if got := isObject([]byte(in)); got != want {
			t.Errorf("isObject(%q) = %v", in, got)
		}
	}
}
