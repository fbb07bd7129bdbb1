package cluster

import (
	"errors"
	"fmt"
)

var (
	// ErrBadTenant means a tenant is not one subject token of [A-Za-z0-9_-], 1 to 64 bytes.
	ErrBadTenant = errors.New("cluster: bad tenant")

	// ErrBadTopic means a topic has an empty token, a wildcard, whitespace, a control character or is too long.
	ErrBadTopic = errors.New("cluster: bad topic")

	// ErrPayloadTooLarge means an event body is larger than Config.MaxMsgSize; nothing was published.
	ErrPayloadTooLarge = errors.New("cluster: payload too large")

	// ErrBadCursor means a cursor string is malformed or was altered.
	ErrBadCursor = errors.New("cluster: bad cursor")

	// ErrCursorExpired means a cursor belongs to another stream or cursor key, or retention removed events after it.
	ErrCursorExpired = errors.New("cluster: cursor expired")

	// ErrCursorFormat means a cursor has an earlier format, no longer accepted; it is also ErrCursorExpired.
	ErrCursorFormat = fmt.Errorf("%w: cursor format changed", ErrCursorExpired)

	// ErrReplayBusy means Config.MaxReplayQueue replays were waiting for a read slot already; retry after ReplayRetryAfter.
	ErrReplayBusy = errors.New("cluster: replay busy")

	// ErrClosed means the Cluster was closed.
	ErrClosed = errors.New("cluster: closed")
)
