// Package uringtest is the tests' one check that io_uring can be used: a
// test that needs it fails where it cannot, saying how to enable it,
// unless NoURingEnv is set, which makes it skip instead.
package uringtest

import (
	"os"
	"runtime"
	"testing"
)

// NoURingEnv, set, lets tests that need io_uring skip on a Linux machine
// without it; without it they fail.
const NoURingEnv = "FRAISEQL_TEST_NO_IO_URING"

// Require fails t, or skips it where io_uring cannot exist (not Linux) or
// is allowed to be missing (NoURingEnv), unless status — the caller's
// check, uring.Probe or ws.IOUringStatus — is nil.
func Require(t testing.TB, status error) {
	t.Helper()
	switch {
	case status == nil:
	case runtime.GOOS != "linux":
		t.Skipf("no io_uring on %s: %v", runtime.GOOS, status)
	case os.Getenv(NoURingEnv) != "":
		t.Skipf("io_uring unavailable (%v) and %s is set", status, NoURingEnv)
	default:
		t.Fatalf("io_uring unavailable: %v; enable it (sysctl kernel.io_uring_disabled=0, a seccomp profile that allows io_uring_setup and io_uring_enter, Linux >= 5.18) or set %s=1 to test without it", status, NoURingEnv)
	}
}
