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
	e := startEnv(b, Options{}, nil)
	c, br, _, sub := sseDial(b, e)
	benchSSE(b, c, br, sub)
}

// benchSSE runs the fan-out benchmark on sub, whose stream the client
// reads from br.
func benchSSE(b *testing.B, c net.Conn, br *bufio.Reader, sub *Subscription) {
	payload := []byte(`{"data":{"messageAdded":{"id":"7","room":"r1","text":"hello, world"}},"extensions":{"cursor":"AAAAAAAAAAE"}}`)
	var received atomic.Int64
	progress := make(chan struct{}, 1)
	readDone := make(chan struct{})
	go func() { // ends when the benchmark's cleanup closes the client
		defer close(readDone)
		buf := make([]byte, 64<<10)
		var last byte
		for {
			n, err := br.Read(buf)
			if err != nil {
				return
			}
			events := bytes.Count(buf[:n], []byte("\n\n"))
			if last == '\n' && n > 0 && buf[0] == '\n' {
				events++
			}
			if n > 0 {
				last = buf[n-1]
			}
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
