//go:build race

package node

// raceEnabled reports that the race detector is on: it makes allocation
// counts unreliable (goroutines started by a sharded flush can allocate a
// new g while the previous round's are still exiting).
const raceEnabled = true
