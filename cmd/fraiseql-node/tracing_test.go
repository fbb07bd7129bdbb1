package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// TestTracingExportsOTLP: with tracing.otlp_endpoint set, spans continuing
// a sampled publisher's trace reach the collector over OTLP/HTTP; an
// unsampled publisher's do not; off records nothing.
func TestTracingExportsOTLP(t *testing.T) {
	var posts atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" && r.Method == http.MethodPost {
			posts.Add(1)
		}
	}))
	defer collector.Close()

	span := func(tp trace.TracerProvider, sampled bool) {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, Remote: true,
			TraceFlags: map[bool]trace.TraceFlags{true: trace.FlagsSampled, false: 0}[sampled],
		})
		_, s := tp.Tracer("test").Start(trace.ContextWithRemoteSpanContext(context.Background(), sc), "x")
		s.End()
	}
	tp, stop, err := startTracing(context.Background(), TracingConfig{OTLPEndpoint: collector.URL})
	if err != nil {
		t.Fatal(err)
	}
	span(tp, false)
	tp.ForceFlush(context.Background())
	if posts.Load() != 0 {
		t.Fatal("an unsampled publisher's span was exported")
	}
	span(tp, true)
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if posts.Load() != 1 {
		t.Fatalf("%d OTLP posts, want 1", posts.Load())
	}

	off, stopOff, err := startTracing(context.Background(), TracingConfig{})
	if err != nil || off != nil || stopOff(context.Background()) != nil {
		t.Fatalf("tracing off: %v %v", off, err)
	}
	for _, bad := range []string{"collector:4318", "ftp://c", "http://"} {
		if err := (TracingConfig{OTLPEndpoint: bad}).validate(); err == nil || !strings.Contains(err.Error(), "tracing.otlp_endpoint") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
