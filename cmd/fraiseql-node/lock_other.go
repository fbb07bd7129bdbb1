//go:build !unix

package main

import "os"

// tryLock does not lock where flock(2) is missing: the data directory is
// not protected there.
func tryLock(*os.File) error { return nil }
