package ws

import (
	"strings"
	"testing"
)

// BenchmarkFrameNext is what framing one `next` costs per delivery, for a
// 512-byte event body: a WebSocket text frame (header, prefix, the shared
// payload, "}") against an SSE event (appendSSENext: the payload split
// into data lines, and its cursor found for the id line).
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
		for b.Loop() {
			buf = appendSSENext(buf[:0], sseNextPrefix, payload)
		}
	})
}
