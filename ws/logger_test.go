package ws

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for the connection's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// loggedSession is a fakeSession that gives its own logger (SessionLogger).
type loggedSession struct {
	*fakeSession
	log *slog.Logger
}

func (s loggedSession) Logger() *slog.Logger { return s.log }

// TestSessionLoggerCarriesConnectionFields: what ws logs about a
// connection goes through its Session's logger (so it carries the
// session's fields), and a subscription's line names the subscription.
func TestSessionLoggerCarriesConnectionFields(t *testing.T) {
	var buf lockedBuffer
	fs := newFakeSession()
	fs.subscribe = func(context.Context, *Subscription, Request) error { return errors.New("an internal cause") }
	srv := NewServer(handlerFunc(func(*http.Request) (Session, error) {
		return loggedSession{fs, slog.New(slog.NewJSONHandler(&buf, nil)).With("conn", "c-7", "tenant", "acme")}, nil
	}), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv)
	e := &env{srv: srv, hs: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql", client: &http.Client{Transport: &http.Transport{}}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
		e.client.CloseIdleConnections()
	})
	cl := e.dial(t, "graphql-transport-ws")
	cl.initTransport()
	cl.send(`{"id":"s9","type":"subscribe","payload":{"query":"subscription { x }"}}`)
	if _, err := cl.read(); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	for _, want := range []string{`"msg":"ws: subscription failed"`, `"conn":"c-7"`, `"tenant":"acme"`, `"sub":"s9"`, `"remote":`} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %s", line, want)
		}
	}
}
