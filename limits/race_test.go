//go:build race

package limits

// raceEnabled reports that the race detector, which makes allocation counts
// unreliable, is on.
const raceEnabled = true
