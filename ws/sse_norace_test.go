//go:build !race

package ws

import "testing"

// Framing a shared payload as an SSE event allocates nothing.
func TestSSENextAllocs(t *testing.T) {
	payload := []byte(`{"data":{"messageAdded":{"id":"7"}},"extensions":{"cursor":"AAAAAQ"}}`)
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = appendSSENext(buf[:0], sseNextPrefix, payload) }); n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
}
