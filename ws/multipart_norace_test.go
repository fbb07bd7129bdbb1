//go:build !race

package ws

import "testing"

// Framing a shared payload as a multipart part allocates nothing, through
// the batch writer as the fan-out frames it.
func TestMultipartNextAllocs(t *testing.T) {
	payload := []byte(`{"data":{"messageAdded":{"id":"7"}},"extensions":{"cursor":"AAAAAQ"}}`)
	b := &batchWriter{sse: true, multipart: true}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = b.frameNext(buf[:0], kindNext, multipartNextPrefix, payload, sseMeta{}) }); n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
	if want := string(multipartNextPrefix) + string(payload) + "}\r\n--graphql"; string(buf) != want {
		t.Fatalf("framed %q, want %q", buf, want)
	}
}

// TestMultipartPushFlushAllocs is TestPushFlushAllocs on a multipart
// connection: Push, then the write round's direct write, allocate nothing.
func TestMultipartPushFlushAllocs(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	_, _, _, sub := multipartDial(t, e)
	pushFlushAllocs(t, e, sub)
}
