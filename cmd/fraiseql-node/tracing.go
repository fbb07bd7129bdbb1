package main

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TracingConfig turns on OpenTelemetry traces (docs/monitoring.md, *Traces*).
type TracingConfig struct {
	// OTLPEndpoint is the OTLP/HTTP collector's URL, e.g.
	// http://otel-collector:4318 (https for TLS); /v1/traces is added when
	// it has no path. Empty: tracing off. The
	// exporter's OTEL_EXPORTER_OTLP_* environment variables (headers,
	// certificates, timeouts) apply too.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
}

func (c TracingConfig) validate() error {
	if c.OTLPEndpoint == "" {
		return nil
	}
	u, err := url.Parse(c.OTLPEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("tracing.otlp_endpoint: %q is not an http(s)://host[:port] URL", c.OTLPEndpoint)
	}
	return nil
}

// startTracing returns the tracer provider of tracing.otlp_endpoint (nil
// when off) and the function that flushes and stops it. Spans are
// recorded only for events whose publisher sent a traceparent, and
// sampled as the publisher decided (parent-based).
func startTracing(ctx context.Context, c TracingConfig) (*sdktrace.TracerProvider, func(context.Context) error, error) {
	if c.OTLPEndpoint == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	endpoint := c.OTLPEndpoint
	if u, err := url.Parse(endpoint); err == nil && (u.Path == "" || u.Path == "/") {
		u.Path = "/v1/traces" // the exporter posts to the URL's path as given, even "/"
		endpoint = u.String()
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("tracing.otlp_endpoint: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "fraiseql-node"), attribute.String("service.version", version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())),
	)
	return tp, tp.Shutdown, nil
}
