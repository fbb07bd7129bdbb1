// Command streaming is an event-streaming consumer: it subscribes to one
// chat room with a `where` filter, prints each matching message, and keeps
// the cursor of the last one in a file, so that when it is stopped and
// started again it resumes exactly after it: no message missed while it
// was down, none printed twice.
//
//	go run ./examples/streaming --room r1 --author ann
//
// Flags: --url (default ws://127.0.0.1:8080/graphql), --token (a JWT, when
// the node requires one), --room, --author (only messages by this author
// name), --cursor-file (default streaming.cursor), --count (stop after N
// messages; default: until interrupted).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/coder/websocket"
)

type config struct {
	url, token, room, author, cursorFile string
	count                                int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "ws://127.0.0.1:8080/graphql", "the node's GraphQL WebSocket endpoint")
	flag.StringVar(&cfg.token, "token", os.Getenv("FRAISEQL_TOKEN"), "JWT for connection_init, when the node requires one")
	flag.StringVar(&cfg.room, "room", "r1", "chat room")
	flag.StringVar(&cfg.author, "author", "", "only messages by this author name (a where filter)")
	flag.StringVar(&cfg.cursorFile, "cursor-file", "streaming.cursor", "where the last cursor is kept")
	flag.IntVar(&cfg.count, "count", 0, "stop after this many messages (0: until interrupted)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "streaming:", err)
		os.Exit(1)
	}
}

const subscriptionQuery = `subscription($room: ID!, $where: MessageFilter) {
  messageAdded(room: $room, where: $where) { id text author { name } }
}`

// run consumes until ctx ends or count messages were printed, reconnecting
// with backoff and resuming from the saved cursor after every drop.
func run(ctx context.Context, cfg config, out, logw io.Writer) error {
	printed := 0
	for attempt := 0; ; attempt++ {
		err := consume(ctx, cfg, out, logw, &printed)
		if err == nil || ctx.Err() != nil {
			return err
		}
		var fatal fatalError
		if errors.As(err, &fatal) {
			return err
		}
		wait := min(10*time.Second, 250*time.Millisecond<<min(attempt, 6))
		fmt.Fprintf(logw, "disconnected (%v); resuming in %v\n", err, wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// fatalError is an error a reconnection cannot fix.
type fatalError struct{ error }

// consume runs one connection; nil means count was reached.
func consume(ctx context.Context, cfg config, out, logw io.Writer, printed *int) error {
	cursor, err := loadCursor(cfg.cursorFile)
	if err != nil {
		return fatalError{err}
	}
	c, _, err := websocket.Dial(ctx, cfg.url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return err
	}
	defer c.CloseNow()
	send := func(v any) error {
		b, _ := json.Marshal(v)
		return c.Write(ctx, websocket.MessageText, b)
	}
	init := map[string]any{"type": "connection_init"}
	if cfg.token != "" {
		init["payload"] = map[string]string{"token": cfg.token}
	}
	if err := send(init); err != nil {
		return err
	}
	vars := map[string]any{"room": cfg.room}
	if cfg.author != "" {
		vars["where"] = map[string]any{"author": map[string]any{"name": map[string]any{"eq": cfg.author}}}
	}
	payload := map[string]any{"query": subscriptionQuery, "variables": vars}
	if cursor != "" {
		payload["extensions"] = map[string]string{"cursor": cursor}
		fmt.Fprintf(logw, "resuming after %s\n", cursor)
	}
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code == 4400 || code == 4401 || code == 4403 || code == 4409 || code == 4429 {
				return fatalError{err}
			}
			return err
		}
		var msg struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(data, &msg); err != nil {
			return fatalError{fmt.Errorf("not JSON from the node: %w", err)}
		}
		switch msg.Type {
		case "connection_ack":
			if err := send(map[string]any{"id": "1", "type": "subscribe", "payload": payload}); err != nil {
				return err
			}
		case "ping":
			if err := send(map[string]string{"type": "pong"}); err != nil {
				return err
			}
		case "next":
			var p struct {
				Data struct {
					MessageAdded struct {
						ID, Text string
						Author   struct{ Name string }
					} `json:"messageAdded"`
				} `json:"data"`
				Extensions struct {
					Cursor string `json:"cursor"`
				} `json:"extensions"`
			}
			if err := json.Unmarshal(msg.Payload, &p); err != nil {
				return fatalError{err}
			}
			m := p.Data.MessageAdded
			fmt.Fprintf(out, "%s\t%s\t%s\n", m.ID, m.Author.Name, m.Text)
			// Printed, then remembered: a crash between the two prints
			// that message again at the next start, never skips one.
			if err := saveCursor(cfg.cursorFile, p.Extensions.Cursor); err != nil {
				return fatalError{err}
			}
			if *printed++; cfg.count > 0 && *printed >= cfg.count {
				c.Close(websocket.StatusNormalClosure, "done")
				return nil
			}
		case "error":
			return fatalError{fmt.Errorf("subscription refused: %s", msg.Payload)}
		case "complete":
			return fatalError{errors.New("the node completed the subscription")}
		}
	}
}

func loadCursor(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// saveCursor replaces the file whole (write, then rename), so a crash
// leaves the old cursor or the new one, never half of one.
func saveCursor(path, cursor string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(cursor + "\n"); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
