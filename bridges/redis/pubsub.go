package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/subscriptions/bridges"
)

const (
	// pubsubPing is how long a quiet pub/sub connection waits before it
	// pings Redis; a second quiet period without the pong ends the session.
	pubsubPing = 15 * time.Second

	// pubsubRetryFor bounds how long one pub/sub message is retried while
	// JetStream fails; after it the message is dropped (publish_failed).
	// Meanwhile Redis buffers later messages, up to its
	// client-output-buffer-limit for pub/sub clients.
	pubsubRetryFor = 30 * time.Second
)

// runPubSub is the pub/sub ingester: it runs while this node holds the
// pub/sub lease and reconnects with backoff until ctx is done.
func (b *Bridge) runPubSub(ctx context.Context) error {
	var bo bridges.Backoff
	for ctx.Err() == nil {
		err := b.pubsubSession(ctx, &bo)
		if ctx.Err() != nil {
			break
		}
		setUp(&b.pubsubStatus, err)
		b.m.Reconnects.WithLabelValues(sourcePubSub).Inc()
		d := bo.Next()
		b.log.Warn("redis pub/sub: disconnected; reconnecting", "source", sourcePubSub, "err", err, "retry_in", d)
		bridges.Sleep(ctx, d)
	}
	return nil
}

// pubsubSession subscribes on a new connection and forwards messages
// until the connection fails or ctx is done.
func (b *Bridge) pubsubSession(ctx context.Context, bo *bridges.Backoff) error {
	rc := b.newClient()
	defer rc.Close()
	ps := rc.PSubscribe(ctx) // no patterns yet: nothing is sent
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { ps.Close() }) // unblocks Receive
	defer stop()

	if err := ps.PSubscribe(ctx, b.cfg.Patterns...); err != nil {
		return fmt.Errorf("psubscribe: %w", err)
	}
	legacy := b.legacyChannels
	if chans := b.cfg.legacyChannelList(); len(chans) > 0 {
		if err := ps.Subscribe(ctx, chans...); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	want := len(b.cfg.Patterns) + len(legacy)
	confirmed := 0
	awaitingPong := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, pubsubPing)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if awaitingPong {
					return fmt.Errorf("no pong within %v", pubsubPing)
				}
				if err := ps.Ping(ctx); err != nil {
					return fmt.Errorf("ping: %w", err)
				}
				awaitingPong = true
				continue
			}
			return err
		}
		awaitingPong = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "psubscribe" {
				if confirmed++; confirmed == want {
					setUp(&b.pubsubStatus, nil)
					bo.Reset()
					b.log.Info("redis pub/sub: subscribed", "source", sourcePubSub)
				}
			}
		case *goredis.Message:
			// A legacy channel that a pattern also matches arrives twice;
			// the plain subscription's copy is the one forwarded.
			src := legacy[m.Channel] // nil unless m came by SUBSCRIBE
			if m.Pattern != "" && src != nil {
				continue
			}
			b.forwardPubSub(ctx, m.Channel, []byte(m.Payload), src)
		}
	}
}

// forwardPubSub publishes one message, retrying JetStream failures for at
// most pubsubRetryFor; a message that can never be published is counted
// and logged. src is the channel's legacy source, or nil.
func (b *Bridge) forwardPubSub(ctx context.Context, channel string, payload []byte, src *legacySource) {
	ev, err := pubsubEvent(&b.cfg, channel, payload, src)
	if err == nil && ev.envelopeShaped {
		b.warnEnvelope(time.Now(), sourcePubSub, "channel", channel)
	}
	if err == nil {
		var bo bridges.Backoff
		bo.Max = 2 * time.Second
		deadline := time.Now().Add(pubsubRetryFor)
		for {
			if err = b.publish(ctx, sourcePubSub, ev); err == nil || reasonOf(err) != "" || ctx.Err() != nil {
				break
			}
			if time.Now().After(deadline) {
				err = &rejectError{reason: reasonPublishFailed, err: err}
				break
			}
			b.log.Warn("redis pub/sub: publish failed; retrying", "source", sourcePubSub, "channel", channel, "err", err)
			bridges.Sleep(ctx, bo.Next())
		}
	}
	if err == nil || ctx.Err() != nil {
		return
	}
	reason := reasonOf(err)
	if reason == "" {
		reason = reasonPublishFailed
	}
	b.m.Rejected.WithLabelValues(sourcePubSub, reason).Inc()
	b.log.Warn("redis pub/sub: message dropped", "source", sourcePubSub, "channel", channel, "reason", reason, "err", err, "bytes", len(payload))
}
