//go:build linux

package loadgen

import "testing"

func TestSeqTracker(t *testing.T) {
	tests := []struct {
		name                          string
		seqs                          []uint64
		wantGaps, wantSkipped         uint64
		wantDups, wantReorders, wLate uint64
	}{
		{name: "in order", seqs: []uint64{1, 2, 3, 4, 5}},
		{name: "starts mid-stream", seqs: []uint64{41, 42, 43}},
		{name: "one gap", seqs: []uint64{1, 2, 5, 6}, wantGaps: 1, wantSkipped: 2},
		{name: "two gaps", seqs: []uint64{1, 3, 10}, wantGaps: 2, wantSkipped: 1 + 6},
		{name: "duplicate of last", seqs: []uint64{1, 2, 2, 3}, wantDups: 1},
		{name: "duplicate of older", seqs: []uint64{1, 2, 3, 4, 2}, wantDups: 1},
		{name: "reorder fills gap", seqs: []uint64{1, 3, 2, 4}, wantGaps: 1, wantSkipped: 1, wantReorders: 1},
		{name: "reorder then duplicate", seqs: []uint64{1, 3, 2, 2}, wantGaps: 1, wantSkipped: 1, wantReorders: 1, wantDups: 1},
		{name: "gap wider than window", seqs: []uint64{1, 200, 100, 199}, wantGaps: 1, wantSkipped: 198, wantReorders: 1, wLate: 1},
		{name: "duplicate across a big gap", seqs: []uint64{1, 100, 100}, wantGaps: 1, wantSkipped: 98, wantDups: 1},
		{name: "window edge", seqs: []uint64{1, 66, 2}, wantGaps: 1, wantSkipped: 64, wantReorders: 1},
		{name: "window edge seen", seqs: []uint64{1, 2, 66, 2}, wantGaps: 1, wantSkipped: 63, wantDups: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr SeqTracker
			var gaps, skipped, dups, reorders, late uint64
			for _, s := range tc.seqs {
				o, n := tr.Observe(s)
				switch o {
				case Gap:
					gaps++
					skipped += n
				case Duplicate:
					dups++
				case Reorder:
					reorders++
				case TooLate:
					late++
				}
			}
			if gaps != tc.wantGaps || skipped != tc.wantSkipped || dups != tc.wantDups || reorders != tc.wantReorders || late != tc.wLate {
				t.Fatalf("gaps %d skipped %d dups %d reorders %d late %d; want %d %d %d %d %d",
					gaps, skipped, dups, reorders, late, tc.wantGaps, tc.wantSkipped, tc.wantDups, tc.wantReorders, tc.wLate)
			}
		})
	}
}
