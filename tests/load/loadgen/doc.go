//go:build linux

// Package loadgen drives a FraiseQL Subscriptions node with many WebSocket
// clients and a paced JetStream publisher, and measures what it delivers:
// connect and subscribe times, delivered versus expected events (loss,
// duplicates, reorders, checked per subscription against per-room sequence
// numbers), end-to-end latency, and the server's CPU and memory.
//
// It runs on Linux only (it reads the node's CPU and memory from /proc and
// ties spawned children to its life with Pdeathsig), as do the commands
// built on it. It only ever talks to loopback addresses. Every loop is bounded by a
// count or a deadline, so a run always ends by itself.
//
// The command is tests/load/cmd/fraiseql-loadgen; docs/load-tool.md
// explains the measurements and the scenarios.
package loadgen
