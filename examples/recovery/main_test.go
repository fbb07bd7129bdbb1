package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRecovery runs the example: node A is killed mid-stream and the client
// must end with every event once, in order, having resumed on node B.
func TestRecovery(t *testing.T) {
	var log bytes.Buffer
	err := run(context.Background(), config{events: 200, killAfter: 60, rate: 400, repo: "../..", log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "killing node A") || !strings.Contains(log.String(), "resuming on the next node") {
		t.Fatalf("node A was not killed, or the client did not move:\n%s", log.String())
	}
	t.Log(log.String())
}
