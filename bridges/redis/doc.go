// Package redis ingests events that FraiseQL applications write to Redis
// into the JetStream event stream, so that every edge node can deliver
// them. It knows nothing of GraphQL or WebSockets.
//
// # Sources and guarantees
//
// Pub/sub (at-most-once, as Redis pub/sub is). The bridge PSUBSCRIBEs to
// Config.Patterns (default "fraiseql:*"). A message on channel
// "<prefix>:<tenant>:<topic>" whose body is a JSON object is published to
// "<prefix>.<tenant>.<topic>" without a dedup id. Whatever Redis sends
// while no bridge is subscribed (Redis down, or a leader failover in
// progress) is lost.
//
// Streams (at-least-once, exactly-once into JetStream within its duplicate
// window). The bridge reads the streams in Config.Streams and those that
// match Config.StreamPattern (default "fraiseql:events:*", re-scanned
// every ScanInterval) through a consumer group created at id 0, so entries
// written before the bridge first ran are forwarded too. An entry's
// "data" field holds the event; the topic is the key after
// "<prefix>:events:", the tenant Config.Tenant; the dedup id is
// "redis-stream-<key>-<entry id>". An entry is XACKed only after
// JetStream acknowledged it, entries of a dead consumer are reclaimed with
// XAUTOCLAIM after ClaimMinIdle, and entries are forwarded in stream order
// per key, across restarts and failovers. Poison entries (not a JSON
// object, bad tenant or topic, refused by a legacy source, too large) are
// copied to "<key>:dead" with a "reason" field and acknowledged.
//
// # Trust
//
// The channel or key decides tenant and topic: a body is the event, as it
// is, whatever its shape, and never routes itself. Only the legacy
// sources the operator declares (Config.LegacyChannels, Config.Legacy)
// unwrap FraiseQL envelopes ({"id","event_type","data","channel",
// "timestamp","correlation_id"}, optionally "tenant_id"): on a legacy
// channel "channel" is the topic and "tenant_id" the tenant; on a legacy
// stream key "tenant_id" is the tenant and the key still the topic. Even
// there the tenant and topic must be valid (cluster.ValidateTenant,
// cluster.ValidateTopic) and allowed by the source (LegacySource.Tenant,
// Tenants, Topics); by default a legacy source may name only its own
// tenant. An envelope's id is a dedup id only within its tenant and topic.
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
