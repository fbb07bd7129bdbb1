package node

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRouteEventTextClientsCannotRead: an event holding a number float64
// cannot hold is not delivered and is counted as invalid; one holding an
// unpaired surrogate escape is delivered with U+FFFD in its place, and
// counted as replaced.
func TestRouteEventTextClientsCannotRead(t *testing.T) {
	n := testNode(t)
	sinks := addSubscribers(t, n, 2)
	ev := benchEvent(n)
	r := newRouter(n)

	ev.Seq, ev.Cursor = 1, n.cl.Cursor("public", 1)
	ev.Data = []byte(`{"id":"7","room":"r1","text":"hi","author":{"name":"ann"},"score":1e400}`)
	r.route(ev)
	if got := testutil.ToFloat64(n.met.eventsRejected.WithLabelValues("invalid")); got != 1 {
		t.Errorf(`events_rejected{reason="invalid"} = %v, want 1`, got)
	}
	for i, s := range sinks {
		if len(s.q) != 0 {
			t.Fatalf("sink %d got the event with 1e400", i)
		}
	}

	ev.Seq, ev.Cursor = 2, n.cl.Cursor("public", 2)
	ev.Data = []byte(`{"id":"7","room":"r1","text":"a\ud800b","author":{"name":"\udc00"}}`)
	r.route(ev)
	if got := n.met.textReplaced.Load(); got != 1 {
		t.Errorf("event_text_replaced = %d, want 1 (once per plan group, not per subscriber)", got)
	}
	for i, s := range sinks {
		select {
		case p := <-s.q:
			if !strings.Contains(string(p), `"text":"a\ufffdb"`) || !strings.Contains(string(p), `"name":"\ufffd"`) || strings.Contains(string(p), `\ud800`) {
				t.Errorf("sink %d got %s", i, p)
			}
		default:
			t.Fatalf("sink %d got nothing", i)
		}
	}
}
