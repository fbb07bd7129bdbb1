package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeVersion(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-30T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	installed := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.3.1"}}
	for _, tc := range []struct {
		ver, rev string
		info     *debug.BuildInfo
		want     string
	}{
		{"v1.2.0", "abc1234", vcs, "fraiseql-node v1.2.0 (commit abc1234-dirty, 2026-11-30T10:00:00Z, go1.26.0)"},
		{"", "", vcs, "fraiseql-node devel (commit 0123456789ab-dirty, 2026-11-30T10:00:00Z, go1.26.0)"},
		{"", "", installed, "fraiseql-node v0.3.1 (commit unknown, go1.26.0)"},
		{"", "", nil, "fraiseql-node devel (commit unknown)"},
	} {
		if got := describeVersion(tc.ver, tc.rev, tc.info); got != tc.want {
			t.Errorf("describeVersion(%q, %q) = %q, want %q", tc.ver, tc.rev, got, tc.want)
		}
	}
}

// TestVersionStampedByLinker builds the binary the way the Makefile does
// and checks that `version` prints what was stamped.
func TestVersionStampedByLinker(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fraiseql-node")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7 -X main.commit=feedc0ffee12", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "fraiseql-node v9.8.7 (commit feedc0ffee12") {
		t.Fatalf("version printed %q", out)
	}
}

// TestHelpListsCommands: --help, -h and help print every command, exit 0.
func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, nil, nil, &stdout, &stderr); code != exitOK {
			t.Fatalf("%v: exit %d", args, code)
		}
		for _, cmd := range []string{"serve", "publish", "config check", "migrate", "version", "Exit codes"} {
			if !strings.Contains(stdout.String(), cmd) {
				t.Errorf("%v does not list %q:\n%s", args, cmd, stdout.String())
			}
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-h"}, nil, nil, &stdout, &stderr); code != exitOK || !strings.Contains(stderr.String(), "publish") || !strings.Contains(stderr.String(), "-listen") {
		t.Errorf("serve -h: exit %d, lacks the commands or its flags:\n%s", code, stderr.String())
	}
}
