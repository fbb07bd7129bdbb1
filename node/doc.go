// Package node is the FraiseQL edge server: it serves GraphQL subscriptions
// over WebSocket from the events of a JetStream stream.
//
// The data path reads top to bottom:
//
//	ws reads `subscribe` → session.Subscribe → query.Compiler.Compile → Plan
//	  → index.add (identical plans share one group) → [replay from cursor]
//	cluster consumer → Node.dispatch(event): dropped unless a local
//	  subscription wants its subject → the subject's mailbox (scheduler)
//	a routing worker (GOMAXPROCS of them) takes a turn of one subject's
//	  events → router.route: index lookup by subject (O(1))
//	  → per plan group: filter + project + encode once → the same []byte
//	  → every subscription's bounded queue, through the worker's
//	    ws.Fanout (ws.Subscription.Push)
//	worker idle (Fanout.Idle) or between turns (Fanout.Busy): the
//	  Fanout's write round writes each connection once (one non-blocking
//	  write(2)); when, and which connections it holds for coalescing, is
//	  ws's to decide (ws.Options.CoalesceDelay, WriteDelay)
//
// Concurrency: the consumer's goroutine only dispatches. Each subject is
// routed by one worker at a time, in stream order, in turns of at most 64
// events or 1 ms, so subjects route in parallel and an expensive subject
// waits its turn rather than delaying others (see scheduler). Sessions
// call add/remove from their connections' read goroutines. The index is
// guarded by one RWMutex (routing holds it for reading); each
// subscription's own mutex orders live and replayed events. Lock order:
// index.mu → subscription.mu → ws (frameQueue.mu, through Push);
// scheduler.mu is a leaf (never held while taking another). A Fanout's
// write round runs after routeEvent released index.mu; ws's own order is
// in its package doc. Every goroutine the node starts (HTTP servers, routing
// workers, replays) is owned by the node or a session and waited for in
// Shutdown. The edge listener (listener.go) closes connections still
// pending at upgrade_timeout from a time.AfterFunc timer each, stopped when
// the connection upgrades or closes.
//
// Slow consumers: fan-out never blocks. A subscription whose connection
// queue is full makes ws close that connection with 1013 (try again later);
// the client resumes from its last cursor, on any node.
package node
