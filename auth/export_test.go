package auth

import (
	"os"
	"testing"
	"time"
)

// setMissInterval sets the least time between kid-miss reloads (negative:
// never) and forgets the last one.
func (j *jwksSource) setMissInterval(d time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.missInterval, j.lastMiss = d, time.Time{}
}

// reloadCount reports how many times the file was parsed.
func (j *jwksSource) reloadCount() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.reloads
}

// lastError returns the error of the last version that failed to load.
func (j *jwksSource) lastError() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.badMsg
}

// bump moves the mtime of path to now+d.
func bump(t testing.TB, path string, d time.Duration) {
	t.Helper()
	mt := time.Now().Add(d)
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}
