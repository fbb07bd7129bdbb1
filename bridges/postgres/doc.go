// Package postgres is the PostgreSQL bridge: it forwards events written in
// PostgreSQL into the JetStream event stream through cluster.Cluster.
//
// Three sources, each ingested by at most one node of the cluster at a time
// (a lease per source, see bridges.RunWhileLeader):
//
//   - the outbox (<schema>.outbox, written by <schema>.publish): rows are
//     forwarded in id order with the dedup id "pg-<id>" and marked
//     forwarded_at only after JetStream acknowledged them, so an outage of
//     PostgreSQL, NATS or the bridge itself loses nothing and the stream
//     stores each row once. Rows that can never be published are moved to
//     <schema>.dead_letter with a reason and never block the rows behind.
//   - legacy NOTIFY channels (FraiseQL's "fraiseql_<channel>" envelopes):
//     fire-and-forget, as LISTEN/NOTIFY is; a notification sent while no
//     bridge listens is lost. NOTIFY needs no privilege, so an envelope
//     may name only the tenants and topics its channel's source allows
//     (Config.NotifyChannels: Config.Tenant only; Config.Legacy: see
//     LegacySource), and its id deduplicates only within its tenant and
//     topic ("pgn-<hash>-<id>").
//   - FraiseQL's tb_entity_change_log table, tailed by primary key with a
//     checkpoint in <schema>.checkpoint and the dedup id "pgcl-<pk>".
//
// A Bridge's methods are safe for concurrent use; Run is called once.
package postgres
