package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fraiseql/subscriptions/examples/internal/nodetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestResumesAfterRestart: the consumer is stopped and started again;
// messages published while it was down are printed after the restart, and
// every message of the filtered author is printed once, in order, and no
// other author's.
func TestResumesAfterRestart(t *testing.T) {
	n := nodetest.Start(t)
	url, cl := "ws://"+n.Addr+"/graphql", n.Cluster
	var anns []string // ann's message ids, as published
	publish := func(id int, author string) {
		t.Helper()
		if author == "ann" {
			anns = append(anns, fmt.Sprint(id))
		}
		body := fmt.Sprintf(`{"id":"%d","room":"r1","text":"m%d","author":{"name":%q}}`, id, id, author)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cl.Publish(ctx, "public", "chat.r1", []byte(body), ""); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config{url: url, room: "r1", author: "ann", cursorFile: filepath.Join(t.TempDir(), "cursor")}
	var out syncBuffer

	// First run: wait for the subscription, then three of ann's messages.
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, &out, io.Discard) }() // ends with ctx
	id := 0
	for out.Len() == 0 { // the subscription registers after the ack: publish until it hears
		if id++; id > 100 {
			t.Fatal("the consumer printed nothing after 100 publishes")
		}
		publish(id, "ann")
		time.Sleep(50 * time.Millisecond)
	}
	firstLine := out.String()
	for range 3 {
		id++
		publish(id, "ann")
		id++
		publish(id, "bob")
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), fmt.Sprintf("%d\tann", id-1)) })
	stop()
	<-done

	// While it is down: more of both authors.
	for range 3 {
		id++
		publish(id, "ann")
		id++
		publish(id, "bob")
	}
	// Second run resumes from the saved cursor.
	ctx, stop = context.WithCancel(context.Background())
	go func() { done <- run(ctx, cfg, &out, io.Discard) }()
	id++
	publish(id, "ann")
	waitFor(t, func() bool { return strings.Contains(out.String(), fmt.Sprintf("%d\tann", id)) })
	stop()
	<-done

	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Split(line, "\t")
		if f[1] != "ann" {
			t.Fatalf("printed another author's message: %q", line)
		}
		got = append(got, f[0])
	}
	// From the first message printed on, every one of ann's.
	first := strings.Fields(firstLine)[0]
	var want []string
	for k, a := range anns {
		if a == first {
			want = anns[k:]
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("printed ids %v, want %v (each of ann's once, in order)", got, want)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuffer) Len() int       { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Len() }
