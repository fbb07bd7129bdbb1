package node

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
	"github.com/fraiseql/subscriptions/ws"
)

// streamReq sends one graphql-sse single connection mode request to n
// and returns its status, body and error code.
func streamReq(t *testing.T, n *Node, method, token, jwtToken, body string) (int, string, string) {
	t.Helper()
	target := "http://" + n.Addr() + "/graphql"
	if method == http.MethodDelete {
		target += "?operationId=" + body
		body = ""
	}
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set(ws.StreamTokenHeader, token)
	}
	if jwtToken != "" {
		req.Header.Set("Authorization", "Bearer "+jwtToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb struct {
		Errors []struct{ Extensions struct{ Code string } }
	}
	code := ""
	if json.Unmarshal(b, &eb) == nil && len(eb.Errors) > 0 {
		code = eb.Errors[0].Extensions.Code
	}
	return resp.StatusCode, string(b), code
}

func roomOp(id, query string) string {
	b, _ := json.Marshal(map[string]any{"query": query, "extensions": map[string]string{"operationId": id}})
	return string(b)
}

// singleNext reads the stream's next `next` event (skipping keep-alives):
// its operation id, message id and SSE id, which must be its cursor.
func (s *sseClient) singleNext() (op, msg, id string) {
	s.t.Helper()
	e := s.nextEvent()
	var p struct {
		ID      string
		Payload struct {
			Data struct {
				MessageAdded struct{ ID string } `json:"messageAdded"`
			} `json:"data"`
			Extensions struct{ Cursor string } `json:"extensions"`
		}
	}
	if err := json.Unmarshal([]byte(e.data), &p); err != nil {
		s.t.Fatal(err)
	}
	if e.id == "" || e.id != p.Payload.Extensions.Cursor {
		s.t.Fatalf("event id %q is not its cursor %q", e.id, p.Payload.Extensions.Cursor)
	}
	return p.ID, p.Payload.Data.MessageAdded.ID, e.id
}

// Single connection mode on a cluster without sticky sessions: the stream
// is reserved and opened on node a; subscribe and stop requests land on
// node b, which authenticates them and forwards them over NATS to a. A
// user of another tenant holding the token can neither subscribe on the
// stream nor stop its operations; a GET on b is refused with a clear
// code; a node that is gone answers for nobody.
func TestSSESingleConnectionAcrossNodes(t *testing.T) {
	const secret = "sse-single-secret-0123456789abcdefgh"
	v, err := auth.New(auth.Config{HS256Secret: secret}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	sign := func(tenant, user string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"tenant": tenant, "sub": user, "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	ann, eve, evilAnn := sign("acme", "ann"), sign("evil", "eve"), sign("evil", "ann")
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	url := clustertest.RunServer(t)
	withAuth := func(c *Config) { c.Auth = v; c.Limits.MaxSubscriptionsPerConn = 2 }
	a := startNodeAt(t, url, withAuth)
	b := startNodeAt(t, url, withAuth)

	if status, _, code := streamReq(t, a, http.MethodPut, "", "", ""); status != http.StatusForbidden || code != ws.CodeForbidden {
		t.Fatalf("PUT without a token: %d %s", status, code)
	}
	status, token, _ := streamReq(t, a, http.MethodPut, "", ann, "")
	if status != http.StatusCreated || !strings.HasPrefix(token, a.idPrefix+".") {
		t.Fatalf("PUT: %d %q", status, token)
	}
	if r := sseOpen(t, b, http.MethodGet, "", map[string]string{ws.StreamTokenHeader: token}); r.resp.StatusCode != http.StatusMisdirectedRequest ||
		errorBody(t, r.resp) != ws.CodeStreamOnAnotherNode {
		t.Fatalf("GET on another node: %d", r.resp.StatusCode)
	}
	s := sseOpen(t, a, http.MethodGet, "", map[string]string{ws.StreamTokenHeader: token}) // the token alone, as EventSource
	if s.resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", s.resp.StatusCode)
	}

	// The attack first: tenant evil's users, with acme's token, on b.
	for _, who := range []string{eve, evilAnn} {
		if status, _, code := streamReq(t, b, http.MethodPost, token, who, roomOp("o1", roomQuery)); status != http.StatusNotFound || code != ws.CodeStreamNotFound {
			t.Fatalf("another tenant subscribing on the stream: %d %s", status, code)
		}
	}
	if got := a.met.subsOpen.Load(); got != 0 {
		t.Fatalf("%d subscriptions after refused requests", got)
	}

	if status, body, _ := streamReq(t, b, http.MethodPost, token, ann, roomOp("o1", roomQuery)); status != http.StatusAccepted {
		t.Fatalf("subscribe through b: %d %s", status, body)
	}
	waitFor(t, "the subscription on a", func() bool { return a.met.subsOpen.Load() == 1 })
	publishRoom(t, a, "evil", 1) // another tenant's room
	publishRoom(t, a, "acme", 2, 3)
	for _, want := range []string{"2", "3"} {
		if op, msg, _ := s.singleNext(); op != "o1" || msg != want {
			t.Fatalf("got %s %s, want o1 %s", op, msg, want)
		}
	}
	if status, body, code := streamReq(t, b, http.MethodPost, token, ann, roomOp("bad", `subscription { noSuchField }`)); status != http.StatusBadRequest ||
		code != "GRAPHQL_VALIDATION_FAILED" {
		t.Fatalf("invalid subscription: %d %s", status, body)
	}
	if status, _, _ := streamReq(t, b, http.MethodPost, token, ann, roomOp("o2", roomQuery)); status != http.StatusAccepted {
		t.Fatalf("second subscription: %d", status)
	}
	if status, _, code := streamReq(t, b, http.MethodPost, token, ann, roomOp("o3", roomQuery)); status != http.StatusBadRequest || code != "SUBSCRIPTION_LIMIT" {
		t.Fatalf("third subscription (limits.max_subscriptions_per_conn 2): %d %s", status, code)
	}

	if status, _, code := streamReq(t, b, http.MethodDelete, token, eve, "o1"); status != http.StatusNotFound || code != ws.CodeStreamNotFound {
		t.Fatalf("another tenant stopping an operation: %d %s", status, code)
	}
	if got := a.met.subsOpen.Load(); got != 2 {
		t.Fatalf("%d subscriptions after a refused stop, want 2", got)
	}
	if status, _, _ := streamReq(t, b, http.MethodDelete, token, ann, "o1"); status != http.StatusOK {
		t.Fatalf("stop through b: %d", status)
	}
	waitFor(t, "the stop", func() bool { return a.met.subsOpen.Load() == 1 })
	publishRoom(t, a, "acme", 4)
	if op, msg, _ := s.singleNext(); op != "o2" || msg != "4" {
		t.Fatalf("got %s %s, want o2 4 (o1 stopped)", op, msg)
	}
	if got := testutil.ToFloat64(b.sm.forwarded.WithLabelValues(forwardOK)); got < 8 {
		t.Fatalf("fraiseql_sse_forwarded_total{result=ok} = %v on b", got)
	}

	s.c.Close()
	waitFor(t, "the stream's end", func() bool { return a.met.subsOpen.Load() == 0 && a.wss.Conns() == 0 })
	if status, _, code := streamReq(t, b, http.MethodPost, token, ann, roomOp("o4", roomQuery)); status != http.StatusNotFound || code != ws.CodeStreamNotFound {
		t.Fatalf("after the stream ended: %d %s", status, code)
	}
}

// A reservation holds a connection slot from the PUT on:
// limits.max_conns_per_user counts it (limit, limit+1), and its expiry
// frees it.
func TestSSESingleReservationHoldsConnectionSlot(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	n := startNode(t, func(c *Config) {
		c.Limits.MaxConnsPerUser = 1
		c.WS.SSEReservationTimeout = ws.MinSSEReservationTimeout
	})
	if status, _, _ := streamReq(t, n, http.MethodPut, "", "", ""); status != http.StatusCreated {
		t.Fatalf("PUT: %d", status)
	}
	if status, _, code := streamReq(t, n, http.MethodPut, "", "", ""); status != http.StatusTooManyRequests || code != ws.CodeRateLimited {
		t.Fatalf("PUT over max_conns_per_user: %d %s", status, code)
	}
	waitFor(t, "the reservation to expire", func() bool { return n.met.connsOpen.Load() == 0 })
	if status, _, _ := streamReq(t, n, http.MethodPut, "", "", ""); status != http.StatusCreated {
		t.Fatalf("PUT after the expiry: %d", status)
	}
}
