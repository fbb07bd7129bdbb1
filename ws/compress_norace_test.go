//go:build !race

package ws

import (
	"bytes"
	"strconv"
	"testing"
)

// TestFanoutDeflateAllocs: pushing an event to connections that share its
// compressed body allocates the body once, however many connections get
// it — nothing per subscriber — and the write round nothing.
func TestFanoutDeflateAllocs(t *testing.T) {
	for _, conns := range []int{2, 8} {
		t.Run(strconv.Itoa(conns), func(t *testing.T) {
			e := startEnv(t, Options{Compression: CompressionNoContextTakeover}, nil)
			var subs []*Subscription
			var readers []*rawWS
			for range conns {
				w := dialRaw(t, e, "permessage-deflate")
				_, sub := w.subscribe(e)
				waitNoWriter(t, sub.Conn())
				subs = append(subs, sub)
				readers = append(readers, w)
			}
			f := e.srv.NewFanout()
			payloads := make([][]byte, 200)
			for i := range payloads {
				payloads[i] = eventPayload(i)
			}
			n := 0
			event := func() {
				p := payloads[n%len(payloads)]
				n++
				for _, s := range subs {
					s.Push(f, p)
				}
				f.Routed()
				f.Idle()
			}
			for range 10 {
				event() // grow the lists, warm the pools
			}
			// 100 events of ~300 compressed bytes to each: the socket buffers
			// take them unread.
			if got := testing.AllocsPerRun(100, event); got > 1 {
				t.Fatalf("%v allocations per event routed to %d connections, want 1 (the shared body)", got, conns)
			}
			if _, handoff := e.srv.FlushStats(); handoff != 0 {
				t.Fatalf("%d flushes handed off: the test needs direct writes", handoff)
			}
			fr, err := readers[conns-1].read(false)
			if err != nil || !fr.rsv1 || !bytes.Contains(fr.payload, []byte(`"messageAdded"`)) {
				t.Fatalf("first frame: %v, rsv1 %v, %.80s", err, fr.rsv1, fr.payload)
			}
		})
	}
}

// TestGzipEncodeAllocs: a gzip body keeps no compressor and encodes
// without allocating: what a connection holds for it is the gzipStream.
func TestGzipEncodeAllocs(t *testing.T) {
	var g gzipStream
	p := eventPayload(1)
	buf := g.encode(make([]byte, 0, 64<<10), p) // warm the pools
	if n := testing.AllocsPerRun(100, func() { buf = g.encode(buf[:0], p) }); n != 0 {
		t.Fatalf("%v allocations per encode, want 0", n)
	}
}

// TestContextDeflateAllocs: a context_takeover connection compresses each
// delivery with its own compressor as it is framed, allocating nothing.
func TestContextDeflateAllocs(t *testing.T) {
	e := startEnv(t, Options{Compression: CompressionContextTakeover}, nil)
	w := dialRaw(t, e, "permessage-deflate")
	_, sub := w.subscribe(e)
	waitNoWriter(t, sub.Conn())
	f := e.srv.NewFanout()
	payloads := make([][]byte, 300)
	for i := range payloads {
		payloads[i] = eventPayload(i)
	}
	n := 0
	deliver := func() {
		pushFlush(f, sub, payloads[n%len(payloads)])
		f.Routed()
		n++
	}
	for range 10 {
		deliver() // the compressor, the batch pool
	}
	if got := testing.AllocsPerRun(200, deliver); got != 0 {
		t.Fatalf("%v allocations per delivery, want 0", got)
	}
	if direct, handoff := e.srv.FlushStats(); handoff != 0 || direct == 0 {
		t.Fatalf("flushes: %d direct, %d handed off; want all direct", direct, handoff)
	}
	if fr, err := w.read(true); err != nil || !fr.rsv1 {
		t.Fatalf("first frame: %v, compressed %v", err, fr.rsv1)
	}
}
