//go:build !race

package ws

import "testing"

// Framing a shared payload as a single connection mode event allocates
// nothing: the operation's prefix is built once, at subscribe.
func TestSSESingleNextAllocs(t *testing.T) {
	payload := []byte(`{"data":{"messageAdded":{"id":"7"}},"extensions":{"cursor":"AAAAAQ"}}`)
	prefix := sseSingleProtocol{}.nextPrefix([]byte(`"op-1"`))
	b := &batchWriter{sse: true, single: true}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = b.frameNext(buf[:0], kindNext, prefix, payload, sseMeta{}) }); n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
	want := "event: next\ndata: {\"id\":\"op-1\",\"payload\":" + string(payload) + "}\nid: AAAAAQ\n\n"
	if string(buf) != want {
		t.Fatalf("got %q\nwant %q", buf, want)
	}
}

// TestSSESinglePushFlushAllocs is TestPushFlushAllocs on a single
// connection mode stream.
func TestSSESinglePushFlushAllocs(t *testing.T) {
	e, _ := startStreamEnv(t, Options{})
	_, _, _, sub := openedStream(t, e)
	pushFlushAllocs(t, e, sub)
}
