package postgres

import (
	"strings"
	"testing"
)

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name, channel, payload string
		want                   Event
		wantErr                string
	}{
		{
			name:    "full envelope",
			channel: "fraiseql_orders",
			payload: `{"id":"e1","event_type":"order_updated","data":{"id":"7","status":"paid"},"channel":"orders.7","timestamp":"2024-01-01T00:00:00Z","correlation_id":"c"}`,
			want:    Event{Tenant: "public", Topic: "orders.7", Data: []byte(`{"id":"7","status":"paid"}`), MsgID: "e1"},
		},
		{
			name:    "tenant_id and no channel: topic from channel name",
			channel: "fraiseql_chat",
			payload: `{"id":42,"data":{"text":"hi"},"tenant_id":"acme"}`,
			want:    Event{Tenant: "acme", Topic: "chat", Data: []byte(`{"text":"hi"}`), MsgID: "42"},
		},
		{
			name:    "channel without prefix, no id",
			channel: "metrics",
			payload: `{"data":{"cpu":1}}`,
			want:    Event{Tenant: "public", Topic: "metrics", Data: []byte(`{"cpu":1}`)},
		},
		{name: "not json", channel: "fraiseql_x", payload: `hello`, wantErr: reasonBadEnvelope},
		{name: "trailing garbage", channel: "fraiseql_x", payload: `{"data":{}} x`, wantErr: reasonBadEnvelope},
		{name: "no data", channel: "fraiseql_x", payload: `{"id":"1"}`, wantErr: reasonMissingData},
		{name: "null data", channel: "fraiseql_x", payload: `{"data":null}`, wantErr: reasonMissingData},
		{name: "data array", channel: "fraiseql_x", payload: `{"data":[1]}`, wantErr: reasonNotObject},
		{name: "id object", channel: "fraiseql_x", payload: `{"id":{},"data":{}}`, wantErr: reasonBadEnvelope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEnvelope(tc.channel, []byte(tc.payload), "public")
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Tenant != tc.want.Tenant || got.Topic != tc.want.Topic || string(got.Data) != string(tc.want.Data) || got.MsgID != tc.want.MsgID {
				t.Fatalf("got %+v (data %s), want %+v (data %s)", got, got.Data, tc.want, tc.want.Data)
			}
		})
	}
}

func TestLongEnvelopeIDIsHashed(t *testing.T) {
	ev, err := ParseEnvelope("fraiseql_x", []byte(`{"id":"`+strings.Repeat("a", 5000)+`","data":{}}`), "public")
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.MsgID) > maxMsgIDLen || !strings.HasPrefix(ev.MsgID, "sha256-") {
		t.Fatalf("msg id %q", ev.MsgID)
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
