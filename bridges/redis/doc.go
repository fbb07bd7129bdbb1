// Package redis ingests events that FraiseQL applications write to Redis
// into the JetStream event stream, so that every edge node can deliver
// them. It knows nothing of GraphQL or WebSockets.
//
// # Sources and guarantees
//
// Pub/sub (at-most-once, as Redis pub/sub is). The bridge PSUBSCRIBEs to
// Config.Patterns (default "fraiseql:*"). A message on channel
// "<prefix>:<tenant>:<topic>" whose body is a JSON object is published to
// "<prefix>.<tenant>.<topic>" without a dedup id. A message whose body is a
// legacy FraiseQL envelope ({"id","event_type","data","channel",
// "timestamp","correlation_id"}, optionally "tenant_id") is unwrapped
// instead: "data" is the event, "channel" the topic, "tenant_id" (or
// Config.Tenant) the tenant and "redis-<id>" the dedup id. The plain
// channels in Config.LegacyChannels (SUBSCRIBE, not PSUBSCRIBE) carry only
// envelopes. Whatever Redis sends while no bridge is subscribed (Redis
// down, or a leader failover in progress) is lost.
//
// Streams (at-least-once, exactly-once into JetStream within its duplicate
// window). The bridge reads the streams in Config.Streams and those that
// match Config.StreamPattern (default "fraiseql:events:*", re-scanned
// every ScanInterval) through a consumer group created at id 0, so entries
// written before the bridge first ran are forwarded too. An entry's
// "data" field holds the event (or an envelope); the topic is the key
// after "<prefix>:events:"; the dedup id is "redis-stream-<key>-<entry id>".
// An entry is XACKed only after JetStream acknowledged it, entries of a
// dead consumer are reclaimed with XAUTOCLAIM after ClaimMinIdle, and
// entries are forwarded in stream order per key, across restarts and
// failovers. Poison entries (not a JSON object, bad tenant or topic, too
// large) are copied to "<key>:dead" with a "reason" field and acknowledged.
//
// # Leadership
//
// Each source runs only on the node that holds its lease (see
// bridges.RunWhileLeader): "redis-pubsub-<hash>" and "redis-streams-<hash>",
// where the hash covers the Redis address and the source's channels or
// keys, so nodes configured alike share one lease.
//
// # Concurrency
//
// A Bridge's methods are safe for concurrent use. Run owns every
// goroutine the bridge starts and waits for them before it returns.
package redis
