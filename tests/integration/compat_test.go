//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGraphQLWSClientCompat subscribes with the graphql-ws npm client (the
// reference implementation of graphql-transport-ws) and checks what it
// receives: the same client the README tour uses.
func TestGraphQLWSClientCompat(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "examples", "js")
	nodeBin := needNPMPackages(t, dir, "graphql-ws")
	e := newEnv(t)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "subscribe.mjs",
		`subscription($room: ID!) { messageAdded(room: $room) { id text author { name } } }`, `{"room":"js"}`)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FRAISEQL_URL="+e.ws, "COUNT=2")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	errLines := make(chan string, 16)
	go func() { // ends when the process closes stderr
		defer close(errLines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errLines <- sc.Text()
		}
	}()
	select {
	case line := <-errLines:
		if !strings.HasPrefix(line, "connected") {
			t.Fatalf("client stderr: %s", line)
		}
	case <-ctx.Done():
		t.Fatal("graphql-ws client did not connect")
	}
	waitFor(t, 10*time.Second, "the client's subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	e.publish("chat.js", `{"id":"1","room":"js","text":"from nats","author":{"name":"bo"}}`)
	e.publish("chat.js", `{"id":"2","room":"js","text":"second"}`)
	if err := cmd.Wait(); err != nil {
		var rest []string
		for l := range errLines {
			rest = append(rest, l)
		}
		t.Fatalf("client exited: %v\nstderr: %s\nstdout: %s", err, strings.Join(rest, "\n"), stdout.String())
	}
	for range errLines {
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("client printed %d results, want 2:\n%s", len(lines), stdout.String())
	}
	wantData := []string{
		`{"messageAdded":{"id":"1","text":"from nats","author":{"name":"bo"}}}`,
		`{"messageAdded":{"id":"2","text":"second","author":null}}`,
	}
	for i, line := range lines {
		var r struct {
			Data       json.RawMessage `json:"data"`
			Extensions struct {
				Cursor string `json:"cursor"`
			} `json:"extensions"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("result %d: %v: %s", i, err, line)
		}
		if string(r.Data) != wantData[i] || r.Extensions.Cursor == "" {
			t.Errorf("result %d = %s, want data %s and a cursor", i, line, wantData[i])
		}
	}
}

// needNPMPackages returns the path of Node.js, and fails the test, saying
// how to install them, when it or the npm packages of dir are missing.
func needNPMPackages(t *testing.T, dir string, packages ...string) string {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("Node.js is required for the npm client tests: install nodejs (>= 20) and npm, then run `make deps`")
	}
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			t.Fatalf("npm package %s is not installed in %s: run `make deps` (npm ci --prefix %s)", p, dir, dir)
		}
	}
	return nodeBin
}
