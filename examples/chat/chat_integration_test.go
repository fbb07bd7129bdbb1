//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/examples/internal/nodetest"
)

// TestTwoBrowserTabsChat runs the page itself in two tabs of headless
// Chromium against the chat server and a real node: a message typed into
// each tab's form appears in both tabs, once each, in order.
func TestTwoBrowserTabsChat(t *testing.T) {
	chromium, jsDir := nodetest.Browser(t)
	base := startChat(t)

	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	drive := exec.CommandContext(dctx, "node", "test/chat.mjs")
	drive.Dir = jsDir
	drive.Env = append(os.Environ(), "PAGE_URL="+base+"/?room=r1", "CHROMIUM="+chromium)
	var stderr bytes.Buffer
	drive.Stderr = &stderr
	out, err := drive.Output()
	if err != nil {
		t.Fatalf("the tabs did not chat: %v\n%s", err, stderr.String())
	}
	var tabs [][]string
	if err := json.Unmarshal(bytes.TrimSpace(out), &tabs); err != nil {
		t.Fatalf("driver printed %q", out)
	}
	want := []string{"ann: hi bob", "bob: hi ann"}
	if len(tabs) != 2 {
		t.Fatalf("driver printed %d tabs", len(tabs))
	}
	for i, got := range tabs {
		if !slices.Equal(got, want) {
			t.Errorf("tab %d shows %q, want %q", i, got, want)
		}
	}
}
