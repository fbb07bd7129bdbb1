// Package limits admits or refuses work: token buckets for rates, counting
// caps for concurrency, and the size, depth and complexity limits a client's
// GraphQL document must fit. It is a leaf package (standard library only);
// node, ws and query consult it and turn its refusals into wire messages.
//
// # What each limiter protects
//
//   - [Bucket]: one token bucket, on the per-event path (100 events/s per
//     subscription by default). Allow never allocates.
//   - [Keyed]: one Bucket per key (user, IP, tenant) with bounded memory, on
//     the per-subscribe and per-connect paths.
//   - [Cap] and [KeyedCap]: concurrency caps (connections, connections per
//     user, subscriptions per connection). [Ticket] makes a release
//     idempotent, so `defer t.Release()` is always safe.
//   - [Config]: every limit's default, its zero and negative meanings, where
//     it is enforced and what the client sees. Refusals are [*Error] values
//     carrying the GraphQL extensions.code.
//
// # Concurrency contract
//
// Every method of [Bucket], [Keyed], [Cap], [KeyedCap] and [Ticket] is safe
// for concurrent use, after initialisation. Init methods and exported
// configuration fields (Keyed.Rate, KeyedCap.Max, …) must be set before the
// value is shared and not changed afterwards. No method blocks: a refusal is
// returned at once, with a retry-after where one is meaningful. [Config] and
// [*Error] are plain values.
//
// Time is injected: each exported method reads time.Now and calls an
// unexported core that takes the instant as an argument (allowAt, takeAt),
// so tests drive a fake clock instead of sleeping. State is kept against the
// monotonic clock, so wall-clock steps neither refill nor drain a bucket.
//
// # Never copy a limiter
//
// The old FraiseQL rate limiter never limited: its token-bucket struct was
// passed by value, so every check ran against a fresh copy holding a full
// bucket and the consumed tokens were thrown away with the copy. Here every
// limiter holds its state behind a noCopy guard (and sync or atomic fields),
// so `go vet` (the copylocks check) reports any copy: pass *Bucket, *Keyed,
// *Cap and *KeyedCap, and embed a Bucket or Cap in a struct that is itself
// only used by pointer. TestLimiterCopyIsVetError keeps this guard honest.
package limits
