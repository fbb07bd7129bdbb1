//go:build chaos

package cluster

import (
	"strings"
	"testing"
)

// TestCheckSequence shows that the sequence check fails on what it must
// catch: a gap, a duplicate, a reordering, an unpublished id, a client
// that stopped early or joined after the fault; and accepts an unacked
// event either way.
func TestCheckSequence(t *testing.T) {
	rm := &room{name: "r"}
	for id := int64(1); id <= 10; id++ {
		st := uint8(statusAcked)
		if id == 5 {
			st = statusUncertain
		}
		rm.set(id, st, 1)
	}
	for _, tc := range []struct {
		name  string
		ids   []int64
		bound int64
		want  string // "" means no problem
	}{
		{"all", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0, ""},
		{"joined late, within bound", []int64{3, 4, 5, 6, 7, 8, 9, 10}, 3, ""},
		{"unacked left out", []int64{1, 2, 3, 4, 6, 7, 8, 9, 10}, 0, ""},
		{"gap", []int64{1, 2, 3, 4, 5, 7, 8, 9, 10}, 0, "acked events missing (gap), first [6]"},
		{"duplicate", []int64{1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10}, 0, "duplicate or out of order"},
		{"reordered", []int64{1, 2, 4, 3, 5, 6, 7, 8, 9, 10}, 0, "duplicate or out of order"},
		{"never published", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 0, "never published"},
		{"stopped early", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}, 0, "want at least the last acked 10"},
		{"joined after the fault", []int64{7, 8, 9, 10}, 4, "later than the fault"},
		{"nothing", nil, 0, "received nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(checkSequence(tc.ids, rm, tc.bound), "; ")
			switch {
			case tc.want == "" && got != "":
				t.Errorf("problems %q, want none", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("problems %q, want one containing %q", got, tc.want)
			}
		})
	}
}
