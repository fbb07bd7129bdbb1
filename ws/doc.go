// Package ws serves GraphQL subscriptions over WebSocket. It speaks two
// subprotocols:
//
//   - graphql-transport-ws, the graphql-ws library's protocol (preferred),
//     specified in https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md
//     and implemented in transport_ws.go;
//   - graphql-ws, the legacy protocol of Apollo's subscriptions-transport-ws,
//     specified in https://github.com/apollographql/subscriptions-transport-ws/blob/master/PROTOCOL.md
//     and implemented in legacy_ws.go.
//
// On the same endpoint it serves subscriptions over streamed HTTP/1.1
// responses: GraphQL over Server-Sent Events, the graphql-sse library's
// protocol (https://github.com/enisdenjo/graphql-sse/blob/master/PROTOCOL.md),
// in distinct connections mode (sse.go) and single connection mode
// (sse_single.go), where a stream's subscriptions are started and stopped
// by other HTTP requests, possibly received by another node
// (StreamHandler.Forward, Server.StreamCall); and multipart HTTP
// subscriptions as Apollo Router and Apollo Client speak them
// (multipart.go). Each such request is a Conn like a WebSocket
// connection, with the same Session, queue and budgets.
//
// The package owns framing, the connection handshake (connection_init
// within Options.InitTimeout), keep-alives, close codes and the write
// engine: every connection's bounded queue, the write rounds of a fan-out,
// coalescing, write scheduling and the byte budgets. It knows nothing of
// NATS or of GraphQL schemas: a Handler (the node) opens a Session per
// connection, and the Session decides what a subscription means and feeds
// results to it with Subscription.Next, or, for a deliverer that sends
// each event to many subscriptions, through a Fanout (Subscription.Push).
//
// # Subprotocol negotiation
//
// A client offering graphql-transport-ws gets it; else one offering
// graphql-ws gets the legacy protocol; a client offering nothing gets
// graphql-transport-ws. A client offering only other subprotocols is
// refused with HTTP 400 before any WebSocket state exists. Handler.Open
// runs before the upgrade, so it can refuse with an HTTP status (*HTTPError).
//
// # Concurrency contract
//
// Each connection has one goroutine for its whole life, and a write
// goroutine only while there is something for it to write:
//
//   - the read goroutine (started by ServeHTTP, owned by the Server) reads client
//     messages and calls the Session: Init, Subscribe, Pong, Unsubscribe for
//     client-initiated ends (complete, legacy stop), and at the end every
//     remaining Unsubscribe, then Close, once the last write goroutine
//     (the one that closes the socket) is done;
//   - a write goroutine starts when a frame is queued with Next (or a
//     control frame, a keep-alive, a Fanout write that the socket did not
//     take whole, the close) and ends when nothing is left; at most one
//     runs at a time. It writes queued frames and keep-alives, and calls
//     Unsubscribe for subscriptions the server ended
//     (Subscription.Complete and Error), just before writing their end
//     frame.
//
// Session calls of one connection never overlap. Close comes last, once,
// after every Unsubscribe. Conn and Subscription methods are safe for
// concurrent use from any goroutine, and none of them blocks: in
// particular Subscription.Next and Push may be called from the node's
// fan-out goroutines while Session methods run. A Fanout is used by one
// goroutine at a time (one per routing worker).
//
// # Write path and the slow-consumer policy
//
// Every frame goes through one bounded queue per connection, bounded in
// frames (Options.WriteQueue) and in bytes (Options.MaxQueuedBytes, the
// payloads it holds), and the bytes of all queues together are bounded by
// Options.NodeQueuedBytes (counted at the end of each write round, so
// only what sockets did not take at once counts). Next and Push never
// block and never copy:
// they queue the shared, already-encoded payload; the subscription's
// precomputed prefix, the payload and "}" are framed as one WebSocket
// message into a pooled buffer (no allocation per frame), several queued
// frames to a write(2). A deliverer that sends each event to many
// connections pushes it to all of them through its Fanout, whose write
// round then writes each connection once, with one non-blocking write(2)
// on the caller's goroutine, and leaves to a write goroutine only what the
// socket did not take (finishing a half-written frame before anything
// else). With Options.CoalesceDelay a connection written less than the
// delay ago is held until the delay has passed, so that a busy
// connection gets several frames per write(2) (see Fanout).
//
// Compression (compress.go, gzip.go) keeps this: with permessage-deflate
// without context takeover a Fanout compresses an event's payload once
// and every connection writes the same compressed bytes behind its
// prefix; with context takeover each connection compresses its own
// messages as they are framed; an SSE stream's gzip body is compressed
// per write, as it goes to the socket. No mode allocates per subscriber.
//
// When the queue is full (frames or bytes), when its backlog grows while
// the node-wide sum is over its budget, or when one write takes longer
// than Options.WriteTimeout, the client is a slow consumer: its
// connection is closed with 1013 "slow consumer" (if the socket is stuck,
// it is dropped outright), its queued frames are released at once, and
// Server.SlowConsumerCloses counts it by cause. Replay (NextWait) waits
// for space instead, within the same budgets. Nothing is dropped silently
// and no other connection waits.
// The client reconnects and resumes each subscription from the cursor of
// the last result it received (DESIGN.md: Resume).
//
// # Close codes
//
// 4400 bad message, 4401 subscribe before connection_ack, 4403 Init
// refused, 4408 init timeout, 4409 duplicate subscription id, 4429 second
// connection_init, 4500 internal error, 1001 server shutdown, 1007 text
// message that is not valid UTF-8 (both subprotocols), 1009 message
// larger than Options.ReadLimit (inflated, for a compressed one), 1013
// slow consumer. Close reasons are
// fixed public text; causes are logged, never sent.
package ws
