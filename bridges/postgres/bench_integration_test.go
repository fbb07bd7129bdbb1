//go:build integration

package postgres

import (
	"testing"
	"time"
)

// BenchmarkOutboxForward measures forwarding throughput: b.N outbox rows
// are written up front (one INSERT), then the bridge forwards them all,
// one JetStream publish per row (acknowledged) and one forwarded_at
// update per 100 rows. The time is from the bridge's start to the last
// row marked forwarded; rows/s is reported.
func BenchmarkOutboxForward(b *testing.B) {
	h := newHarness(b)
	if _, err := h.conn.Exec(testCtx(b, time.Minute), `INSERT INTO `+h.schema+`.outbox (tenant, topic, payload)
		SELECT 'public', 'bench.r' || (i % 10), jsonb_build_object('id', i::text, 'room', 'r1', 'text', 'hello world')
		FROM generate_series(1, $1) i`, b.N); err != nil {
		b.Fatal(err)
	}
	cfg := h.config()
	cfg.PollInterval = 50 * time.Millisecond
	b.ResetTimer()
	start := time.Now()
	_, stop := h.runBridge(h.cl, cfg)
	waitFor(b, 10*time.Minute, "all forwarded", func() bool {
		return h.count(`SELECT count(*) FROM %s.outbox WHERE forwarded_at IS NULL`) == 0
	})
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
	if n := streamCount(b, h.cl); n != uint64(b.N) {
		b.Fatalf("stream has %d events, want %d", n, b.N)
	}
}
