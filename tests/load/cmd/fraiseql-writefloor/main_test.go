//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/fraiseql/subscriptions/internal/uring"
	"github.com/fraiseql/subscriptions/internal/uring/uringtest"
)

func TestMain(m *testing.M) {
	// The tool starts this binary again as its reader.
	if spec := os.Getenv(readerEnv); spec != "" {
		os.Exit(reader(spec, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// measureOK runs the tool with args and -out, and returns its summary and
// its JSON report.
func measureOK(t *testing.T, args ...string) (string, Report) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "floor.json")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append(args, "-out", out), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	return stdout.String(), rep
}

func TestReaderGetsEveryByteWritten(t *testing.T) {
	summary, rep := measureOK(t, "-conns", "21", "-writers", "2", "-rate", "200", "-size", "100", "-frames", "3",
		"-duration", "200ms", "-warmup", "50ms")
	if rep.Writes == 0 || rep.Writes%21 != 0 || rep.Writers != 2 {
		t.Errorf("writes %d by %d writers: want whole rounds over 21 connections by 2", rep.Writes, rep.Writers)
	}
	if rep.BytesWritten == 0 || rep.BytesWritten%300 != 0 || rep.BytesRead != rep.BytesWritten {
		t.Errorf("bytes written %d, read %d: want equal, in writes of 300", rep.BytesWritten, rep.BytesRead)
	}
	if rep.BytesWritten <= rep.Writes*300 {
		t.Errorf("bytes written %d do not include the warm-up (measured writes %d)", rep.BytesWritten, rep.Writes)
	}
	if rep.CPUUsPerWrite <= 0 || rep.CPUUsPerFrame*3 < rep.CPUUsPerWrite*0.999 || rep.CPUUsPerFrame*3 > rep.CPUUsPerWrite*1.001 {
		t.Errorf("CPU per write %g, per frame %g: want per frame = per write / 3", rep.CPUUsPerWrite, rep.CPUUsPerFrame)
	}
	if len(rep.Windows) != 1 || rep.Windows[0].Name != "measure" || rep.Windows[0].ServerCPUUs != rep.CPUUsPerFrame ||
		rep.Windows[0].Offered != 200*21*3 {
		t.Errorf("windows %+v: want one measure window with CPU per frame and 12600 frames/s offered", rep.Windows)
	}
	if !strings.Contains(summary, "µs CPU per write") {
		t.Errorf("summary lacks the CPU per write: %s", summary)
	}
}

// TestIOUringEngine: with -engine io_uring every byte still arrives,
// over more connections than one submit carries.
func TestIOUringEngine(t *testing.T) {
	uringtest.Require(t, uring.Probe())
	_, rep := measureOK(t, "-engine", "io_uring", "-conns", "150", "-writers", "2", "-rate", "100", "-size", "100",
		"-duration", "200ms", "-warmup", "50ms")
	if rep.Engine != "io_uring" || rep.Writes == 0 || rep.Writes%150 != 0 || rep.BytesRead != rep.BytesWritten {
		t.Errorf("engine %q: %d writes, %d bytes written, %d read: want whole rounds over 150 connections, every byte read", rep.Engine, rep.Writes, rep.BytesWritten, rep.BytesRead)
	}
}

func TestFlagBounds(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" means valid
	}{
		{[]string{"-conns", "0"}, "-conns 0"},
		{[]string{"-conns", "1"}, ""},
		{[]string{"-conns", "20000"}, ""},
		{[]string{"-conns", "20001"}, "-conns 20001"},
		{[]string{"-frames", "0"}, "-frames 0"},
		{[]string{"-frames", "64"}, ""},
		{[]string{"-frames", "65"}, "-frames 65"},
		{[]string{"-writers", "0"}, "-writers 0"},
		{[]string{"-writers", "64"}, ""},
		{[]string{"-writers", "65"}, "-writers 65"},
		{[]string{"-size", "65536"}, ""},
		{[]string{"-size", "65537"}, "-size 65537"},
		{[]string{"-rate", "0"}, "-rate 0"},
		{[]string{"-rate", "10000"}, ""},
		{[]string{"-rate", "10001"}, "-rate 10001"},
		{[]string{"-duration", "0s"}, "-duration 0s"},
		{[]string{"-warmup", "-1s"}, "-warmup -1s"},
		{[]string{"-engine", "io_uring"}, ""},
		{[]string{"-engine", "sendmmsg"}, `-engine "sendmmsg"`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var stderr bytes.Buffer
		_, err := parse(tc.args, &stderr)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-conns", "0"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "want 1..20000") {
		t.Errorf("bad flag: exit %d, stderr %q; want 2 and the bound", code, stderr.String())
	}
}

func TestReaderRefusesAnythingButLoopback(t *testing.T) {
	for _, spec := range []string{"192.0.2.1:80 1", "127.0.0.1:80 0", "127.0.0.1:80", "nohost 3"} {
		var stdout, stderr bytes.Buffer
		if code := reader(spec, &stdout, &stderr); code != 2 {
			t.Errorf("reader(%q) = %d, want 2 (stderr %q)", spec, code, stderr.String())
		}
	}
}

func TestReadCount(t *testing.T) {
	if n, err := readCount(strings.NewReader("read 42\n")); err != nil || n != 42 {
		t.Errorf("readCount = %d, %v; want 42", n, err)
	}
	for _, in := range []string{"", "read 42", "got 42\n", "read x\n"} {
		if _, err := readCount(strings.NewReader(in)); err == nil {
			t.Errorf("readCount(%q): no error", in)
		}
	}
}

func TestWritersAreAtMostTheConnections(t *testing.T) {
	_, rep := measureOK(t, "-conns", "3", "-writers", "4", "-rate", "100", "-duration", "50ms", "-warmup", "0s")
	if rep.Writers != 3 || rep.Writes%3 != 0 {
		t.Errorf("3 connections, -writers 4: report says %d writers, %d writes; want 3 writers, whole rounds", rep.Writers, rep.Writes)
	}
}
