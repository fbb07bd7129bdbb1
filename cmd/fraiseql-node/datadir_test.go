package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecondNodeOnTheSameDataDir: a second node given the data directory
// of a running one refuses to start, names the running node and
// --data-dir, and leaves the first node's nats.url in place, so that
// `publish` still finds it.
func TestSecondNodeOnTheSameDataDir(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"FRAISEQL_DATA_DIR=" + dataDir}
	firstAddr := serveForTest(t, env)

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--listen", "127.0.0.1:0", "--ops-listen", "off"}, env, nil, &stdout, &stderr)
	if code != exitError {
		t.Fatalf("second node exited %d, want %d; stderr: %s", code, exitError, stderr.String())
	}
	for _, want := range []string{dataDir, fmt.Sprintf("pid %d", os.Getpid()), "--data-dir"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("error lacks %q: %s", want, stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, natsURLFile)); err != nil {
		t.Fatalf("the second node removed the first one's nats.url: %v", err)
	}
	// publish still reaches the first node's NATS server.
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"publish", "chat.r1", `{"id":"1"}`}, env, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("publish after the second node's attempt exited %d: %s (first node at %s)", code, stderr.String(), firstAddr)
	}
}

// TestDataDirLockReleased: after a node stops, the next one takes its data
// directory.
func TestDataDirLockReleased(t *testing.T) {
	dataDir := t.TempDir()
	for i := range 2 {
		l, err := lockDataDir(dataDir, "127.0.0.1:1")
		if err != nil {
			t.Fatalf("lock %d: %v", i, err)
		}
		if _, err := lockDataDir(dataDir, "127.0.0.1:2"); err == nil {
			t.Fatalf("lock %d: a second lock of a held directory succeeded", i)
		}
		l.release()
	}
}

// TestListenAddressInUse: a busy listen address fails the start with an
// error naming the address and --listen, before the embedded NATS server
// has created its store.
func TestListenAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dataDir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--listen", busy.Addr().String(), "--ops-listen", "off"},
		[]string{"FRAISEQL_DATA_DIR=" + dataDir}, nil, &stdout, &stderr)
	if code != exitError {
		t.Fatalf("exit %d, want %d; stderr: %s", code, exitError, stderr.String())
	}
	for _, want := range []string{busy.Addr().String(), "--listen", "in use"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("error lacks %q: %s", want, stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "jetstream")); !os.IsNotExist(err) {
		t.Errorf("NATS started before the listen address was checked: %v", err)
	}
}

// TestBannerFollowsTheNode: the start-up banner's commands work for this
// node: its address, its data directory, and a token when auth is on.
func TestBannerFollowsTheNode(t *testing.T) {
	dataDir := t.TempDir()
	addr, banner, _, _ := startServeArgs(t, []string{"--data-dir", dataDir}, nil)
	for _, want := range []string{"FRAISEQL_URL=ws://" + addr + "/graphql", "publish --data-dir " + dataDir, "authentication:          OFF"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef\n"), 0o600)
	_, banner, _, _ = startServeArgs(t, nil, []string{"FRAISEQL_DATA_DIR=" + t.TempDir(), "FRAISEQL_AUTH_HS256_SECRET_FILE=" + secret})
	for _, want := range []string{"FRAISEQL_TOKEN=$(go run ./auth/cmd/fraiseql-token --secret-file " + secret, "--tenant acme", "authentication:          JWT"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
}
