package ws

import (
	"fmt"
	"log/slog"
	"time"
)

// Options configures a Server. The zero value of each field means its
// default, so Options{} is a valid configuration.
type Options struct {
	// InitTimeout is how long a client has, after the upgrade, to send
	// connection_init; then the connection is closed with 4408.
	// Zero value means 3s.
	InitTimeout time.Duration

	// ReadLimit is the largest client message in bytes; a bigger one closes
	// the connection with 1009 (message too big). A message of exactly
	// ReadLimit bytes is accepted. Zero value means 256 KiB.
	ReadLimit int64

	// WriteQueue is how many frames may wait to be written to one
	// connection. When it is full the client is a slow consumer: the
	// connection is closed with 1013 "slow consumer" (the client reconnects
	// and resumes by cursor). Zero value means 1024.
	WriteQueue int

	// WriteTimeout bounds each frame write. A write that takes longer means
	// the client stopped reading: the socket is closed at once (slow
	// consumer). Zero value means 10s.
	WriteTimeout time.Duration

	// KeepAlive is the interval of the legacy graphql-ws `ka` message and of
	// the graphql-transport-ws server `ping`, both sent from connection_ack
	// on. Zero value means 15s; a negative value disables them.
	KeepAlive time.Duration

	// OriginPatterns lists the host patterns of cross-origin pages allowed
	// to connect (coder/websocket AcceptOptions.OriginPatterns, matched with
	// path.Match against the Origin host). The request's own host is always
	// allowed. Zero value (nil) means same-origin only; non-browser clients
	// send no Origin and are always allowed.
	OriginPatterns []string

	// Logger receives connection logs. Zero value means slog.Default().
	Logger *slog.Logger
}

// Defaults of Options, documented on each field.
const (
	DefaultInitTimeout  = 3 * time.Second
	DefaultReadLimit    = 256 << 10
	DefaultWriteQueue   = 1024
	DefaultWriteTimeout = 10 * time.Second
	DefaultKeepAlive    = 15 * time.Second
)

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.InitTimeout <= 0 { // negative: Validate rejects it; never use it
		o.InitTimeout = DefaultInitTimeout
	}
	if o.ReadLimit <= 0 { // negative: Validate rejects it; never use it
		o.ReadLimit = DefaultReadLimit
	}
	if o.WriteQueue <= 0 { // negative: Validate rejects it; never use it
		o.WriteQueue = DefaultWriteQueue
	}
	if o.WriteTimeout <= 0 { // negative: Validate rejects it; never use it
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports the first field that has no meaning, named as in the
// config file. NewServer does not call it; callers validate configuration
// where they load it.
func (o Options) Validate() error {
	switch {
	case o.InitTimeout < 0:
		return fmt.Errorf("ws.init_timeout (%v) must not be negative", o.InitTimeout)
	case o.ReadLimit < 0:
		return fmt.Errorf("ws.read_limit (%d) must not be negative", o.ReadLimit)
	case o.WriteQueue < 0:
		return fmt.Errorf("ws.write_queue (%d) must not be negative", o.WriteQueue)
	case o.WriteTimeout < 0:
		return fmt.Errorf("ws.write_timeout (%v) must not be negative", o.WriteTimeout)
	}
	return nil
}
