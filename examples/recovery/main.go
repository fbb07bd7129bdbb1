// Command recovery shows a client surviving the loss of its node: it
// starts a NATS server with JetStream and two nodes (as processes), a
// client subscribed through node A, and a publisher of numbered events;
// mid-stream it kills node A (SIGKILL: no goodbye), and the client
// reconnects to node B with its last cursor. It prints what the client
// received and checks the sequence is complete: no gap, no duplicate.
//
//	go run ./examples/recovery            (from the repository root)
//
// Flags: --events N (default 300), --kill-after N (default 100), --rate
// events/s (default 200).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

type config struct {
	events, killAfter, rate int
	repo                    string // where ./cmd/fraiseql-node is
	log                     io.Writer
}

func main() {
	cfg := config{repo: ".", log: os.Stdout}
	flag.IntVar(&cfg.events, "events", 300, "numbered events to publish")
	flag.IntVar(&cfg.killAfter, "kill-after", 100, "kill node A once the client has received this many")
	flag.IntVar(&cfg.rate, "rate", 200, "events per second")
	flag.Parse()
	if err := run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "recovery:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	if cfg.killAfter <= 0 || cfg.killAfter >= cfg.events {
		return fmt.Errorf("--kill-after must be between 1 and --events-1")
	}
	cfg.log = &lockedWriter{w: cfg.log} // the client's goroutine logs too
	dir, err := os.MkdirTemp("", "fraiseql-recovery-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// NATS with JetStream, on a free port.
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "nats"), NoSigs: true})
	if err != nil {
		return err
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("NATS did not start")
	}
	fmt.Fprintf(cfg.log, "NATS at %s\n", ns.ClientURL())

	// Two nodes on that NATS server.
	bin := filepath.Join(dir, "fraiseql-node")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/fraiseql-node")
	build.Dir = cfg.repo
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	var nodes []*exec.Cmd
	var urls []string
	for i, name := range []string{"A", "B"} {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		cmd := exec.Command(bin, "--listen", addr, "--ops-listen", "off", "--nats-url", ns.ClientURL(),
			"--data-dir", filepath.Join(dir, "node"+name), "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		nodes = append(nodes, cmd)
		urls = append(urls, "ws://"+addr+"/graphql")
		fmt.Fprintf(cfg.log, "node %s at %s (pid %d)\n", name, urls[i], cmd.Process.Pid)
	}
	for _, u := range urls {
		if err := waitListening(strings.TrimSuffix(strings.TrimPrefix(u, "ws://"), "/graphql")); err != nil {
			return err
		}
	}

	c := &client{urls: urls, log: cfg.log, got: make(chan int, cfg.events+16)}
	cctx, stopClient := context.WithCancel(ctx)
	clientDone := make(chan error, 1)
	var clientWG sync.WaitGroup
	clientWG.Add(1)
	go func() { defer clientWG.Done(); clientDone <- c.run(cctx) }() // ends with cctx
	defer func() { stopClient(); clientWG.Wait() }()

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		return err
	}
	publish := func(id string) error {
		body := fmt.Sprintf(`{"id":%q,"room":"recovery","text":"event %s"}`, id, id)
		_, err := js.Publish("fraiseql.public.chat.recovery", []byte(body))
		return err
	}
	// The subscription registers after the ack: publish a warm-up event
	// until one arrives, then the numbered ones.
	if err := waitFirst(c, publish); err != nil {
		return err
	}
	start := time.Now()
	pubErr := make(chan error, 1)
	go func() { // ends after the last event or an error
		tick := time.NewTicker(time.Second / time.Duration(cfg.rate))
		defer tick.Stop()
		for i := 1; i <= cfg.events; i++ {
			<-tick.C
			if err := publish(strconv.Itoa(i)); err != nil {
				pubErr <- err
				return
			}
		}
		pubErr <- nil
	}()

	var received []int
	killed := false
	deadline := time.After(time.Duration(cfg.events/cfg.rate+60) * time.Second)
	for len(received) == 0 || received[len(received)-1] < cfg.events {
		select {
		case id := <-c.got:
			received = append(received, id)
			if len(received) == cfg.killAfter && !killed {
				killed = true
				fmt.Fprintf(cfg.log, "received %d events; killing node A (SIGKILL)\n", len(received))
				nodes[0].Process.Signal(syscall.SIGKILL)
			}
		case err := <-pubErr:
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		case err := <-clientDone:
			return fmt.Errorf("client stopped: %v", err)
		case <-deadline:
			return fmt.Errorf("timed out; received %d events, last %v", len(received), received[len(received)-1:])
		}
	}
	stopClient()
	clientWG.Wait()
	for i, id := range received {
		if id != i+1 {
			return fmt.Errorf("sequence broken at position %d: got %d (received %d events)", i, id, len(received))
		}
	}
	fmt.Fprintf(cfg.log, "received events 1..%d in order, none missing, none twice, in %v; resumed %d time(s)\n",
		cfg.events, time.Since(start).Round(time.Millisecond), c.resumes)
	return nil
}

func waitFirst(c *client, publish func(string) error) error {
	for i := 0; i < 100; i++ {
		if err := publish("warm-up"); err != nil {
			return err
		}
		select {
		case <-c.warm():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("the client received nothing after 100 publishes")
}

// client subscribes over graphql-transport-ws and, when its connection
// drops, moves to the next node and resubscribes after its last cursor.
type client struct {
	urls    []string
	log     io.Writer
	got     chan int
	resumes int

	mu      sync.Mutex
	warmed  chan struct{}
	started bool
}

func (c *client) warm() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warmed == nil {
		c.warmed = make(chan struct{})
	}
	return c.warmed
}

func (c *client) run(ctx context.Context) error {
	cursor := ""
	for i := 0; ; i++ {
		url := c.urls[i%len(c.urls)]
		err := c.session(ctx, url, &cursor)
		if ctx.Err() != nil {
			return nil
		}
		fmt.Fprintf(c.log, "connection to %s ended (%v); resuming on the next node after cursor %s\n", url, err, cursor)
		c.resumes++
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *client) session(ctx context.Context, url string, cursor *string) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	cancel()
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	send := func(v any) error {
		b, _ := json.Marshal(v)
		return conn.Write(ctx, websocket.MessageText, b)
	}
	if err := send(map[string]string{"type": "connection_init"}); err != nil {
		return err
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		var msg struct {
			Type    string `json:"type"`
			Payload struct {
				Data struct {
					MessageAdded struct{ ID string } `json:"messageAdded"`
				} `json:"data"`
				Extensions struct{ Cursor string } `json:"extensions"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(data, &msg); err != nil {
			return err
		}
		switch msg.Type {
		case "connection_ack":
			payload := map[string]any{"query": `subscription { messageAdded(room: "recovery") { id } }`}
			if *cursor != "" {
				payload["extensions"] = map[string]string{"cursor": *cursor}
			}
			if err := send(map[string]any{"id": "1", "type": "subscribe", "payload": payload}); err != nil {
				return err
			}
		case "ping":
			send(map[string]string{"type": "pong"})
		case "next":
			*cursor = msg.Payload.Extensions.Cursor
			if msg.Payload.Data.MessageAdded.ID == "warm-up" {
				c.mu.Lock()
				if !c.started {
					c.started = true
					if c.warmed == nil {
						c.warmed = make(chan struct{})
					}
					close(c.warmed)
				}
				c.mu.Unlock()
				continue
			}
			id, err := strconv.Atoi(msg.Payload.Data.MessageAdded.ID)
			if err != nil {
				return err
			}
			c.got <- id
		case "error", "complete":
			return fmt.Errorf("subscription ended: %s", data)
		}
	}
}

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitListening(addr string) error {
	for i := 0; i < 300; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no node listening on %s after 30 s", addr)
}
