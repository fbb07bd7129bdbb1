package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/ws"
)

// multipartAccept is the Accept header of Apollo Client's HttpLink for a
// subscription.
const multipartAccept = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json"

// mpClient is a multipart subscription client on a raw socket, so that a
// test controls when it reads.
type mpClient struct {
	t    *testing.T
	c    net.Conn
	resp *http.Response
	body *bufio.Reader // resp.Body
}

// mpOpen sends one multipart subscription request: a POST of req as JSON,
// or a GET with req in the URL's query parameters.
func mpOpen(t *testing.T, n *Node, method string, req map[string]any, hdr map[string]string) *mpClient {
	t.Helper()
	target, body := "/graphql", ""
	if method == http.MethodGet {
		q := url.Values{}
		for k, v := range req {
			if s, ok := v.(string); ok {
				q.Set(k, s)
			} else {
				b, _ := json.Marshal(v)
				q.Set(k, string(b))
			}
		}
		target += "?" + q.Encode()
	} else {
		b, _ := json.Marshal(req)
		body = string(b)
	}
	c, _, resp := streamOpen(t, n, multipartAccept, method, target, body, hdr)
	return &mpClient{t: t, c: c, resp: resp, body: bufio.NewReader(resp.Body)}
}

func mpPost(t *testing.T, n *Node, query string, hdr map[string]string) *mpClient {
	return mpOpen(t, n, http.MethodPost, map[string]any{"query": query}, hdr)
}

// mpPart is one part of the stream: its JSON body, decoded.
type mpPart struct {
	Payload *struct {
		Data struct {
			MessageAdded struct{ ID string } `json:"messageAdded"`
		} `json:"data"`
		Errors []struct {
			Extensions struct{ Code string }
		} `json:"errors"`
		Extensions struct{ Cursor string } `json:"extensions"`
	} `json:"payload"`
	Errors []struct {
		Message    string
		Extensions struct{ Code string }
	} `json:"errors"`
	heartbeat bool
}

var mpDelimiter = []byte("\r\n--graphql")

// part reads up to the next delimiter and decodes the part it ends; ok
// is false at the end of the stream ("--\r\n", then EOF).
func (m *mpClient) part() (p mpPart, ok bool) {
	m.t.Helper()
	m.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var b []byte
		for !bytes.HasSuffix(b, mpDelimiter) {
			x, err := m.body.ReadByte()
			if err == io.EOF && string(b) == "--\r\n" {
				return p, false
			}
			if err != nil {
				m.t.Fatalf("reading the stream after %q: %v", b, err)
			}
			b = append(b, x)
		}
		b = b[:len(b)-len(mpDelimiter)]
		if len(bytes.TrimSpace(b)) == 0 {
			continue // the preamble
		}
		head, body, found := bytes.Cut(b, []byte("\r\n\r\n"))
		if !found || !bytes.Equal(head, []byte("\r\ncontent-type: application/json; charset=utf-8")) {
			m.t.Fatalf("part %q", b)
		}
		if string(body) == "{}" {
			return mpPart{heartbeat: true}, true
		}
		if err := json.Unmarshal(body, &p); err != nil {
			m.t.Fatalf("part body %q: %v", body, err)
		}
		return p, true
	}
}

// next reads parts up to the next result (skipping heartbeats) and
// returns its message id and cursor.
func (m *mpClient) next() (msg, cursor string) {
	m.t.Helper()
	for {
		p, ok := m.part()
		if !ok {
			m.t.Fatal("the stream ended")
		}
		if p.heartbeat {
			continue
		}
		if p.Payload == nil || len(p.Payload.Errors) > 0 || p.Payload.Extensions.Cursor == "" {
			m.t.Fatalf("got %+v, want a result with a cursor", p)
		}
		return p.Payload.Data.MessageAdded.ID, p.Payload.Extensions.Cursor
	}
}

func (m *mpClient) expect(ids ...int) (cursor string) {
	m.t.Helper()
	for _, want := range ids {
		msg, c := m.next()
		if msg != strconv.Itoa(want) {
			m.t.Fatalf("got message %s, want %d", msg, want)
		}
		cursor = c
	}
	return cursor
}

// expectError reads the subscription's error part, then the end.
func (m *mpClient) expectError(code string) {
	m.t.Helper()
	p, _ := m.part()
	for p.heartbeat {
		p, _ = m.part()
	}
	if p.Payload == nil || len(p.Payload.Errors) != 1 || p.Payload.Errors[0].Extensions.Code != code {
		m.t.Fatalf("got %+v, want payload.errors with %s", p, code)
	}
	if p, ok := m.part(); ok {
		m.t.Fatalf("got %+v after the error, want the end", p)
	}
}

// Receive, the end of the subscription when the client goes away, and a
// resume by extensions.cursor (POST, then a GET as HttpLink's
// useGETForQueries sends it) with a complete sequence: no gap, no
// duplicate. The protocol labels the connection in the admin listing.
func TestMultipartReceiveDisconnectResume(t *testing.T) {
	testStreamResume(t, ws.SubprotocolMultipart, `multipart/mixed;boundary="graphql";subscriptionSpec="1.0"`,
		func(n *Node, cursor string) (*http.Response, func(...int) string, net.Conn) {
			req := map[string]any{"query": roomQuery}
			method := http.MethodPost
			if cursor != "" { // as HttpLink's useGETForQueries sends it
				req["extensions"], method = map[string]string{"cursor": cursor}, http.MethodGet
			}
			m := mpOpen(t, n, method, req, nil)
			return m.resp, m.expect, m.c
		})
}

// Subscription errors after the request was accepted (validation, a
// cursor that is not one, the query size limit) come in the stream: a
// part with payload.errors, then the end. limits.max_query_bytes holds
// at limit-1, limit and limit+1.
func TestMultipartSubscriptionErrors(t *testing.T) {
	limit := len(roomQuery) + 10
	n := startNode(t, func(c *Config) { c.Limits.MaxQueryBytes = limit })
	mpPost(t, n, `subscription { noSuchField }`, nil).expectError("GRAPHQL_VALIDATION_FAILED")
	mpOpen(t, n, http.MethodPost, map[string]any{"query": roomQuery, "extensions": map[string]string{"cursor": "not-a-cursor"}}, nil).
		expectError("BAD_CURSOR")
	for i, size := range []int{limit - 1, limit, limit + 1} {
		m := mpPost(t, n, roomQuery+strings.Repeat(" ", size-len(roomQuery)), nil)
		if size > limit {
			m.expectError("QUERY_TOO_LARGE")
			continue
		}
		waitFor(t, "the subscription at its size", func() bool { return n.met.subsOpen.Load() == int64(i+1) })
	}
}

// Malformed requests are refused with an HTTP status and a GraphQL error
// body (Apollo Client reads it as a ServerError); the body's size limit
// (limits.max_message_bytes) holds at limit-1, limit and limit+1.
func TestMultipartRequestRefusals(t *testing.T) {
	testStreamRefusals(t, func(n *Node, body string) (*http.Response, net.Conn) {
		c, _, resp := streamOpen(t, n, multipartAccept, http.MethodPost, "/graphql", body, nil)
		return resp, c
	})
}

// With authentication on, a request without a valid token, or from a
// page of another origin, is refused (403 FORBIDDEN) before any stream;
// the Authorization header and the cookie authenticate, the token's
// tenant scopes the subscription.
func TestMultipartAuth(t *testing.T) {
	testStreamAuth(t, func(n *Node, hdr map[string]string) (*http.Response, func(...int) string) {
		m := mpPost(t, n, roomQuery, hdr)
		return m.resp, m.expect
	})
}

// An idle stream carries heartbeat parts every ws.multipart_heartbeat.
func TestMultipartHeartbeat(t *testing.T) {
	n := startNode(t, func(c *Config) { c.WS.MultipartHeartbeat = ws.MinMultipartHeartbeat })
	m := mpPost(t, n, roomQuery, nil)
	start := time.Now()
	for range 2 {
		if p, ok := m.part(); !ok || !p.heartbeat {
			t.Fatalf("got %+v, want a heartbeat", p)
		}
	}
	if el := time.Since(start); el < ws.MinMultipartHeartbeat {
		t.Fatalf("two heartbeats in %v, before the interval", el)
	}
}
