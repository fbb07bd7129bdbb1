package node

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/fraiseql/subscriptions/cluster"
)

// Tracing (Config.TracerProvider, off by default) continues a publisher's
// trace: for every live event whose NATS message carried a W3C
// traceparent, the routing worker records three spans, each the child of
// the one before:
//
//	fraiseql.ingest        from the stream storing the event to its routing (JetStream → this node)
//	fraiseql.route         filtering, projecting and queueing it to its subscribers
//	fraiseql.socket_write  from queued to the end of the write round that wrote it
//
// Events without a traceparent cost nothing; traced ones a few spans per
// event, never per subscriber.

// tracerName is the instrumentation scope of the node's spans.
const tracerName = "github.com/fraiseql/subscriptions/node"

var traceContext = propagation.TraceContext{}

// traceParent is a propagation carrier holding one traceparent value.
type traceParent string

func (t traceParent) Get(key string) string {
	if key == "traceparent" {
		return string(t)
	}
	return ""
}
func (traceParent) Set(string, string) {}
func (traceParent) Keys() []string     { return []string{"traceparent"} }

// tracedWrite is a routed event awaiting its socket_write span.
type tracedWrite struct {
	parent   trace.SpanContext // the route span
	routedAt time.Time
}

// traceRoute starts the ingest and route spans of ev; ok is false when
// tracing is off or the event carries no (valid) traceparent.
func (n *Node) traceRoute(ev *cluster.Event) (ctx context.Context, route trace.Span, ok bool) {
	if n.tracer == nil || ev.TraceParent == "" {
		return nil, nil, false
	}
	parent := traceContext.Extract(context.Background(), traceParent(ev.TraceParent))
	if !trace.SpanContextFromContext(parent).IsValid() {
		return nil, nil, false
	}
	attrs := trace.WithAttributes(
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.destination.name", ev.Subject),
		attribute.Int64("messaging.message.sequence", int64(ev.Seq)),
	)
	now := time.Now()
	start := ev.Time
	if start.IsZero() || start.After(now) {
		start = now
	}
	ictx, ingest := n.tracer.Start(parent, "fraiseql.ingest", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(start), attrs)
	ingest.End(trace.WithTimestamp(now))
	ctx, route = n.tracer.Start(ictx, "fraiseql.route", trace.WithTimestamp(now))
	return ctx, route, true
}

// endRoute ends the route span with what it did, and keeps its context
// for the socket_write span the next flush records.
func (r *router) endRoute(route trace.Span, plans int, delivered uint64) {
	now := time.Now()
	route.SetAttributes(attribute.Int("fraiseql.plans", plans), attribute.Int64("fraiseql.delivered", int64(delivered)))
	route.End(trace.WithTimestamp(now))
	if delivered > 0 {
		r.traced = append(r.traced, tracedWrite{route.SpanContext(), now})
	}
}

// traceWritten records the socket_write spans of the events the round wrote.
func (r *router) traceWritten(now time.Time) {
	for i, w := range r.traced {
		ctx := trace.ContextWithSpanContext(context.Background(), w.parent)
		_, s := r.n.tracer.Start(ctx, "fraiseql.socket_write", trace.WithTimestamp(w.routedAt))
		s.End(trace.WithTimestamp(now))
		r.traced[i] = tracedWrite{}
	}
	r.traced = r.traced[:0]
}
