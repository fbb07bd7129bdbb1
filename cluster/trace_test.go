package cluster_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fraiseql/subscriptions/cluster"
)

// TestEventCarriesTraceParent: a publisher's traceparent header (W3C lower
// case, or canonicalised by an http.Header carrier) reaches the consumer's
// event; an event without one has none.
func TestEventCarriesTraceParent(t *testing.T) {
	c := open(t, cluster.Config{})
	got := make(chan *cluster.Event, 3)
	k, err := c.Consume(testCtx(t), func(ev *cluster.Event) { got <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	nc, err := nats.Connect(c.EmbeddedURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct{ key, value string }{{"traceparent", tp}, {"Traceparent", tp}, {"", ""}} {
		h := tc.value
		m := nats.NewMsg(c.Prefix() + ".acme.chat.r1")
		m.Data = []byte(`{"id":"1"}`)
		if tc.key != "" {
			m.Header.Set(tc.key, h)
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		if ev := recv(t, got, 5*time.Second); ev.TraceParent != h {
			t.Fatalf("TraceParent %q, want %q", ev.TraceParent, h)
		}
	}
}

// TestPublishTraced: a bridge's traceparent reaches the consumer's event
// as the message's traceparent header; one that is not a valid W3C
// traceparent is left out, and the event still published.
func TestPublishTraced(t *testing.T) {
	c := open(t, cluster.Config{})
	got := make(chan *cluster.Event, 8)
	k, err := c.Consume(testCtx(t), func(ev *cluster.Event) { got <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct{ in, want string }{
		{tp, tp},
		{"", ""},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", ""}, // upper case
		{tp[:54], ""},  // 54 bytes
		{tp + "0", ""}, // 56 bytes
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", ""},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\n", ""},
	} {
		if _, err := c.PublishTraced(testCtx(t), "acme", "chat.r1", []byte(`{"id":"1"}`), "", tc.in); err != nil {
			t.Fatal(err)
		}
		if ev := recv(t, got, 5*time.Second); ev.TraceParent != tc.want {
			t.Errorf("traceparent %q: event has %q, want %q", tc.in, ev.TraceParent, tc.want)
		}
	}
}
