//go:build integration

package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// orContainsFilter is a MessageFilter that ors n contains operators.
func orContainsFilter(n int) map[string]any {
	or := make([]any, n)
	for i := range or {
		or[i] = map[string]any{"text": map[string]any{"contains": "needle"}}
	}
	return map[string]any{"or": or}
}

// TestFilterOperandLimit: a filter of 1,480 contains operands (under
// 64 KiB, as variables) is refused with FILTER_TOO_COMPLEX and counted; one
// of 100 is accepted and delivers; the connection stays usable.
func TestFilterOperandLimit(t *testing.T) {
	e := newEnv(t)
	c := dialTransport(t, e.ws)
	const q = `subscription($room: ID!, $w: MessageFilter) { messageAdded(room: $room, where: $w) { id text } }`
	attack := map[string]any{"room": "r1", "w": orContainsFilter(1480)}
	if b, _ := json.Marshal(attack); len(q)+len(b) > 64<<10 {
		t.Fatalf("attack is %d bytes, over max_query_bytes", len(q)+len(b))
	}
	c.subscribe("attack", q, attack, "")
	if got := c.errorCode("attack"); got != "FILTER_TOO_COMPLEX" {
		t.Fatalf("code %s, want FILTER_TOO_COMPLEX", got)
	}
	c.subscribe("ok", q, map[string]any{"room": "r1", "w": orContainsFilter(100)}, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	e.publish("chat.r1", `{"id":"1","room":"r1","text":"a needle"}`)
	if r := c.next("ok"); !strings.Contains(string(r.Data["messageAdded"]), `"id":"1"`) {
		t.Fatalf("got %s", r.Data["messageAdded"])
	}
	body, _ := httpGet(t, "http://"+e.node.OpsAddr()+"/metrics")
	if !strings.Contains(body, `fraiseql_subscribe_errors_total{code="FILTER_TOO_COMPLEX"} 1`) {
		t.Fatalf("metrics lack the refusal:\n%s", grepLines(body, "subscribe_errors"))
	}
}

// TestEventTextClientsCannotRead: an event with a number out of float64
// range is never delivered and counts as invalid; an unpaired surrogate
// escape reaches the client as \ufffd and is counted.
func TestEventTextClientsCannotRead(t *testing.T) {
	e := newEnv(t)
	c := dialTransport(t, e.ws)
	c.subscribe("1", roomQuery, map[string]any{"room": "r1"}, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	e.publish("chat.r1", `{"id":"1","room":"r1","text":"x","score":1e400}`)
	e.publish("chat.r1", `{"id":"2","room":"r1","text":"a\ud800b"}`)
	r := c.next("1")
	if got := string(r.Data["messageAdded"]); !strings.Contains(got, `"id":"2"`) || !strings.Contains(got, `"text":"a\ufffdb"`) {
		t.Fatalf("got %s, want event 2 with its lone surrogate replaced (event 1 must never arrive)", got)
	}
	c.expectNothing(200 * time.Millisecond)
	body, _ := httpGet(t, "http://"+e.node.OpsAddr()+"/metrics")
	for _, want := range []string{`fraiseql_events_rejected_total{reason="invalid"} 1`, `fraiseql_event_text_replaced_total 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(body, "fraiseql_event"))
		}
	}
}
