package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults applied by Config.withDefaults. They are the documented zero
// values of the matching Config fields.
const (
	DefaultPrefix          = "fraiseql"
	DefaultStream          = "EVENTS"
	DefaultMaxAge          = 24 * time.Hour
	DefaultMaxBytes        = int64(1 << 30)
	DefaultReplicas        = 1
	DefaultMaxMsgSize      = int32(1 << 20)
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultEmbeddedHost    = "127.0.0.1"
	DefaultMaxReplays      = 16
	DefaultMaxReplayQueue  = 50_000

	// headerRoom is what the stream and the embedded server allow on top of
	// MaxMsgSize for NATS headers (Nats-Msg-Id and friends): JetStream
	// counts headers and body together against the stream's max_msg_size,
	// while Publish enforces MaxMsgSize on the body alone.
	headerRoom = 4096

	// maxMsgIDLen bounds the Nats-Msg-Id a caller may set, so that it always
	// fits in headerRoom.
	maxMsgIDLen = 1024
)

// Config says how to reach NATS and how the event stream is shaped.
// It is a plain value: every field's zero value is valid and documented.
type Config struct {
	// URL is one or more NATS server URLs, comma-separated
	// ("nats://a:4222,nats://b:4222"). Zero value means: start an embedded
	// NATS server with JetStream (see Embedded) and connect to it.
	URL string

	// CredsFile is a NATS .creds file (JWT + nkey seed) for an external
	// server. Zero value means no credentials file.
	CredsFile string

	// User and Password authenticate to an external server. Zero value
	// means no user/password.
	User, Password string

	// Token authenticates to an external server. Zero value means no token.
	Token string

	// TLSCA is a PEM file of CAs to verify an external server with; TLSCert
	// and TLSKey are a client certificate and key (both or neither). Zero
	// values mean the system roots and no client certificate.
	TLSCA, TLSCert, TLSKey string

	// Embedded configures the embedded server; it is ignored when URL is set.
	Embedded EmbeddedConfig

	// Prefix is the first token of every event subject
	// ("<prefix>.<tenant>.<topic>"). It must be one subject token. Zero
	// value means "fraiseql".
	Prefix string

	// Stream is the JetStream stream that holds the events. Zero value
	// means "EVENTS".
	Stream string

	// MaxAge is how long the stream keeps an event, and so how old a
	// resumable cursor can be. Zero value means 24h.
	MaxAge time.Duration

	// MaxBytes bounds the stream's size; the oldest events go first. Zero
	// value means 1 GiB; -1 means unlimited.
	MaxBytes int64

	// Replicas is the stream's replication factor (1, or 3 on a 3+ server
	// cluster). Zero value means 1.
	Replicas int

	// MaxMsgSize is the largest event body Publish accepts; the stream
	// allows a few KiB more for headers. Zero value means 1 MiB.
	MaxMsgSize int32

	// DuplicateWindow is how long the stream remembers Nats-Msg-Id values
	// for deduplication. It must not exceed MaxAge. Zero value means 2m.
	DuplicateWindow time.Duration

	// CursorKeyFile is a file holding the deployment's cursor key: one
	// line of 32 bytes in base64 or hex (`openssl rand -base64 32`); more
	// lines are earlier keys, still accepted when parsing (rotation). Every
	// node must read the same file. Zero value means the key in the KV
	// bucket CursorKeyBucket, created at random by the first node.
	CursorKeyFile string

	// MaxReplays is how many history reads of Replay (one direct get of
	// up to 256 events each) this node has in flight at most; replays
	// beyond it wait their turn. Zero value means 16.
	MaxReplays int

	// MaxReplayQueue is how many reads of Replay may wait for a slot
	// (replays that share a read count once); past it Replay fails at
	// once with ErrReplayBusy (the client retries with the same cursor).
	// Zero value means 50,000; -1 means unbounded.
	MaxReplayQueue int

	// Ingest is how this node receives live events: "stream" (one
	// ordered consumer over every subject of the stream) or "interest"
	// (only the subjects it has subscribers for; see Cluster.Interest and
	// docs/architecture.md, Ingest by interest). "interest" makes the
	// stream republish every event on "_live.<prefix>.>"; a node in
	// stream mode keeps that setting when it updates the stream. Zero
	// value means "stream".
	Ingest string

	// Name is the node's id: it names its NATS connection and prefixes its
	// consumers' names, so that an operator can tell which node holds
	// which consumer. Zero value means the host name (a container's or
	// pod's name).
	Name string
}

// EmbeddedConfig configures the NATS server that Open starts when
// Config.URL is empty.
type EmbeddedConfig struct {
	// Host is the client listen address. Zero value means 127.0.0.1.
	Host string

	// Port is the client port. Zero value means a random free port:
	// 4222 is never assumed to be free, as another NATS may hold it.
	Port int

	// StoreDir is the JetStream data directory. Zero value means
	// filepath.Join(os.TempDir(), "fraiseql-nats").
	StoreDir string

	// ServerName names the server. When clustering it must be unique and
	// stable across restarts (it is the server's identity in JetStream's
	// Raft groups). Zero value means "fraiseql-<hostname>".
	ServerName string

	// ClusterName enables clustering with the servers in Routes. Zero
	// value means a standalone server (ClusterHost, ClusterPort and Routes
	// are then ignored).
	ClusterName string

	// ClusterHost is the route listen address. Zero value means Host.
	ClusterHost string

	// ClusterPort is the route port. Zero value means 6222; -1 means a
	// random free port.
	ClusterPort int

	// Routes are the other servers' route URLs ("nats://host:6222").
	// Zero value means no routes.
	Routes []string
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.MaxMsgSize == 0 {
		c.MaxMsgSize = DefaultMaxMsgSize
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MaxReplays == 0 {
		c.MaxReplays = DefaultMaxReplays
	}
	if c.MaxReplayQueue == 0 {
		c.MaxReplayQueue = DefaultMaxReplayQueue
	}
	if c.Ingest == "" {
		c.Ingest = IngestStream
	}
	if c.Name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "node"
		}
		c.Name = host
	}
	if c.URL == "" {
		e := &c.Embedded
		if e.Host == "" {
			e.Host = DefaultEmbeddedHost
		}
		if e.StoreDir == "" {
			e.StoreDir = filepath.Join(os.TempDir(), "fraiseql-nats")
		}
		if e.ServerName == "" {
			host, _ := os.Hostname()
			e.ServerName = "fraiseql-" + sanitizeName(host)
		}
		if e.ClusterName != "" {
			if e.ClusterHost == "" {
				e.ClusterHost = e.Host
			}
			if e.ClusterPort == 0 {
				e.ClusterPort = 6222
			}
		}
	}
	return c
}

// Validate reports the first invalid field, named as in the config file
// ("nats.max_age"). It checks c as given, after applying defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("nats.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if !validToken(c.Prefix) {
		bad("prefix", "%q is not one subject token (no '.', '*', '>', whitespace or control characters)", c.Prefix)
	}
	if c.Prefix == adminPrefix {
		bad("prefix", "%q is reserved for the cluster-wide admin actions", c.Prefix)
	}
	if !validStreamName(c.Stream) {
		bad("stream", "%q is not a valid stream name", c.Stream)
	}
	if c.MaxAge < 0 {
		bad("max_age", "%v is negative", c.MaxAge)
	}
	if c.MaxBytes < -1 {
		bad("max_bytes", "%d is below -1 (unlimited)", c.MaxBytes)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("replicas", "%d is not between 1 and 5", c.Replicas)
	}
	if c.MaxMsgSize < 0 {
		bad("max_msg_size", "%d is negative", c.MaxMsgSize)
	}
	if int64(c.MaxMsgSize)+headerRoom > 64<<20 {
		bad("max_msg_size", "%d exceeds NATS's 64 MiB payload limit", c.MaxMsgSize)
	}
	if c.DuplicateWindow < 0 {
		bad("duplicate_window", "%v is negative", c.DuplicateWindow)
	} else if c.MaxAge > 0 && c.DuplicateWindow > c.MaxAge {
		bad("duplicate_window", "%v exceeds nats.max_age (%v)", c.DuplicateWindow, c.MaxAge)
	}
	if c.MaxReplays < 1 {
		bad("max_replays", "%d is not positive", c.MaxReplays)
	}
	if c.MaxReplayQueue < -1 {
		bad("max_replay_queue", "%d is below -1 (unbounded)", c.MaxReplayQueue)
	}
	switch c.Ingest {
	case IngestStream:
	case IngestInterest:
		if c.Prefix == livePrefix {
			bad("prefix", "%q is reserved for the republished events of nats.ingest: interest", c.Prefix)
		}
	default:
		bad("ingest", "%q is not %q or %q", c.Ingest, IngestStream, IngestInterest)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls_cert", "tls_cert and tls_key must be set together")
	}
	if c.URL == "" {
		e := c.Embedded
		if e.Port < -1 || e.Port > 65535 {
			bad("embedded.port", "%d is not a port", e.Port)
		}
		if strings.ContainsAny(e.Host, " /:") && net.ParseIP(e.Host) == nil {
			bad("embedded.host", "%q is not a host name or IP address", e.Host)
		}
		if !validToken(e.ServerName) {
			bad("embedded.server_name", "%q is not a valid name", e.ServerName)
		}
		if e.ClusterName != "" {
			if !validToken(e.ClusterName) {
				bad("embedded.cluster_name", "%q is not a valid name", e.ClusterName)
			}
			if e.ClusterPort < -1 || e.ClusterPort > 65535 {
				bad("embedded.cluster_port", "%d is not a port", e.ClusterPort)
			}
			for _, r := range e.Routes {
				if !strings.Contains(r, "://") {
					bad("embedded.routes", "%q is not a URL (nats://host:port)", r)
				}
			}
		}
		if c.CredsFile != "" || c.User != "" || c.Token != "" {
			bad("url", "credentials are set but url is empty (credentials apply to an external server only)")
		}
	} else {
		for _, u := range strings.Split(c.URL, ",") {
			if strings.TrimSpace(u) == "" {
				bad("url", "%q has an empty entry", c.URL)
				break
			}
		}
	}
	if c.Token != "" && c.User != "" {
		bad("token", "token and user are exclusive")
	}
	return errors.Join(errs...)
}

// validStreamName reports whether s is a legal JetStream stream name.
func validStreamName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b <= ' ' || b == 0x7f, b == '.', b == '*', b == '>', b == '/', b == '\\':
			return false
		}
	}
	return true
}

// sanitizeName turns s into something usable as a server or consumer name
// (no '.', '*', '>', whitespace).
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "node"
	}
	return b.String()
}
