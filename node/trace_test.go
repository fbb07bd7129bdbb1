package node

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceContinuesThePublishersTrace: an event published with a
// traceparent yields the spans ingest → route → socket_write, each the
// child of the one before, the first the child of the publisher's span,
// all in the publisher's trace; an event without one yields no span.
func TestTraceContinuesThePublishersTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	n := startNode(t, func(c *Config) { c.TracerProvider = tp })
	g := dialGQL(t, n)
	g.subscribe("r1", "")
	waitFor(t, "the subscription", func() bool { return n.Stats().Subscriptions == 1 })

	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
	)
	publish := func(id, traceparent string) {
		m := nats.NewMsg(n.cl.Prefix() + ".public.chat.r1")
		m.Data = []byte(`{"id":"` + id + `","room":"r1","text":"t"}`)
		if traceparent != "" {
			m.Header.Set("traceparent", traceparent)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := n.cl.JetStream().PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	publish("1", "") // untraced
	g.expect(1)
	publish("2", "00-"+traceID+"-"+spanID+"-01")
	g.expect(2)
	waitFor(t, "three spans", func() bool { return len(exp.GetSpans()) >= 3 })
	time.Sleep(100 * time.Millisecond) // a fourth span would be a bug: let it show
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3 (one event traced): %v", len(spans), spans)
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
		if s.SpanContext.TraceID().String() != traceID {
			t.Errorf("%s is in trace %s, want the publisher's %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
	}
	chain := []struct {
		name   string
		parent trace.SpanID
	}{
		{"fraiseql.ingest", mustSpanID(t, spanID)},
		{"fraiseql.route", byName["fraiseql.ingest"].SpanContext.SpanID()},
		{"fraiseql.socket_write", byName["fraiseql.route"].SpanContext.SpanID()},
	}
	for _, c := range chain {
		s, ok := byName[c.name]
		if !ok {
			t.Fatalf("no %s span among %v", c.name, spans)
		}
		if s.Parent.SpanID() != c.parent {
			t.Errorf("%s's parent is %s, want %s", c.name, s.Parent.SpanID(), c.parent)
		}
		if s.EndTime.Before(s.StartTime) {
			t.Errorf("%s ends before it starts", c.name)
		}
	}
	if w, r := byName["fraiseql.socket_write"], byName["fraiseql.route"]; w.StartTime.Before(r.EndTime) {
		t.Errorf("socket_write starts %v before route ends", r.EndTime.Sub(w.StartTime))
	}
}

func mustSpanID(t *testing.T, s string) trace.SpanID {
	t.Helper()
	id, err := trace.SpanIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
