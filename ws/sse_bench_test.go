package ws

import (
	"bufio"
	"bytes"
	"net"
	"sync/atomic"
	"testing"
)

// BenchmarkPushFlushSSE is BenchmarkPushFlush over GraphQL over SSE: the
// same fan-out path (Push, then the write round's flush), framing each
// frame as an SSE event with its cursor as id. The client counts events
// by their blank line.
func BenchmarkPushFlushSSE(b *testing.B) {
	benchPushFlushStream(b, sseDial, []byte("\n\n"))
}

// BenchmarkPushFlushMultipart is BenchmarkPushFlush over multipart HTTP:
// each frame is a part followed by its delimiter, which the client counts.
func BenchmarkPushFlushMultipart(b *testing.B) {
	benchPushFlushStream(b, multipartDial, multipartOpen)
}

// benchPushFlushStream runs the fan-out path on a streamed HTTP
// connection that dial opens; the client counts events by sep, which ends
// each of them (and must not overlap itself).
func benchPushFlushStream(b *testing.B, dial func(testing.TB, *env) (net.Conn, *bufio.Reader, *fakeSession, *Subscription), sep []byte) {
	e := startEnv(b, Options{}, nil)
	c, br, _, sub := dial(b, e)
	benchSSE(b, c, br, sub, sep)
}

// benchSSE runs the fan-out benchmark on sub, whose stream the client
// reads from br, counting events by sep, which ends each of them (and
// must not overlap itself).
func benchSSE(b *testing.B, c net.Conn, br *bufio.Reader, sub *Subscription, sep []byte) {
	payload := []byte(`{"data":{"messageAdded":{"id":"7","room":"r1","text":"hello, world"}},"extensions":{"cursor":"AAAAAAAAAAE"}}`)
	var received atomic.Int64
	progress := make(chan struct{}, 1)
	readDone := make(chan struct{})
	go func() { // ends when the benchmark's cleanup closes the client
		defer close(readDone)
		buf := make([]byte, 64<<10)
		keep := 0 // bytes of the last read that may start a separator
		for {
			n, err := br.Read(buf[keep:])
			if err != nil {
				return
			}
			w := buf[:keep+n]
			events := bytes.Count(w, sep)
			keep = min(len(sep)-1, len(w))
			copy(buf, w[len(w)-keep:])
			if events > 0 {
				received.Add(int64(events))
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}
	}()
	b.Cleanup(func() {
		_ = c.Close()
		<-readDone
	})
	var f *Fanout
	benchSend(b, sub, payload, func(sub *Subscription, p []byte) bool {
		if f == nil {
			f = newFanout(sub.conn.opts, sub.conn.flushes)
		}
		return pushFlush(f, sub, p)
	}, &received, progress)
}
