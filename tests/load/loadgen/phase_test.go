//go:build linux

package loadgen

import "testing"

func TestPhasesFind(t *testing.T) {
	var ps phases
	warm := newPhase("warmup", 1, 2)
	ps.add(warm)
	warm.start[0].Store(1)
	warm.end[0].Store(10)
	warm.start[1].Store(1)
	warm.end[1].Store(10)
	m := newPhase("measure", 1, 2)
	ps.add(m)
	m.start[0].Store(11) // room 1 has published nothing in measure yet
	tests := []struct {
		room int
		seq  uint64
		want *phase
	}{
		{0, 5, warm}, {0, 10, warm}, {0, 11, m}, {0, 500, m},
		{1, 10, warm}, {1, 11, nil}, // between warm-up's end and measure's start
	}
	for _, tc := range tests {
		if got := ps.find(tc.room, tc.seq); got != tc.want {
			t.Errorf("find(%d, %d) = %v, want %v", tc.room, tc.seq, name(got), name(tc.want))
		}
	}
	m.end[0].Store(20)
	if got := ps.find(0, 21); got != nil {
		t.Errorf("after the end: %v", name(got))
	}
	m.pubFailed[0].Store(2)
	if exp := m.expected([]int64{3, 5}); exp != (10-2)*3 {
		t.Errorf("expected %d", exp)
	}
}

func name(p *phase) string {
	if p == nil {
		return "nil"
	}
	return p.name
}
