package ws

import (
	"fmt"
	"log/slog"
	"runtime/debug"
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
	// ReadLimit bytes is accepted. A compressed message (Compression) is
	// measured inflated, and inflating stops at the limit. Zero value
	// means 256 KiB.
	ReadLimit int64

	// WriteQueue is how many frames may wait to be written to one
	// connection. When it is full the client is a slow consumer: the
	// connection is closed with 1013 "slow consumer" (the client reconnects
	// and resumes by cursor). Zero value means 1024.
	WriteQueue int

	// MaxQueuedBytes bounds one connection's write queue in bytes: the sum
	// of the payloads of its queued frames (a payload shared with other
	// connections counts in full in each queue that holds it). A frame
	// that would take the queue past it closes the connection with 1013
	// "slow consumer"; replay (Subscription.NextWait) waits for space
	// instead, and a single frame bigger than the whole budget closes the
	// connection. It should be well above the largest frame a connection
	// receives. Zero value means 4 MiB.
	MaxQueuedBytes int64

	// NodeQueuedBytes bounds the bytes queued on all of the Server's
	// connections together, counted as each connection's queued bytes at
	// the end of its write round (see Fanout), i.e. what its socket did
	// not take at once: connections that keep up count for nothing, so a
	// large fan-out to clients that read does not approach it. A payload
	// waiting in several queues counts once per queue, which makes the sum
	// an upper bound of the memory the queues keep alive. A connection
	// whose backlog grows while the sum is over it is closed with 1013
	// "slow consumer". Zero value means 1 GiB, or half the Go memory limit
	// (GOMEMLIMIT) when that is lower; it is never below MaxQueuedBytes.
	NodeQueuedBytes int64

	// WriteTimeout bounds each frame write. A write that takes longer means
	// the client stopped reading: the socket is closed at once (slow
	// consumer). Zero value means 10s.
	WriteTimeout time.Duration

	// CoalesceDelay is how long a connection's fan-out writes are held to
	// share one write(2) (see Fanout): a connection written less than
	// CoalesceDelay ago, i.e. one receiving events faster than one per
	// CoalesceDelay, is written CoalesceDelay after its last write, with
	// everything it got meanwhile; a slower one is written at once. Zero
	// value means DefaultCoalesceDelay; a negative value disables
	// coalescing (every round writes every connection it touched). At most
	// MaxCoalesceDelay.
	CoalesceDelay time.Duration

	// IOUring says whether a Fanout's write rounds hand their direct
	// writes to the kernel through io_uring (Linux), one io_uring_enter(2)
	// per 64 connections instead of one write(2) each: IOUringAuto (the
	// zero value) where the kernel allows it, IOUringOff never. Writes and
	// their order are the same either way; see IOUringStatus.
	IOUring IOUringMode

	// WriteDelay is the least time between two write rounds of a Fanout:
	// events that arrive meanwhile go out together, several per write(2)
	// for a connection that gets more than one, at the cost of up to
	// WriteDelay of added latency for every connection. Zero value: none
	// (write as soon as the deliverer is idle). At most MaxWriteDelay.
	WriteDelay time.Duration

	// KeepAlive is the interval of the legacy graphql-ws `ka` message and of
	// the graphql-transport-ws server `ping`, both sent from connection_ack
	// on. Zero value means 15s; a negative value disables them.
	KeepAlive time.Duration

	// SSEKeepAlive is the interval of the comment line (":") an SSE
	// stream sends while idle, so that proxies do not close it for
	// inactivity. Zero value means DefaultSSEKeepAlive (15s); otherwise it
	// is between MinSSEKeepAlive (1s) and MaxSSEKeepAlive (5m).
	SSEKeepAlive time.Duration

	// MultipartHeartbeat is the interval of the heartbeat part ({}) a
	// multipart subscription response sends while idle, so that proxies
	// do not close it for inactivity. Zero value means
	// DefaultMultipartHeartbeat (5s, Apollo Router's); otherwise it is
	// between MinMultipartHeartbeat (1s) and MaxMultipartHeartbeat (5m).
	MultipartHeartbeat time.Duration

	// Compression negotiates permessage-deflate (RFC 7692) with WebSocket
	// clients that offer it: CompressionNoContextTakeover compresses each
	// `next` message on its own, once per event for every connection;
	// CompressionContextTakeover gives each connection a compressor whose
	// window spans its messages (a better ratio, 0.8 MiB per
	// connection, bounded by CompressionContextConns). Client messages are
	// inflated with no context either way, and ReadLimit bounds their
	// inflated size. Zero value ("") means CompressionOff.
	Compression Compression

	// CompressionThreshold is the least size of a `next` message, as
	// framed (prefix, payload and "}"), that is compressed; smaller ones
	// go out as they are. Zero value means DefaultCompressionThreshold
	// (256); 1 compresses every one.
	CompressionThreshold int

	// CompressionContextConns bounds the connections that have a
	// compressor of their own with CompressionContextTakeover: past it, a
	// new connection negotiates server_no_context_takeover instead. Zero
	// value means DefaultCompressionContextConns (64).
	CompressionContextConns int

	// SSECompression is "gzip" to gzip the body of GraphQL-over-SSE and multipart HTTP
	// responses whose request accepts it (Accept-Encoding), flushed after
	// every write; zero value ("") or "off" means uncompressed.
	SSECompression string

	// SSEReservationTimeout is how long a graphql-sse single connection
	// mode reservation (PUT) waits for its stream to be opened; then it
	// expires and its connection slot is freed. Zero value means
	// DefaultSSEReservationTimeout (30s); otherwise it is between
	// MinSSEReservationTimeout (1s) and MaxSSEReservationTimeout (5m).
	SSEReservationTimeout time.Duration

	// SSEMaxReservations bounds the reservations not opened yet on the
	// Server (503 beyond); SSEMaxReservationsPerUser those of one
	// principal, SSEMaxReservationsPerTenant those of one tenant (429
	// beyond; see StreamHandler.Principal). Zero values mean
	// DefaultSSEMaxReservations (10000), DefaultSSEMaxReservationsPerUser
	// (16) and DefaultSSEMaxReservationsPerTenant (1000).
	SSEMaxReservations          int
	SSEMaxReservationsPerUser   int
	SSEMaxReservationsPerTenant int

	// NodeID names the Server in single connection mode tokens, so that
	// another node forwards a token's requests to it (StreamHandler): 1
	// to 32 of [A-Za-z0-9_-]. Zero value means a random one.
	NodeID string

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
	DefaultInitTimeout = 3 * time.Second
	DefaultReadLimit   = 256 << 10
	DefaultWriteQueue  = 1024
	// DefaultMaxQueuedBytes is 4 MiB: four events of the largest size the
	// node accepts by default (limits.max_event_bytes, 1 MiB).
	DefaultMaxQueuedBytes = 4 << 20
	// DefaultNodeQueuedBytes is 1 GiB (see Options.NodeQueuedBytes for the
	// Go memory limit).
	DefaultNodeQueuedBytes = 1 << 30
	DefaultWriteTimeout    = 10 * time.Second
	DefaultKeepAlive       = 15 * time.Second
	DefaultCoalesceDelay   = 10 * time.Millisecond
)

// Bounds of Options.
const (
	// MaxCoalesceDelay bounds CoalesceDelay: it is a latency added to
	// busy connections, meant to be a few milliseconds.
	MaxCoalesceDelay = 100 * time.Millisecond
	// MaxWriteDelay bounds WriteDelay: a longer one would look like a
	// stalled connection to clients.
	MaxWriteDelay = time.Second
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
	if o.MaxQueuedBytes <= 0 { // negative: Validate rejects it; never use it
		o.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if o.NodeQueuedBytes <= 0 { // negative: Validate rejects it; never use it
		o.NodeQueuedBytes = defaultNodeQueuedBytes(debug.SetMemoryLimit(-1))
	}
	o.NodeQueuedBytes = max(o.NodeQueuedBytes, o.MaxQueuedBytes)
	if o.WriteTimeout <= 0 { // negative: Validate rejects it; never use it
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.SSEKeepAlive == 0 {
		o.SSEKeepAlive = DefaultSSEKeepAlive
	}
	if o.MultipartHeartbeat == 0 {
		o.MultipartHeartbeat = DefaultMultipartHeartbeat
	}
	if o.SSEReservationTimeout <= 0 { // negative: Validate rejects it; never use it
		o.SSEReservationTimeout = DefaultSSEReservationTimeout
	}
	if o.SSEMaxReservations <= 0 { // negative: Validate rejects it; never use it
		o.SSEMaxReservations = DefaultSSEMaxReservations
	}
	if o.SSEMaxReservationsPerUser <= 0 { // negative: Validate rejects it; never use it
		o.SSEMaxReservationsPerUser = DefaultSSEMaxReservationsPerUser
	}
	if o.SSEMaxReservationsPerTenant <= 0 { // negative: Validate rejects it; never use it
		o.SSEMaxReservationsPerTenant = DefaultSSEMaxReservationsPerTenant
	}
	if o.NodeID == "" {
		o.NodeID = newStreamToken("n")[2:12]
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	switch {
	case o.CoalesceDelay == 0:
		o.CoalesceDelay = DefaultCoalesceDelay
	case o.CoalesceDelay < 0:
		o.CoalesceDelay = 0 // off
	}
	if o.Compression == "" {
		o.Compression = CompressionOff
	}
	if o.CompressionThreshold <= 0 { // negative: Validate rejects it; never use it
		o.CompressionThreshold = DefaultCompressionThreshold
	}
	if o.CompressionContextConns <= 0 { // negative: Validate rejects it; never use it
		o.CompressionContextConns = DefaultCompressionContextConns
	}
	if o.SSECompression == "" {
		o.SSECompression = SSECompressionOff
	}
	if o.IOUring == "" {
		o.IOUring = IOUringAuto
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// defaultNodeQueuedBytes is the default node-wide budget under the Go
// memory limit memLimit (math.MaxInt64 when none is set).
func defaultNodeQueuedBytes(memLimit int64) int64 {
	return min(DefaultNodeQueuedBytes, memLimit/2)
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
	case o.MaxQueuedBytes < 0:
		return fmt.Errorf("ws.max_queued_bytes (%d) must not be negative", o.MaxQueuedBytes)
	case o.NodeQueuedBytes < 0:
		return fmt.Errorf("ws.node_queued_bytes (%d) must not be negative", o.NodeQueuedBytes)
	case o.NodeQueuedBytes > 0 && o.MaxQueuedBytes > 0 && o.NodeQueuedBytes < o.MaxQueuedBytes:
		return fmt.Errorf("ws.node_queued_bytes (%d) must not be below ws.max_queued_bytes (%d)", o.NodeQueuedBytes, o.MaxQueuedBytes)
	case o.WriteTimeout < 0:
		return fmt.Errorf("ws.write_timeout (%v) must not be negative", o.WriteTimeout)
	case o.CoalesceDelay > MaxCoalesceDelay:
		return fmt.Errorf("ws.coalesce_delay (%v) must be at most %v (0 disables coalescing)", o.CoalesceDelay, MaxCoalesceDelay)
	case o.SSEKeepAlive != 0 && (o.SSEKeepAlive < MinSSEKeepAlive || o.SSEKeepAlive > MaxSSEKeepAlive):
		return fmt.Errorf("ws.sse_keep_alive (%v) must be between %v and %v (0: %v)", o.SSEKeepAlive, MinSSEKeepAlive, MaxSSEKeepAlive, DefaultSSEKeepAlive)
	case o.MultipartHeartbeat != 0 && (o.MultipartHeartbeat < MinMultipartHeartbeat || o.MultipartHeartbeat > MaxMultipartHeartbeat):
		return fmt.Errorf("ws.multipart_heartbeat (%v) must be between %v and %v (0: %v)", o.MultipartHeartbeat, MinMultipartHeartbeat, MaxMultipartHeartbeat, DefaultMultipartHeartbeat)
	case o.SSEReservationTimeout != 0 && (o.SSEReservationTimeout < MinSSEReservationTimeout || o.SSEReservationTimeout > MaxSSEReservationTimeout):
		return fmt.Errorf("ws.sse_reservation_timeout (%v) must be between %v and %v (0: %v)", o.SSEReservationTimeout, MinSSEReservationTimeout, MaxSSEReservationTimeout, DefaultSSEReservationTimeout)
	case o.SSEMaxReservations < 0:
		return fmt.Errorf("ws.sse_max_reservations (%d) must not be negative", o.SSEMaxReservations)
	case o.SSEMaxReservationsPerUser < 0:
		return fmt.Errorf("ws.sse_max_reservations_per_user (%d) must not be negative", o.SSEMaxReservationsPerUser)
	case o.SSEMaxReservationsPerTenant < 0:
		return fmt.Errorf("ws.sse_max_reservations_per_tenant (%d) must not be negative", o.SSEMaxReservationsPerTenant)
	case o.NodeID != "" && !validNodeID(o.NodeID):
		return fmt.Errorf("ws.node_id (%q) must be 1 to 32 of [A-Za-z0-9_-]", o.NodeID)
	case o.WriteDelay < 0 || o.WriteDelay > MaxWriteDelay:
		return fmt.Errorf("ws.write_delay (%v) must be between 0 and %v", o.WriteDelay, MaxWriteDelay)
	case o.Compression != "" && o.Compression != CompressionOff && o.Compression != CompressionNoContextTakeover && o.Compression != CompressionContextTakeover:
		return fmt.Errorf("ws.compression (%q) must be %s, %s or %s", o.Compression, CompressionOff, CompressionNoContextTakeover, CompressionContextTakeover)
	case o.CompressionThreshold < 0:
		return fmt.Errorf("ws.compression_threshold (%d) must not be negative (0: %d)", o.CompressionThreshold, DefaultCompressionThreshold)
	case o.CompressionContextConns < 0:
		return fmt.Errorf("ws.compression_context_conns (%d) must not be negative (0: %d)", o.CompressionContextConns, DefaultCompressionContextConns)
	case o.IOUring != "" && o.IOUring != IOUringAuto && o.IOUring != IOUringOff && o.IOUring != IOUringOn:
		return fmt.Errorf("ws.io_uring (%q) must be %s, %s or %s", o.IOUring, IOUringAuto, IOUringOff, IOUringOn)
	case o.IOUring == IOUringOn && IOUringStatus() != nil:
		return fmt.Errorf("ws.io_uring is %s, but io_uring cannot be used here: %v", IOUringOn, IOUringStatus())
	case o.SSECompression != "" && o.SSECompression != SSECompressionOff && o.SSECompression != SSECompressionGzip:
		return fmt.Errorf("ws.sse_compression (%q) must be %s or %s", o.SSECompression, SSECompressionOff, SSECompressionGzip)
	}
	return nil
}

// IOUringMode is Options.IOUring.
type IOUringMode string

const (
	// IOUringAuto uses io_uring where the kernel allows it (IOUringStatus),
	// write(2) elsewhere.
	IOUringAuto IOUringMode = "auto"
	// IOUringOff always uses write(2).
	IOUringOff IOUringMode = "off"
	// IOUringOn is IOUringAuto that Validate refuses where io_uring cannot
	// be used, for deployments that count on it.
	IOUringOn IOUringMode = "on"
)

// IOUringStatus reports nil if write rounds can use io_uring in this
// process, or why they cannot: not Linux, a kernel older than 5.18,
// io_uring disabled (sysctl kernel.io_uring_disabled, a seccomp profile),
// or a kernel whose non-blocking sends wait. It checks once, on first use.
func IOUringStatus() error { return uringStatus() }
