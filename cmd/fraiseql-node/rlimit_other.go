//go:build !unix

package main

import "errors"

func getNOFILE() (cur, hard uint64, err error) {
	return 0, 0, errors.New("not supported on this system")
}

func setNOFILE(cur, hard uint64) error { return errors.New("not supported on this system") }
