// Package integration holds the end-to-end tests: a real node, real NATS
// JetStream (in-process servers on random ports), the machine's Redis and
// PostgreSQL, and real WebSocket clients — Go ones and the graphql-ws npm
// client. Build tag: integration. Run with `make test`.
package integration
