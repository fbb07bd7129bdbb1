// Package cluster is the proof that a cluster survives failures: three
// NATS servers (JetStream, routes, an R3 stream) and three nodes run as
// real processes on loopback, built from this checkout, while a publisher
// writes with JetStream acks and resuming graphql-transport-ws clients (and,
// in the node-kill scenario, GraphQL-over-SSE clients resuming with
// Last-Event-ID) record every event. Each scenario injects one failure (a node killed or
// drained, a rolling restart, the stream leader or a follower killed, a
// NATS server restarted, a client that stops reading, a proxy adding
// latency and resetting connections, a resume storm) and then checks every
// client's sequence of ids against the acknowledged publishes: in order,
// no gap, no duplicate. Each scenario prints its recovery times.
//
// The tests have the build tag chaos. `make test-cluster` (part of `make
// test`) runs the short subset with -short; `make chaos` runs every
// scenario at full size. See docs/operations.md.
package cluster
