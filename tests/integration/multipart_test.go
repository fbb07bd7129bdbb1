//go:build integration

package integration

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

// mpStream is a multipart subscription read with Go's own RFC 2046
// reader (mime/multipart), a parser written apart from the node's
// framing.
type mpStream struct {
	t    *testing.T
	resp *http.Response
	mr   *multipart.Reader
}

// mpResult is one part's JSON.
type mpResult struct {
	Payload *struct {
		Data struct {
			MessageAdded struct{ ID string }
		}
		Errors []struct {
			Extensions struct{ Code string }
		}
		Extensions struct{ Cursor string }
	}
}

// openMultipart sends a subscription as Apollo Client's HttpLink does: a
// POST with its Accept header, the token in Authorization ("" for none).
func openMultipart(t *testing.T, url, tok, query string, ext map[string]string) *mpStream {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "extensions": ext})
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	req.Header.Set("Accept", "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json")
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	s := &mpStream{t: t, resp: resp}
	if resp.StatusCode == http.StatusOK {
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/mixed" || params["boundary"] != "graphql" || params["subscriptionspec"] != "1.0" {
			t.Fatalf("Content-Type %q: %v", resp.Header.Get("Content-Type"), err)
		}
		s.mr = multipart.NewReader(resp.Body, params["boundary"])
	}
	return s
}

// part returns the next part that is not a heartbeat; ok is false at the
// end of the stream (the close delimiter).
func (s *mpStream) part() (r mpResult, ok bool) {
	s.t.Helper()
	type res struct {
		r   mpResult
		err error
	}
	ch := make(chan res, 1)
	go func() { // ends with the response (t.Cleanup closes it)
		for {
			p, err := s.mr.NextPart()
			if err != nil {
				ch <- res{err: err}
				return
			}
			if ct := p.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				ch <- res{err: errors.New("part Content-Type " + ct)}
				return
			}
			// Decode rather than read to the part's end: the reader tells
			// a part's end only once it sees what follows its delimiter.
			var b json.RawMessage
			if err := json.NewDecoder(p).Decode(&b); err != nil {
				ch <- res{err: err}
				return
			}
			if string(b) == "{}" {
				continue // heartbeat
			}
			var r mpResult
			err = json.Unmarshal(b, &r)
			ch <- res{r: r, err: err}
			return
		}
	}()
	select {
	case x := <-ch:
		if x.err == io.EOF {
			return r, false
		}
		if x.err != nil {
			s.t.Fatalf("reading a part: %v", x.err)
		}
		return x.r, true
	case <-time.After(30 * time.Second):
		s.t.Fatal("no part in 30 s")
	}
	panic("unreachable")
}

func (s *mpStream) expect(ids ...int) (cursor string) {
	s.t.Helper()
	for _, id := range ids {
		r, ok := s.part()
		if !ok || r.Payload == nil || r.Payload.Data.MessageAdded.ID != strconv.Itoa(id) || r.Payload.Extensions.Cursor == "" {
			s.t.Fatalf("got %+v (ok %v), want message %d with a cursor", r.Payload, ok, id)
		}
		cursor = r.Payload.Extensions.Cursor
	}
	return cursor
}

// TestMultipartHTTPSubscriptions: multipart subscriptions, read with Go's
// mime/multipart, against two nodes with authentication on one stream:
// receive, resume on the other node from extensions.cursor with a
// complete sequence, a validation error in the stream then its end, and a
// refusal without a token.
func TestMultipartHTTPSubscriptions(t *testing.T) {
	v, err := auth.New(auth.Config{HS256Secret: testSecret, Audience: "fraiseql"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	natsURL := startNATS(t)
	withAuth := func(c *node.Config, _ *cluster.Config) { c.Auth = v }
	a, b := startNode(t, natsURL, withAuth), startNode(t, natsURL, withAuth)
	httpURL := func(e *env) string { return "http://" + strings.TrimPrefix(e.ws, "ws://") }
	tok := token(t, testSecret, "acme", "ann", nil)
	const query = `subscription { messageAdded(room: "mp") { id } }`
	publish := func(ids ...int) {
		for _, id := range ids {
			a.publishTo("acme", "chat.mp", `{"id":"`+strconv.Itoa(id)+`","room":"mp","text":"t"}`)
		}
	}

	first := openMultipart(t, httpURL(a), tok, query, nil)
	waitFor(t, 30*time.Second, "the subscription", func() bool { return a.node.Stats().Subscriptions == 1 })
	publish(1, 2, 3)
	cursor := first.expect(1)
	first.expect(2, 3)

	resumed := openMultipart(t, httpURL(b), tok, query, map[string]string{"cursor": cursor})
	resumed.expect(2, 3)
	waitFor(t, 30*time.Second, "the resumed subscription", func() bool { return b.node.Stats().Subscriptions == 1 })
	publish(4)
	first.expect(4)
	resumed.expect(4)

	bad := openMultipart(t, httpURL(a), tok, "subscription { nope }", nil)
	if r, ok := bad.part(); !ok || r.Payload == nil || len(r.Payload.Errors) != 1 || r.Payload.Errors[0].Extensions.Code != "GRAPHQL_VALIDATION_FAILED" {
		t.Fatalf("invalid query: got %+v, want the validation error", r.Payload)
	}
	if r, ok := bad.part(); ok {
		t.Fatalf("invalid query: got %+v after the error, want the end", r.Payload)
	}

	anon := openMultipart(t, httpURL(a), "", query, nil)
	var refusal struct {
		Errors []struct{ Extensions struct{ Code string } }
	}
	if err := json.NewDecoder(anon.resp.Body).Decode(&refusal); anon.resp.StatusCode != http.StatusForbidden || err != nil ||
		len(refusal.Errors) != 1 || refusal.Errors[0].Extensions.Code != "FORBIDDEN" {
		t.Fatalf("without a token: got %d %+v %v, want 403 FORBIDDEN", anon.resp.StatusCode, refusal, err)
	}
}
