// Package cluster owns FraiseQL's use of NATS JetStream: the connection
// (to external servers, or to a server it embeds), the event stream, this
// node's consumer, subject naming, cursors, replay for resuming clients,
// and a leader lease for bridges. It knows nothing of GraphQL.
//
// # Subjects
//
// Every event lives on "<prefix>.<tenant>.<topic>" (prefix "fraiseql" by
// default) in one stream (EVENTS) that captures "<prefix>.>". A tenant is
// one token of [A-Za-z0-9_-] (ValidateTenant); a topic is one or more
// '.'-separated literal tokens (ValidateTopic). Neither can hold a
// wildcard, whitespace or a control character, so no value can widen a
// subject: Subject is the only way this package builds one.
//
// # Cursors
//
// A cursor is an opaque, URL-safe string naming a stream sequence for
// one tenant. The sequence is encrypted under the deployment's cursor key
// (shared by every node through a KV bucket, or a key file) together with
// a MAC of the stream's identity and the tenant, so a cursor reveals no
// traffic volume, cannot be forged or altered (ErrBadCursor) and is
// useless to another tenant; a cursor from a deleted and recreated stream
// is refused (ErrCursorExpired) instead of pointing at someone else's
// events. See cursor.go for the layout. Replay
// resumes after a cursor's sequence and returns the sequence from which
// live events (Consume) take over, with no gap and no duplicate; it fails
// with ErrCursorExpired when retention removed events after the cursor,
// where ReplayOrGap reports the range removed and goes on from the first
// event stored.
//
// # Concurrency
//
// All Cluster methods are safe for concurrent use. Consume calls its
// callback from one goroutine, sequentially, in stream order; Replay and
// ReplayOrGap call theirs from the caller's goroutine. Every goroutine this package
// starts is owned: Consumer.Stop, Lease.Release and Cluster.Close stop
// and wait for theirs, and Close stops everything still running.
package cluster
