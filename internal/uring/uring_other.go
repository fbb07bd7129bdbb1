//go:build !linux

// Package uring is Linux's io_uring for socket sends; elsewhere it is
// unavailable (New and Probe fail).
package uring

import "errors"

var errLinuxOnly = errors.New("io_uring is Linux only")

// Ring is unavailable here.
type Ring struct{}

// New fails: io_uring is Linux only.
func New(int) (*Ring, error) { return nil, errLinuxOnly }

// Close does nothing.
func (*Ring) Close() {}

// FD is -1.
func (*Ring) FD() int { return -1 }

// Size is 0.
func (*Ring) Size() int { return 0 }

// PrepSend panics: there is no ring.
func (*Ring) PrepSend(uintptr, []byte, int) { panic("uring: no io_uring here") }

// Submit does nothing.
func (*Ring) Submit(func(int, int32)) error { return errLinuxOnly }

// Probe fails: io_uring is Linux only.
func Probe() error { return errLinuxOnly }
