//go:build integration

package integration

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"testing"
)

// needChromium returns the path of Chromium ($CHROMIUM, default
// /usr/bin/chromium), and fails the test, saying how to install it, when
// it is missing.
func needChromium(t *testing.T) string {
	t.Helper()
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is required for the browser client test: apt-get install chromium (or set CHROMIUM): %v", err)
	}
	return chromium
}

// runScript runs a Node.js script of dir with env and returns its stdout
// lines; it is killed at cleanup.
func runScript(t *testing.T, nodeBin, dir, script string, env ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, nodeBin, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() { // ends when the process closes stdout
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // the test stopped reading
			}
		}
	}()
	t.Cleanup(func() { cancel(); cmd.Wait() })
	return lines
}
