//go:build race

package query

// raceEnabled reports that the race detector, which makes allocation counts
// unreliable, is on.
const raceEnabled = true
