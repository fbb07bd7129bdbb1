package cluster

import "github.com/nats-io/nats.go"

// traceParent is a message's W3C traceparent header. NATS headers are
// case-sensitive: the W3C name is lower case, and Go publishers that
// inject through an http.Header carrier write it canonicalised.
func traceParent(h nats.Header) string {
	if v := h.Get("traceparent"); v != "" {
		return v
	}
	return h.Get("Traceparent")
}
