//go:build linux

package loadgen

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name         string
		line         string
		utime, stime uint64
		wantErr      bool
	}{
		{
			name:  "plain",
			line:  "1234 (fraiseql-node) S 1 1234 1234 0 -1 4194560 3105 0 0 0 250 75 0 0 20 0 12 0 99 1000 200 18446744073709551615",
			utime: 250, stime: 75,
		},
		{
			name:  "name with spaces and parens",
			line:  "99 (a (b) c) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1",
			utime: 7, stime: 3,
		},
		{name: "truncated", line: "99 (x) R 1 2 3", wantErr: true},
		{name: "no name", line: "99 x R", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, s, err := parseStatCPU([]byte(tc.line))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if u != tc.utime || s != tc.stime {
				t.Fatalf("utime %d stime %d, want %d %d", u, s, tc.utime, tc.stime)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tfraiseql-node\nState:\tS (sleeping)\nVmPeak:\t  900000 kB\nVmRSS:\t   52340 kB\nRssAnon:\t   40000 kB\nThreads:\t12\n"
	st, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS != 52340*1024 || st.Threads != 12 {
		t.Fatalf("%+v", st)
	}
	if _, err := parseStatus([]byte("Name:\tkthreadd\nThreads:\t1\n")); err == nil {
		t.Fatal("no VmRSS should be an error")
	}
}

func TestProcSelf(t *testing.T) {
	// The real files of this process parse, and CPU only grows.
	pid := os.Getpid()
	c1, err := ProcCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Millisecond); time.Now().Before(end); {
	}
	c2, _ := ProcCPU(pid)
	if c2 < c1 {
		t.Fatalf("cpu went back: %v → %v", c1, c2)
	}
	st, err := ReadProcStatus(pid)
	if err != nil || st.RSS <= 0 || st.Threads <= 0 {
		t.Fatalf("%+v %v", st, err)
	}
	if SelfCPU() <= 0 {
		t.Fatal("SelfCPU is 0")
	}
}

func TestParseProm(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 1234
process_resident_memory_bytes 5.1234e+07
process_cpu_seconds_total 12.5
fraiseql_connections{node="a"} 7
go_memstats_heap_inuse_bytes 1e6
`
	m := parseProm([]byte(text), "go_goroutines", "process_resident_memory_bytes", "process_cpu_seconds_total", "fraiseql_connections", "missing")
	if m["go_goroutines"] != 1234 || m["process_resident_memory_bytes"] != 5.1234e7 || m["process_cpu_seconds_total"] != 12.5 {
		t.Fatalf("%v", m)
	}
	if _, ok := m["fraiseql_connections"]; ok {
		t.Fatal("labelled series should be skipped")
	}
	if _, ok := m["missing"]; ok {
		t.Fatal("missing metric reported")
	}
}

func TestParseProcIO(t *testing.T) {
	st, err := parseProcIO([]byte("rchar: 6976\nwchar: 0\nsyscr: 10\nsyscw: 7\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n"))
	if err != nil || st.SysR != 10 || st.SysW != 7 {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := parseProcIO([]byte("rchar: 1\n")); err == nil {
		t.Fatal("no syscw accepted")
	}
	if _, err := parseProcIO([]byte("syscr: x\nsyscw: 1\n")); err == nil {
		t.Fatal("a bad number accepted")
	}
	self, err := ProcIO("self")
	if err != nil || self.SysR == 0 {
		t.Fatalf("self: %+v %v", self, err)
	}
}
