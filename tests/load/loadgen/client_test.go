//go:build linux

package loadgen

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseNext(t *testing.T) {
	tests := []struct {
		name   string
		msg    string
		sub    int
		seq    uint64
		ts     int64
		wantOK bool
	}{
		{
			name: "as the node writes it",
			msg:  `{"id":"3","type":"next","payload":{"data":{"messageAdded":{"id":"42-1700000000123456789","text":"xxxx"}},"extensions":{"cursor":"AAAB-_x"}}}`,
			sub:  3, seq: 42, ts: 1700000000123456789, wantOK: true,
		},
		{name: "ping", msg: `{"type":"ping"}`},
		{name: "error", msg: `{"id":"1","type":"error","payload":[{"message":"x"}]}`},
		{name: "other field order", msg: `{"type":"next","id":"1","payload":{}}`},
		{name: "id not ours", msg: `{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"hello","text":""}}}}`},
		{name: "truncated", msg: `{"id":"1","type":"next","payload":{"data":{"messageAdded":{"id":"42-17`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub, seq, ts, ok := parseNext([]byte(tc.msg))
			if ok != tc.wantOK || sub != tc.sub || seq != tc.seq || ts != tc.ts {
				t.Fatalf("got %d %d %d %v, want %d %d %d %v", sub, seq, ts, ok, tc.sub, tc.seq, tc.ts, tc.wantOK)
			}
		})
	}
}

func TestBodyRoundTrip(t *testing.T) {
	p := &publisher{rooms: []string{"lg1-0"}}
	for _, size := range []int{0, 128, 1000} {
		base := len(p.body(nil, 0, 100_000, time.Now().UnixNano(), ""))
		p.pad = strings.Repeat("x", max(0, size-base))
		ts := time.Now().UnixNano()
		b := p.body(nil, 0, 77, ts, p.pad)
		if size > base && (len(b) > size+20 || len(b) < size-20) {
			t.Fatalf("body %d bytes for payload %d", len(b), size)
		}
		seq, got, ok := parseEventID(idOf(b))
		if !ok || seq != 77 || got != ts {
			t.Fatalf("id of %s: %d %d %v", b, seq, got, ok)
		}
	}
}

// TestClientAccounting feeds a client the frames the node would send and
// checks the phase's counts.
func TestClientAccounting(t *testing.T) {
	var ps phases
	cs := newClients(graphqlWS{}, "", []string{"r"}, 2, &ps)
	c := &client{cs: cs, seqs: make([]SeqTracker, 2)}
	ph := newPhase("measure", 10, 1)
	ps.add(ph)
	ph.start[0].Store(1)
	now := time.Now()
	frame := func(sub int, seq uint64, extra string) []byte {
		ts := now.Add(-5 * time.Millisecond).UnixNano()
		return []byte(`{"id":"` + strconv.Itoa(sub) + `","type":"next","payload":{"data":{"messageAdded":{"id":"` +
			strconv.Itoa(int(seq)) + "-" + strconv.Itoa(int(ts)) + `","text":"x"}},"extensions":{"cursor":"c"` + extra + `}}}`)
	}
	for _, f := range [][]byte{
		frame(1, 1, ""), frame(1, 2, ""), frame(1, 2, ""), // a duplicate
		frame(2, 1, ""), frame(2, 3, `,"dropped":1`), // a gap the node reports as dropped
	} {
		cs.proto.handle(c, f, now)
	}
	ph.end[0].Store(3)
	if got := ph.delivered.load(); got != 4 {
		t.Fatalf("delivered %d, want 4", got)
	}
	if ph.dups.load() != 1 || ph.skipped.load() != 1 || ph.dropped.load() != 1 {
		t.Fatalf("dups %d skipped %d dropped %d", ph.dups.load(), ph.skipped.load(), ph.dropped.load())
	}
	if exp := ph.expected([]int64{2}); exp != 6 {
		t.Fatalf("expected %d, want 3 events × 2 subs", exp)
	}
	if s := ph.latency.Summarize(); s.P50 < 4.9 || s.P50 > 5.2 {
		t.Fatalf("latency p50 %vms, want ≈5", s.P50)
	}
	// An error refuses one subscription; a ping is answered (no socket
	// here, so only the refusal is checked).
	cs.proto.handle(c, []byte(`{"id":"2","type":"error","payload":[{"message":"no","extensions":{"code":"SUBSCRIPTION_LIMIT"}}]}`), now)
	if cs.refused["SUBSCRIPTION_LIMIT"] != 1 {
		t.Fatalf("refused %v", cs.refused)
	}
	cs.proto.handle(c, []byte(`not json`), now)
	if cs.unknown.Load() != 1 {
		t.Fatalf("unknown %d", cs.unknown.Load())
	}
}
