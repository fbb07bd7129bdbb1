//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/node"
)

// withLimits starts NATS and a node whose limits are changed by f.
func withLimits(t *testing.T, f func(*limits.Config)) *env {
	t.Helper()
	return startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) { f(&c.Limits) })
}

// subscribeAck subscribes and reports "" when the subscription was
// accepted (no error arrives), or the error code.
func (c *client) subscribeResult(id string, e *env, wantSubs int64) string {
	c.t.Helper()
	c.subscribe(id, roomQuery, map[string]any{"room": "r1"}, "")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if e.node.Stats().Subscriptions >= wantSubs {
			return ""
		}
		m, err := c.readErr(20 * time.Millisecond)
		if err != nil && err != errNoMessage {
			c.t.Fatalf("connection ended: %v", err)
		}
		if err == nil && m.Type == "error" {
			var errs []gqlError
			json.Unmarshal(m.Payload, &errs)
			code, _ := errs[0].Extensions["code"].(string)
			return code
		}
	}
	c.t.Fatalf("subscription %s neither accepted nor refused", id)
	return ""
}

func TestSubscribeRatePerUser(t *testing.T) {
	// Defaults: 50 per minute, 5 per connection. One user (the test's IP).
	e := withLimits(t, func(l *limits.Config) {})
	var clients []*client
	for i := 0; i < 10; i++ {
		c := dialTransport(t, e.ws)
		clients = append(clients, c)
		for j := 0; j < 5; j++ {
			c.subscribe(fmt.Sprintf("s%d", j), roomQuery, map[string]any{"room": "r1"}, "")
		}
	}
	waitFor(t, 10*time.Second, "50 subscriptions", func() bool { return e.node.Stats().Subscriptions == 50 })

	last := dialTransport(t, e.ws)
	last.subscribe("51st", roomQuery, map[string]any{"room": "r1"}, "")
	m := last.expectType("error")
	var errs []gqlError
	json.Unmarshal(m.Payload, &errs)
	if code := errs[0].Extensions["code"]; code != "RATE_LIMITED" {
		t.Fatalf("51st: %s", m.raw)
	}
	if ra, ok := errs[0].Extensions["retryAfter"].(float64); !ok || ra <= 0 || ra > 60 {
		t.Fatalf("51st: retryAfter %v, want seconds in (0, 60]", errs[0].Extensions["retryAfter"])
	}
	// The 50 before it work, and the refused connection stays usable.
	e.publish("chat.r1", `{"id":"1","room":"r1","text":"to the 50"}`)
	for _, c := range clients {
		for j := 0; j < 5; j++ {
			c.expectType("next")
		}
	}
	last.send(`{"type":"ping"}`)
	last.expectNothing(100 * time.Millisecond) // pong is skipped by read; the conn is open
}

func TestSubscriptionsPerConnection(t *testing.T) {
	e := withLimits(t, func(l *limits.Config) {})
	c := dialTransport(t, e.ws)
	for i := 1; i <= 5; i++ { // limit-1 and limit are accepted
		if code := c.subscribeResult(fmt.Sprint(i), e, int64(i)); code != "" {
			t.Fatalf("subscription %d refused: %s", i, code)
		}
	}
	if code := c.subscribeResult("6", e, 6); code != "SUBSCRIPTION_LIMIT" { // limit+1
		t.Fatalf("6th: %q, want SUBSCRIPTION_LIMIT", code)
	}
	c.send(`{"id":"1","type":"complete"}`)
	waitFor(t, 5*time.Second, "a free slot", func() bool { return e.node.Stats().Subscriptions == 4 })
	if code := c.subscribeResult("7", e, 5); code != "" {
		t.Fatalf("after a complete: %s", code)
	}
}

// TestSubscribeBurstAttack: many connections of one user subscribing at
// once cannot exceed the user's limit in total.
func TestSubscribeBurstAttack(t *testing.T) {
	e := withLimits(t, func(l *limits.Config) {
		l.SubscribeRate = limits.Rate(limits.Per(10, time.Hour)) // no refill during the test
		l.SubscribeBurst = 10
		l.ConnRatePerIP = -1
	})
	const conns, each = 20, 5
	var clients []*client
	for i := 0; i < conns; i++ {
		clients = append(clients, dialTransport(t, e.ws))
	}
	var refused atomic.Int64
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				c.subscribe(fmt.Sprint(j), roomQuery, map[string]any{"room": "r1"}, "")
			}
			for {
				m, err := c.readErr(time.Second)
				if err != nil {
					return // errNoMessage: every answer has arrived
				}
				if m.Type == "error" && strings.Contains(string(m.Payload), "RATE_LIMITED") {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := e.node.Stats().Subscriptions; got != 10 {
		t.Fatalf("accepted %d subscriptions in a burst of %d, want exactly 10", got, conns*each)
	}
	if refused.Load() != conns*each-10 {
		t.Fatalf("refused %d, want %d", refused.Load(), conns*each-10)
	}
}

func TestEventRateDropsAreCounted(t *testing.T) {
	e := withLimits(t, func(l *limits.Config) {
		l.EventRate = limits.Rate(limits.Per(1, time.Hour)) // burst only, then no refill
		l.EventBurst = 5
	})
	c := dialTransport(t, e.ws)
	c.subscribe("1", roomQuery, map[string]any{"room": "r1"}, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	for i := 1; i <= 20; i++ {
		e.publish("chat.r1", fmt.Sprintf(`{"id":"%d","room":"r1","text":"x"}`, i))
	}
	for i := 1; i <= 5; i++ {
		r := c.next("1")
		if r.Extensions.Dropped != 0 {
			t.Fatalf("event %d carries dropped %d", i, r.Extensions.Dropped)
		}
	}
	c.expectNothing(300 * time.Millisecond)
	body, _ := httpGet(t, "http://"+e.node.OpsAddr()+"/metrics")
	if !strings.Contains(body, `fraiseql_limit_refusals_total{limit="event_rate"} 15`) {
		t.Fatalf("metrics lack 15 event_rate drops:\n%s", grepLines(body, "limit_refusals"))
	}
}

func TestEventPayloadLimitAtIngest(t *testing.T) {
	e := newEnv(t)
	c := dialTransport(t, e.ws)
	c.subscribe("1", `subscription { messageAdded(room: "big") { id } }`, nil, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	event := func(size int) []byte { // a valid JSON object of exactly size bytes
		head := `{"id":"` + fmt.Sprint(size) + `","room":"big","text":"`
		return []byte(head + strings.Repeat("x", size-len(head)-2) + `"}`)
	}
	max := 1 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.cl.Publish(ctx, "public", "chat.big", event(max+1), ""); !errors.Is(err, cluster.ErrPayloadTooLarge) {
		t.Fatalf("publish of 1 MiB + 1: %v, want ErrPayloadTooLarge", err)
	}
	// A raw NATS publisher bypasses cluster.Publish: the node rejects it.
	if err := e.cl.Conn().Publish("fraiseql.public.chat.big", event(max+1)); err != nil {
		t.Fatal(err)
	}
	e.publish("chat.big", event(max-1))
	e.publish("chat.big", event(max))
	for _, want := range []string{fmt.Sprint(max - 1), fmt.Sprint(max)} {
		var msg struct{ ID string }
		json.Unmarshal(c.next("1").Data["messageAdded"], &msg)
		if msg.ID != want {
			t.Fatalf("got event %s, want %s (1 MiB + 1 must never be delivered)", msg.ID, want)
		}
	}
	c.expectNothing(300 * time.Millisecond)
	body, _ := httpGet(t, "http://"+e.node.OpsAddr()+"/metrics")
	if !strings.Contains(body, `fraiseql_events_rejected_total{reason="too_large"} 1`) {
		t.Fatalf("metrics lack the rejected event:\n%s", grepLines(body, "events_rejected"))
	}
}

func TestMessageSizeLimitClosesOnlyThatConnection(t *testing.T) {
	e := newEnv(t)
	other := dialTransport(t, e.ws)
	other.subscribe("1", roomQuery, map[string]any{"room": "r1"}, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	ping := func(size int) string { // a ping message of exactly size bytes
		head, tail := `{"type":"ping","payload":{"p":"`, `"}}`
		return head + strings.Repeat("x", size-len(head)-len(tail)) + tail
	}
	c := dialTransport(t, e.ws)
	c.send(ping(256<<10 - 1))
	c.send(ping(256 << 10))
	c.send(`{"type":"ping"}`)
	c.expectNothing(200 * time.Millisecond) // still open: pongs are skipped by read
	c.send(ping(256<<10 + 1))
	c.expectClose(websocket.StatusMessageTooBig)

	e.publish("chat.r1", `{"id":"1","room":"r1","text":"others are fine"}`)
	other.next("1")
}

func TestComplexityBombsAreRefused(t *testing.T) {
	e := newEnv(t)
	c := dialTransport(t, e.ws)
	var aliases strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&aliases, "a%d: id ", i)
	}
	nested := `subscription { messageAdded(room: "r1") { id ` + strings.Repeat("... on Message { ", 700) + "id" + strings.Repeat(" }", 700) + " } }"
	cases := []struct{ name, query, code string }{
		{"1000 aliases", `subscription { messageAdded(room: "r1") { ` + aliases.String() + `} }`, "QUERY_TOO_COMPLEX"},
		{"700 nested inline fragments", nested, "QUERY_TOO_COMPLEX"},
		{"fragment cycle", `subscription { messageAdded(room: "r1") { ...A } } fragment A on Message { author { ...B } } fragment B on User { ...C } fragment C on User { id ...B }`, "GRAPHQL_VALIDATION_FAILED"},
		{"query over 64 KiB", `subscription { messageAdded(room: "r1") { id } } # ` + strings.Repeat("x", 64<<10), "QUERY_TOO_LARGE"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprint("bomb", i)
			c.subscribe(id, tc.query, nil, "")
			if got := c.errorCode(id); got != tc.code {
				t.Fatalf("code %s, want %s", got, tc.code)
			}
		})
	}
}

func TestSubscriptionLifetime(t *testing.T) {
	e := withLimits(t, func(l *limits.Config) { l.MaxSubscriptionDuration = limits.Duration(time.Second) })
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			c := dial(t, e.ws, proto)
			c.send(`{"type":"connection_init"}`)
			c.expectType("connection_ack")
			start := `{"id":"1","type":"subscribe","payload":{"query":"subscription { messageAdded(room: \"r1\") { id } }"}}`
			if proto == "graphql-ws" {
				start = strings.Replace(start, `"subscribe"`, `"start"`, 1)
			}
			c.send(start)
			waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
			m := c.expectType("error")
			if !strings.Contains(string(m.Payload), "SUBSCRIPTION_EXPIRED") {
				t.Fatalf("expiry error: %s", m.raw)
			}
			c.expectType("complete")
			waitFor(t, 5*time.Second, "index cleanup", func() bool {
				s := e.node.Stats()
				return s.Subscriptions == 0 && s.Plans == 0 && s.Subjects == 0
			})
		})
	}
}

func TestConnectionLimitsRefuseBeforeUpgrade(t *testing.T) {
	cases := []struct {
		name   string
		limits func(*limits.Config)
		status int
	}{
		{"global cap", func(l *limits.Config) { l.MaxConns = 3 }, http.StatusServiceUnavailable},
		{"per-user cap", func(l *limits.Config) { l.MaxConnsPerUser = 3 }, http.StatusTooManyRequests},
		{"per-IP rate", func(l *limits.Config) {
			l.ConnRatePerIP, l.ConnBurstPerIP = limits.Rate(limits.Per(1, time.Hour)), 3
		}, http.StatusTooManyRequests},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := withLimits(t, tc.limits)
			for i := 0; i < 3; i++ { // limit-1 and limit
				dialTransport(t, e.ws)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, resp, err := websocket.Dial(ctx, e.ws, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("4th connection: err %v, response %v; want HTTP %d", err, resp, tc.status)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After header")
			}
			if got := e.node.Stats().Connections; got != 3 {
				t.Fatalf("connections = %d, want 3", got)
			}
		})
	}
}

func httpGet(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String(), resp.StatusCode
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
