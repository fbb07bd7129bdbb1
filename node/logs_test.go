package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fraiseql/subscriptions/auth"
)

// TestConnectionLogLines runs an authenticated session with the node
// logging JSON at debug level: every line about the connection carries its
// id, tenant and user, every line about a subscription its id too, and no
// line at any level carries the token or the event's content.
func TestConnectionLogLines(t *testing.T) {
	const secret = "log-test-secret-0123456789abcdefghij"
	v, err := auth.New(auth.Config{HS256Secret: secret}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"tenant": "acme", "sub": "user-42", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	var buf logBuffer
	n := startNode(t, func(c *Config) {
		c.Auth = v
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})

	c, err := wsClient(t, "", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	g := &gqlClient{t, c}
	g.send(map[string]any{"type": "connection_init", "payload": map[string]any{"token": token}})
	if typ, _ := g.read(); typ != "connection_ack" {
		t.Fatalf("got %q, want connection_ack", typ)
	}
	g.subscribe("r1", "")
	waitFor(t, "the subscription", func() bool { return n.Stats().Subscriptions == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const content = "the-event-content-must-not-be-logged"
	if _, err := n.cl.Publish(ctx, "acme", "chat.r1", []byte(`{"id":"1","room":"r1","text":"`+content+`"}`), ""); err != nil {
		t.Fatal(err)
	}
	g.next()
	g.send(map[string]any{"id": "1", "type": "complete"})
	g.subscribe("r1", "not-a-cursor") // refused: no replay, no log line at info
	g.read()
	c.CloseNow()
	waitFor(t, "the connection closed", func() bool { return n.Stats().Connections == 0 })

	out := buf.String()
	if strings.Contains(out, token) || strings.Contains(out, strings.SplitN(token, ".", 3)[2]) {
		t.Error("the token (or its signature) is in the log")
	}
	if strings.Contains(out, content) {
		t.Error("the event's content is in the log")
	}
	seen := map[string]bool{}
	for line := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		msg, _ := m["msg"].(string)
		if _, ok := m["conn"]; !ok {
			continue
		}
		seen[msg] = true
		if m["tenant"] != "acme" || m["user"] != "user-42" || m["conn"] == "" {
			t.Errorf("connection line without its tenant, user or id: %s", line)
		}
		if (msg == "subscribed" || msg == "unsubscribed") && m["sub"] != "1" {
			t.Errorf("subscription line without its id: %s", line)
		}
	}
	for _, want := range []string{"connection initialised", "subscribed", "unsubscribed", "connection closed"} {
		if !seen[want] {
			t.Errorf("no %q line with the connection's fields; log:\n%s", want, out)
		}
	}
}
