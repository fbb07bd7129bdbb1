// Package copycheck copies limiters by value on purpose: `go vet` must
// report every function here (see TestLimiterCopyIsVetError).
package copycheck

import "github.com/fraiseql/subscriptions/limits"

// The old rate limiter's bug: the bucket is passed by value, so every check
// sees the full bucket it was copied from.
func allowByValue(b limits.Bucket) bool { return b.Allow() }

func capByValue(c limits.Cap) bool { return c.Acquire() }

func keyedByValue(k limits.Keyed[string]) bool {
	ok, _ := k.Allow("k")
	return ok
}

var _, _, _ = allowByValue, capByValue, keyedByValue
