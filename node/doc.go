// Package node is the FraiseQL edge server: it serves GraphQL subscriptions
// over WebSocket from the events of a JetStream stream.
//
// The data path reads top to bottom:
//
//	ws reads `subscribe` → session.Subscribe → query.Compiler.Compile → Plan
//	  → index.add (identical plans share one group) → [replay from cursor]
//	cluster consumer → Node.route(event) → index lookup by subject (O(1))
//	  → per plan group: filter + project + encode once → the same []byte
//	  → every subscription's bounded queue (ws.Subscription.Push)
//	consumer idle (every event received so far routed), or 64 events
//	  → Node.flush: each connection queued to since the last round is
//	    written once (ws.Conn.Flush: one non-blocking write(2)), split over
//	    up to GOMAXPROCS goroutines; Config.WriteDelay spaces rounds out
//
// Concurrency: route and flush run on the single goroutine of the node's
// JetStream consumer (flush also on the goroutines it starts and waits
// for); sessions call add/remove from their connections' read
// goroutines. The index is guarded by one RWMutex (route holds it for
// reading); each subscription's own mutex orders live and replayed events.
// Lock order: index.mu → subscription.mu. Every goroutine the node starts
// (HTTP server, replays) is owned by the node or a session and waited for
// in Shutdown. The edge listener (listener.go) closes connections still
// pending at upgrade_timeout from a time.AfterFunc timer each, stopped when
// the connection upgrades or closes.
//
// Slow consumers: fan-out never blocks. A subscription whose connection
// queue is full makes ws close that connection with 1013 (try again later);
// the client resumes from its last cursor, on any node.
package node
