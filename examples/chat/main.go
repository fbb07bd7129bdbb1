// Command chat is a chat room in the browser on FraiseQL Subscriptions.
// It serves a page, passes the page's WebSocket through to a node
// (same origin, so the node's origin check needs no configuration), and
// publishes what the page sends (POST /send) to NATS: the node delivers
// it to every tab in the room.
//
//	go run ./cmd/fraiseql-node                  (terminal 1)
//	go run ./examples/chat                      (terminal 2)
//
// then open http://127.0.0.1:8090/?room=r1 in two tabs.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/query"
)

//go:embed index.html
var page []byte

type config struct {
	listen, node, natsURL, dataDir, tenant string
}

func main() {
	cfg := config{}
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8090", "where the page is served")
	flag.StringVar(&cfg.node, "node", "http://127.0.0.1:8080", "the node whose /graphql the page uses")
	flag.StringVar(&cfg.natsURL, "nats-url", "", "NATS URL; empty: the running node's embedded server (its data dir's nats.url)")
	flag.StringVar(&cfg.dataDir, "data-dir", filepath.Join(os.TempDir(), fmt.Sprintf("fraiseql-%d", os.Getuid())), "the node's data directory")
	flag.StringVar(&cfg.tenant, "tenant", "public", "tenant to publish to (the node's, when authentication is off)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", cfg.listen)
	if err == nil {
		fmt.Printf("chat at http://%s/?room=r1 (open it in two tabs)\n", ln.Addr())
		err = run(ctx, cfg, ln)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// run serves on ln until ctx ends.
func run(ctx context.Context, cfg config, ln net.Listener) error {
	if cfg.natsURL == "" {
		b, err := os.ReadFile(filepath.Join(cfg.dataDir, "nats.url"))
		if err != nil {
			return fmt.Errorf("no --nats-url and no running node's nats.url in %s (start one with go run ./cmd/fraiseql-node): %w", cfg.dataDir, err)
		}
		cfg.natsURL = strings.TrimSpace(string(b))
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := cluster.Connect(cctx, cluster.Config{URL: cfg.natsURL}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer cl.Close()
	target, err := url.Parse(cfg.node)
	if err != nil {
		return fmt.Errorf("--node: %w", err)
	}
	srv := &http.Server{Handler: handler(cl, cfg.tenant, target), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }() // ends with ctx
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return ctx.Err()
}

func handler(cl *cluster.Cluster, tenant string, node *url.URL) http.Handler {
	var seq atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	// The page's WebSocket goes to the node through this origin.
	mux.Handle("/graphql", httputil.NewSingleHostReverseProxy(node))
	mux.HandleFunc("POST /send", func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Room, Author, Text string }
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10)).Decode(&m); err != nil {
			http.Error(w, "want JSON {room, author, text}", http.StatusBadRequest)
			return
		}
		for _, f := range []string{m.Room, m.Author, m.Text} {
			if f == "" || utf8.RuneCountInString(f) > 500 {
				http.Error(w, "room, author and text: 1 to 500 characters each", http.StatusBadRequest)
				return
			}
		}
		id := fmt.Sprintf("%d-%d", time.Now().UnixNano(), seq.Add(1))
		body, _ := json.Marshal(map[string]any{"id": id, "room": m.Room, "text": m.Text, "author": map[string]string{"name": m.Author}})
		// The topic is the room, escaped as the node escapes {room}.
		if _, err := cl.Publish(r.Context(), tenant, "chat."+query.EscapeToken(m.Room), body, id); err != nil {
			http.Error(w, "publish failed", http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
