package redis

import "github.com/fraiseql/subscriptions/bridges"

// Label values of {source}.
const (
	sourcePubSub  = "redis-pubsub"
	sourceStreams = "redis-streams"
)

// newMetrics returns the bridge's collectors: the fraiseql_bridge_*
// families both bridges share, with bridge="redis".
func newMetrics() *bridges.Metrics {
	return bridges.NewMetrics("redis", []string{sourcePubSub, sourceStreams}, rejectReasons, []string{sourceStreams})
}
