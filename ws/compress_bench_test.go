//go:build unix

package ws

import (
	"compress/flate"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"
)

// BenchmarkFanoutDeflate measures what compression costs and saves on the
// fan-out path: each iteration is one event pushed through a Fanout to
// benchConns connections on loopback (Push to each, Routed, Idle: the
// node's routing loop), each read by a client goroutine that counts the
// bytes it receives and decodes nothing. It reports, per delivery (one
// event to one connection):
//
//   - ns/delivery: wall time;
//   - cpu-ns/delivery: the process's CPU time (user + system, getrusage),
//     which includes the clients' read(2) calls — the same work in every
//     mode, except that it shrinks with the bytes;
//   - wire-B/delivery: bytes the clients received, framing included.
//
// Two payloads of about 512 bytes: "loadgen" is the load tool's event
// body (its text padded with "x", which compresses unrealistically well),
// "text" a result with varied words, ids and a timestamp, closer to real
// data. Modes: WebSocket off, no_context_takeover and context_takeover;
// SSE plain and gzip.
func BenchmarkFanoutDeflate(b *testing.B) {
	for _, payload := range []string{"loadgen", "text"} {
		for _, mode := range []string{"ws-off", "ws-" + string(CompressionNoContextTakeover), "ws-" + string(CompressionContextTakeover), "sse-plain", "sse-gzip"} {
			b.Run(payload+"/"+mode, func(b *testing.B) { benchFanoutDeflate(b, mode, payload) })
		}
	}
}

// benchConns is the fan-out of BenchmarkFanoutDeflate.
const benchConns = 64

// benchPayloads returns n distinct payloads of about 512 bytes of kind.
func benchPayloads(kind string, n int) [][]byte {
	words := strings.Fields("the order was shipped to a customer in room with items and a note about delivery time status " +
		"pending confirmed cancelled refund warehouse north south east west priority express standard gift wrap")
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		var text string
		if kind == "loadgen" {
			// tests/load/loadgen/publisher.go: {"id","room","text":<x padding>,"ts","seq"}
			text = strings.Repeat("x", 380)
		} else {
			var sb strings.Builder
			for sb.Len() < 380 {
				sb.WriteString(words[rng.IntN(len(words))])
				sb.WriteByte(' ')
			}
			text = sb.String()
		}
		ts := 1764770000000000000 + rng.Int64N(1e15)
		out[i] = []byte(`{"data":{"messageAdded":{"id":"` + strconv.Itoa(i) + "-" + strconv.FormatInt(ts, 10) + `","room":"r` + strconv.Itoa(rng.IntN(100)) +
			`","text":"` + text + `","ts":` + strconv.FormatInt(ts, 10) + `,"seq":` + strconv.Itoa(i) + `}},"extensions":{"cursor":"` + benchCursor(rng) + `"}}`)
	}
	return out
}

func benchCursor(rng *rand.Rand) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, 28)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

func benchFanoutDeflate(b *testing.B, mode, payloadKind string) {
	opts := Options{CompressionContextConns: benchConns, SSEKeepAlive: MaxSSEKeepAlive, KeepAlive: -1}
	sse := strings.HasPrefix(mode, "sse-")
	switch mode {
	case "ws-" + string(CompressionNoContextTakeover):
		opts.Compression = CompressionNoContextTakeover
	case "ws-" + string(CompressionContextTakeover):
		opts.Compression = CompressionContextTakeover
	case "sse-gzip":
		opts.SSECompression = SSECompressionGzip
	}
	e := startEnv(b, opts, nil)
	var (
		subs     []*Subscription
		received atomic.Int64
		readers  sync.WaitGroup
	)
	read := func(r io.Reader) {
		readers.Go(func() { // ends when the benchmark's cleanup closes the connection
			buf := make([]byte, 64<<10)
			for {
				n, err := r.Read(buf)
				received.Add(int64(n))
				if err != nil {
					return
				}
			}
		})
	}
	b.Cleanup(readers.Wait) // after the clients' connections close (cleanups run last first)
	for range benchConns {
		if sse {
			_, resp, _, sub := sseDialEncoding(b, e, "gzip")
			subs = append(subs, sub)
			read(resp.Body)
			continue
		}
		w := dialRaw(b, e, "permessage-deflate; client_max_window_bits")
		_, sub := w.subscribe(e)
		subs = append(subs, sub)
		read(w.br)
	}
	payloads := benchPayloads(payloadKind, 1024)
	f := e.srv.NewFanout()
	// drained waits until every connection's queue is written out, so
	// that no client lags far enough behind to be a slow consumer.
	drained := func() {
		for _, s := range subs {
			for s.conn.queue.len() > 0 || s.conn.batch.open() {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	n := 0
	event := func() {
		p := payloads[n%len(payloads)]
		n++
		for _, s := range subs {
			if !s.Push(f, p) {
				b.Fatal("a connection refused an event")
			}
		}
		f.Routed()
		f.Idle()
		if n%32 == 0 {
			drained()
		}
	}
	for range 64 {
		event() // warm up the pools and buffers
	}
	drained()
	settle(&received)

	base := received.Load()
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		event()
	}
	drained()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	settle(&received)
	deliveries := float64(b.N * benchConns)
	b.ReportMetric(float64(elapsed.Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
	b.ReportMetric(float64(received.Load()-base)/deliveries, "wire-B/delivery")
}

// settle waits until received has not changed for 20 ms: the clients
// have read what the server wrote.
func settle(received *atomic.Int64) {
	last := received.Load()
	for {
		time.Sleep(20 * time.Millisecond)
		now := received.Load()
		if now == last {
			return
		}
		last = now
	}
}

// cpuTime returns the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCompressorMemory measures the heap one compressor holds once it
// has compressed a message: what a context_takeover connection keeps for
// its whole life (klauspost/compress at BestSpeed, the one the package
// uses), beside the standard library's, for comparison.
func BenchmarkCompressorMemory(b *testing.B) {
	for _, lib := range []string{"klauspost", "stdlib"} {
		b.Run(lib, func(b *testing.B) {
			const n = 64
			msg := benchPayloads("text", 1)[0]
			var before, after runtime.MemStats
			for range b.N {
				runtime.GC()
				runtime.ReadMemStats(&before)
				keep := make([]io.Writer, n)
				for i := range keep {
					var s sink
					if lib == "klauspost" {
						w, _ := kflate.NewWriter(&s, kflate.BestSpeed)
						w.Write(msg)
						w.Flush()
						keep[i] = w
					} else {
						w, _ := flate.NewWriter(&s, flate.BestSpeed)
						w.Write(msg)
						w.Flush()
						keep[i] = w
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(keep)
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/compressor")
		})
	}
}
