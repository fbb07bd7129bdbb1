//go:build !linux

package ws

import (
	"errors"
	"log/slog"
)

// io_uring is Linux's: elsewhere write rounds write with write(2) (or
// through the write goroutine), and Options.IOUring has no effect.

var errNoURing = errors.New("io_uring is Linux only")

func uringStatus() error { return errNoURing }

func flushConnsURing([]*Conn, int64, *flushStats, *slog.Logger) bool { return false }
