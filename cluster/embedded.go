package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

// embeddedReadyTimeout bounds how long Open waits for the embedded server
// to accept connections.
const embeddedReadyTimeout = 30 * time.Second

// EmbeddedUser is the user name of the embedded server's one client
// account; its password is generated at every start (see EmbeddedURL).
const EmbeddedUser = "fraiseql"

// newEmbeddedPassword returns 32 random bytes, base64url: URL-safe, so it
// can sit in a URL's userinfo unescaped.
func newEmbeddedPassword() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// startEmbedded starts a JetStream-enabled NATS server in this process and
// waits until it accepts client connections. The server refuses anonymous
// clients: only EmbeddedUser with password may connect, so another local
// process that finds the port can neither read nor write any tenant's
// events, nor reach the JetStream API.
func startEmbedded(cfg Config, password string, log *slog.Logger) (*server.Server, error) {
	e := cfg.Embedded
	port := e.Port
	if port == 0 {
		// nats-server reads 0 as its default 4222; we never assume that
		// port is free (DESIGN.md, Running), so ask for a random one.
		port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(e.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("nats.embedded.store_dir: %w", err)
	}
	// The server keeps only a bcrypt hash. The password is 256 random
	// bits, so the lowest cost loses nothing and keeps connecting cheap.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	opts := &server.Options{
		ServerName: e.ServerName,
		Host:       e.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   e.StoreDir,
		// Room for a MaxMsgSize body plus headers (the server counts both).
		MaxPayload: cfg.MaxMsgSize + headerRoom,
		NoSigs:     true, // signals belong to cmd/fraiseql-node
		Users:      []*server.User{{Username: EmbeddedUser, Password: string(hash)}},
	}
	if e.ClusterName != "" {
		opts.Cluster = server.ClusterOpts{
			Name: e.ClusterName,
			Host: e.ClusterHost,
			Port: e.ClusterPort,
		}
		for _, r := range e.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("nats.embedded.routes: %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	s.SetLoggerV2(serverLogger{log.With("component", "nats-server")}, false, false, false)
	s.Start()
	if !s.ReadyForConnections(embeddedReadyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("start embedded nats: not ready after %v (store_dir %s)", embeddedReadyTimeout, e.StoreDir)
	}
	log.Info("embedded nats started", "url", s.ClientURL(), "store_dir", e.StoreDir, "server_name", e.ServerName)
	return s, nil
}

// serverLogger adapts slog to nats-server's Logger interface.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v...) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.logf(slog.LevelError, format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v...) }
func (l serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  { l.logf(slog.LevelDebug-4, format, v...) }

func (l serverLogger) logf(level slog.Level, format string, v ...any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, v...))
}
