package ws

import (
	"strings"
	"testing"
)

// BenchmarkFrameNext is what framing one `next` costs per delivery, for a
// 512-byte event body: a WebSocket text frame (header, prefix, the shared
// payload, "}") against an SSE event (appendSSENext): "sse" as a Fanout
// delivers it, with the payload's sseMeta found once per payload (the
// lookup in the Fanout's cache included); "sse-read" as Subscription.Next
// does, reading the payload for line breaks and its cursor each time.
func BenchmarkFrameNext(b *testing.B) {
	payload := []byte(`{"data":{"messageAdded":{"id":"7-1764775000123456789","text":"` + strings.Repeat("x", 470) +
		`"}},"extensions":{"cursor":"AAAAAAAAAAcAAAAAAAAAAQ"}}`)
	prefix := []byte(`{"id":"1","type":"next","payload":`)
	buf := make([]byte, 0, 4096)
	b.Run("ws", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendTextFrame(buf[:0], prefix, payload, closingBrace)
		}
	})
	b.Run("sse", func(b *testing.B) {
		b.ReportAllocs()
		var c sseMetaCache
		for b.Loop() {
			buf = appendSSENext(buf[:0], sseNextPrefix, payload, c.meta(payload))
		}
	})
	b.Run("sse-read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendSSENext(buf[:0], sseNextPrefix, payload, sseMeta{})
		}
	})
}
