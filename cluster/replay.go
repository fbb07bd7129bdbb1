package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// replayIdle is how long Replay waits for the next message before it
	// asks the server whether any is still pending (one may have been
	// removed by retention while the replay ran).
	replayIdle = 2 * time.Second
	// replayInactive lets the server delete a replay consumer that Replay
	// could not delete itself (the connection dropped).
	replayInactive = 30 * time.Second
)

// replayPrefetchBytes bounds what one replay prefetches from the server,
// counted in events of the largest size.
const replayPrefetchBytes = 4 << 20

// replayPrefetch is how many events one replay prefetches: as many of the
// largest size as fit in replayPrefetchBytes, at least 2 and at most the
// client library's default (500).
func (c *Cluster) replayPrefetch() int {
	return min(max(replayPrefetchBytes/max(c.maxMsgSize, 1), 2), jetstream.DefaultMaxMessages)
}

// Replay calls fn, in stream order, for every event on
// "<prefix>.<tenant>.<topic>" with afterSeq < seq <= last, where last is
// the stream's last sequence when Replay is called, and returns last.
// The caller then takes live events with seq > last (from Consume),
// with neither gap nor duplicate.
//
// It fails with ErrCursorExpired when retention has removed events after
// afterSeq (afterSeq+1 < the stream's first sequence) — unless afterSeq >=
// last, when there is nothing to replay. An error from fn aborts the replay
// and is returned as is; so is ctx's. fn is called from the calling
// goroutine.
func (c *Cluster) Replay(ctx context.Context, tenant, topic string, afterSeq uint64, fn func(*Event) error) (last uint64, err error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	subj, err := c.Subject(tenant, topic)
	if err != nil {
		return 0, err
	}
	info, err := c.streamInfo(ctx)
	if err != nil {
		return 0, fmt.Errorf("replay %s: %w", subj, err)
	}
	last = info.State.LastSeq
	if afterSeq >= last {
		return last, nil
	}
	if afterSeq+1 < info.State.FirstSeq {
		return 0, fmt.Errorf("%w: events after %d were removed (stream starts at %d)", ErrCursorExpired, afterSeq, info.State.FirstSeq)
	}

	cons, err := c.js.OrderedConsumer(ctx, c.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subj},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       afterSeq + 1,
		InactiveThreshold: replayInactive,
		NamePrefix:        fmt.Sprintf("%s_replay_%08x", sanitizeName(c.cfg.Name), rand.Uint32()),
	})
	if err != nil {
		return 0, fmt.Errorf("replay %s: %w", subj, err)
	}
	defer c.deleteConsumer(ctx, cons)

	pending := func() (uint64, error) {
		ci, err := cons.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("replay %s: %w", subj, err)
		}
		return ci.NumPending, nil
	}
	// Nothing on this subject from afterSeq+1 on: Next would wait forever.
	if n, err := pending(); err != nil || n == 0 {
		return last, err
	}
	// The client library prefetches up to 500 messages by default, and a
	// replay goes at its WebSocket client's pace: a client that stalls
	// would keep 500 events (500 MiB of 1 MiB events) per replaying
	// subscription in memory. (PullMaxBytes would bound the bytes, but
	// sizes the prefetch channel for a million messages: 8 MB each.)
	it, err := cons.Messages(jetstream.PullMaxMessages(c.replayPrefetch()))
	if err != nil {
		return 0, fmt.Errorf("replay %s: %w", subj, err)
	}
	defer it.Stop()
	for {
		nctx, cancel := context.WithTimeout(ctx, replayIdle)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				if n, err := pending(); err != nil || n == 0 {
					return last, err
				}
				continue
			}
			return 0, fmt.Errorf("replay %s: %w", subj, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return 0, fmt.Errorf("replay %s: %w", subj, err)
		}
		seq := meta.Sequence.Stream
		if seq > last {
			return last, nil
		}
		if err := fn(c.event(msg, meta, tenant, topic)); err != nil {
			return 0, err
		}
		if seq == last || meta.NumPending == 0 {
			return last, nil
		}
	}
}

// deleteConsumer removes an ephemeral consumer now rather than after its
// inactivity threshold; failures only delay that cleanup.
func (c *Cluster) deleteConsumer(ctx context.Context, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = c.js.DeleteConsumer(dctx, c.cfg.Stream, info.Name)
}
