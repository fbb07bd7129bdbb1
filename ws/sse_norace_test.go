//go:build !race

package ws

import "testing"

// Framing a shared payload as an SSE event allocates nothing.
func TestSSENextAllocs(t *testing.T) {
	payload := []byte(`{"data":{"messageAdded":{"id":"7"}},"extensions":{"cursor":"AAAAAQ"}}`)
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = appendSSENext(buf[:0], sseNextPrefix, payload, sseMeta{}) }); n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
}

// Framing with the payload's sseMeta, as a Fanout finds it once per
// payload, allocates nothing either.
func TestSSENextMetaAllocs(t *testing.T) {
	payload := []byte(`{"data":{"messageAdded":{"id":"7"}},"extensions":{"cursor":"AAAAAQ"}}`)
	var c sseMetaCache
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = appendSSENext(buf[:0], sseNextPrefix, payload, c.meta(payload)) }); n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
}

// TestSSEPushFlushAllocs is TestPushFlushAllocs on an SSE connection:
// Push (with the payload's sseMeta), then the write round's direct write,
// allocate nothing.
func TestSSEPushFlushAllocs(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	_, _, _, sub := sseDial(t, e)
	pushFlushAllocs(t, e, sub)
}
