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

// ValidTraceParent reports whether s is a W3C traceparent a bridge may
// forward: "version-traceid-parentid-flags" in lower-case hex (2-32-16-2
// digits), neither id all zeros, version not ff. Anything else from a
// source is dropped rather than passed on to the nodes' trace readers.
func ValidTraceParent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] == "ff" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s[3:35] != "00000000000000000000000000000000" && s[36:52] != "0000000000000000"
}
