package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/subscriptions/bridges"
)

const (
	// lagEvery is how often the leader measures fraiseql_bridge_source_lag.
	lagEvery = 5 * time.Second

	// deadMaxLen caps a dead-letter stream (approximately): poison must
	// not grow Redis without bound.
	deadMaxLen = 10_000
)

// runStreams is the Streams ingester: it runs while this node holds the
// streams lease and reconnects with backoff until ctx is done.
func (b *Bridge) runStreams(ctx context.Context) error {
	var bo bridges.Backoff
	for ctx.Err() == nil {
		err := b.streamsSession(ctx, &bo)
		if ctx.Err() != nil {
			break
		}
		setUp(&b.streamsStatus, err)
		b.m.Reconnects.WithLabelValues(sourceStreams).Inc()
		d := bo.Next()
		b.log.Warn("redis streams: error; reconnecting", "source", sourceStreams, "err", err, "retry_in", d)
		bridges.Sleep(ctx, d)
	}
	return nil
}

// keyState is what the reader knows about one stream key.
type keyState struct {
	// recovering: pending entries may precede new ones, so the key is not
	// read with ">" until they are forwarded (per-key order).
	recovering  bool
	nextRecover time.Time
}

// streamReader is one session's state: a Redis client and the keys.
type streamReader struct {
	b        *Bridge
	rc       *goredis.Client
	keys     map[string]*keyState
	lastScan time.Time
	lastLag  time.Time
	// needScan forces a SCAN before the next read (a key vanished).
	needScan bool
}

// streamsSession forwards entries on a new connection until an error or
// until ctx is done. Every key starts out recovering, so entries this
// consumer read but did not acknowledge before (Redis restart, JetStream
// error) are forwarded again, in order, before anything new.
func (b *Bridge) streamsSession(ctx context.Context, bo *bridges.Backoff) error {
	rc := b.newClient()
	defer rc.Close()
	stop := context.AfterFunc(ctx, func() { rc.Close() }) // unblocks XREADGROUP BLOCK
	defer stop()
	if err := rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	setUp(&b.streamsStatus, nil)
	bo.Reset()
	s := &streamReader{b: b, rc: rc, keys: make(map[string]*keyState), needScan: true}
	for ctx.Err() == nil {
		if err := s.step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}

// step does one round: rescan if due, recover keys that need it, then one
// XREADGROUP over the keys that are ready.
func (s *streamReader) step(ctx context.Context) error {
	cfg := &s.b.cfg
	now := time.Now()
	if s.needScan || now.Sub(s.lastScan) >= cfg.ScanInterval {
		if err := s.discover(ctx); err != nil {
			return err
		}
		s.lastScan, s.needScan = now, false
	}
	var ready []string
	for key, ks := range s.keys {
		if ks.recovering && !now.Before(ks.nextRecover) {
			if err := s.recover(ctx, key, ks); err != nil {
				return s.keyErr(key, err)
			}
		}
		if !ks.recovering {
			ready = append(ready, key)
		}
	}
	if now.Sub(s.lastLag) >= lagEvery {
		s.measureLag(ctx)
		s.lastLag = now
	}
	if len(ready) == 0 {
		// Nothing readable: no keys yet, or all wait for a dead consumer's
		// entries to become claimable.
		bridges.Sleep(ctx, min(cfg.BlockTimeout, time.Second))
		return nil
	}
	slices.Sort(ready)
	args := make([]string, 0, 2*len(ready))
	args = append(args, ready...)
	for range ready {
		args = append(args, ">")
	}
	res, err := s.rc.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: cfg.Group, Consumer: cfg.Consumer, Streams: args,
		Count: int64(cfg.BatchSize), Block: cfg.BlockTimeout,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil // BLOCK timed out
	}
	if err != nil {
		return s.keyErr("", fmt.Errorf("xreadgroup: %w", err))
	}
	for _, st := range res {
		if err := s.forward(ctx, st.Stream, st.Messages); err != nil {
			return err
		}
	}
	return nil
}

// keyErr turns a NOGROUP error (a key or its group was deleted) into a
// rescan instead of a reconnect; other errors end the session.
func (s *streamReader) keyErr(key string, err error) error {
	if strings.Contains(err.Error(), "NOGROUP") {
		s.b.log.Info("redis streams: stream or group vanished; rescanning", "source", sourceStreams, "key", key, "err", err)
		s.keys = make(map[string]*keyState)
		s.needScan = true
		return nil
	}
	return err
}

// discover lists the keys to read (Config.Streams plus SCAN matches of
// StreamPattern, never a dead-letter stream) and creates the group on new
// ones, at id 0 so that entries written before the first start are read.
func (s *streamReader) discover(ctx context.Context) error {
	cfg := &s.b.cfg
	found := make(map[string]bool) // key -> true; Config.Streams are kept even when SCAN misses them
	for _, k := range cfg.Streams {
		found[k] = true
	}
	if cfg.hasPattern() {
		var cursor uint64
		for {
			keys, next, err := s.rc.ScanType(ctx, cursor, cfg.StreamPattern, 1000, "stream").Result()
			if err != nil {
				return fmt.Errorf("scan %s: %w", cfg.StreamPattern, err)
			}
			for _, k := range keys {
				if !strings.HasSuffix(k, deadSuffix) {
					found[k] = true
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	for k := range s.keys {
		if _, ok := found[k]; !ok {
			delete(s.keys, k)
		}
	}
	for k := range found {
		if _, ok := s.keys[k]; ok {
			continue
		}
		err := s.rc.XGroupCreateMkStream(ctx, k, cfg.Group, "0").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("xgroup create %s %s: %w", k, cfg.Group, err)
		}
		if err == nil {
			s.b.log.Info("redis streams: created consumer group", "source", sourceStreams, "key", k, "group", cfg.Group)
		}
		s.keys[k] = &keyState{recovering: true}
	}
	return nil
}

// recover claims the entries that other consumers left pending for at
// least ClaimMinIdle, then forwards every entry pending with this
// consumer in id order. While other consumers still hold entries that
// are not yet claimable, the key stays recovering (and unread), so that
// its entries reach JetStream in order.
func (s *streamReader) recover(ctx context.Context, key string, ks *keyState) error {
	cfg := &s.b.cfg
	start := "0-0"
	claimed := 0
	for {
		ids, next, err := s.rc.XAutoClaimJustID(ctx, &goredis.XAutoClaimArgs{
			Stream: key, Group: cfg.Group, Consumer: cfg.Consumer,
			MinIdle: cfg.ClaimMinIdle, Start: start, Count: int64(cfg.BatchSize),
		}).Result()
		if err != nil {
			return fmt.Errorf("xautoclaim %s: %w", key, err)
		}
		claimed += len(ids)
		if next == "0-0" || next == "" {
			break
		}
		start = next
	}
	if claimed > 0 {
		s.b.log.Info("redis streams: reclaimed pending entries", "source", sourceStreams, "key", key, "entries", claimed)
	}
	after := "0"
	for {
		res, err := s.rc.XReadGroup(ctx, &goredis.XReadGroupArgs{
			Group: cfg.Group, Consumer: cfg.Consumer, Streams: []string{key, after},
			Count: int64(cfg.BatchSize), Block: -1,
		}).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return fmt.Errorf("xreadgroup %s (pending): %w", key, err)
		}
		if len(res) == 0 || len(res[0].Messages) == 0 {
			break
		}
		msgs := res[0].Messages
		if err := s.forward(ctx, key, msgs); err != nil {
			return err
		}
		after = msgs[len(msgs)-1].ID
	}
	p, err := s.rc.XPending(ctx, key, cfg.Group).Result()
	if err != nil {
		return fmt.Errorf("xpending %s: %w", key, err)
	}
	others := p.Count - p.Consumers[cfg.Consumer]
	if others > 0 {
		ks.nextRecover = time.Now().Add(min(max(cfg.ClaimMinIdle/10, 100*time.Millisecond), time.Second))
		return nil
	}
	ks.recovering = false
	s.dropIdleConsumers(ctx, key)
	return nil
}

// dropIdleConsumers deletes other consumers of the group that hold no
// entries and were idle past ClaimMinIdle (nodes that are gone), so the
// group does not collect one consumer per restart. Best effort.
func (s *streamReader) dropIdleConsumers(ctx context.Context, key string) {
	cfg := &s.b.cfg
	cs, err := s.rc.XInfoConsumers(ctx, key, cfg.Group).Result()
	if err != nil {
		return
	}
	for _, c := range cs {
		if c.Name != cfg.Consumer && c.Pending == 0 && c.Idle > max(cfg.ClaimMinIdle, time.Minute) {
			s.rc.XGroupDelConsumer(ctx, key, cfg.Group, c.Name)
		}
	}
}

// forward publishes msgs (one key's entries, in id order) and then
// acknowledges them. A transient JetStream error is retried until it
// succeeds or ctx is done, without skipping ahead: the key's order is
// kept, and the unacknowledged entries are forwarded again later (the
// dedup ids make that harmless). Poison entries go to the dead-letter
// stream and are acknowledged.
func (s *streamReader) forward(ctx context.Context, key string, msgs []goredis.XMessage) error {
	cfg := &s.b.cfg
	src := streamSource(s.b.legacyStreams, key)
	acks := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if m.Values == nil { // deleted (XDEL) while pending
			acks = append(acks, m.ID)
			continue
		}
		ev, err := streamEvent(cfg, key, m.ID, m.Values, src)
		if err == nil && ev.envelopeShaped {
			s.b.warnEnvelope(time.Now(), sourceStreams, "key", key)
		}
		if err == nil {
			err = s.publish(ctx, key, ev)
		}
		if err != nil {
			reason := reasonOf(err)
			if reason == "" { // ctx done
				return err
			}
			if err := s.deadLetter(ctx, key, m, reason, err); err != nil {
				return err
			}
		}
		acks = append(acks, m.ID)
	}
	if len(acks) == 0 {
		return nil
	}
	if err := s.rc.XAck(ctx, key, cfg.Group, acks...).Err(); err != nil {
		return fmt.Errorf("xack %s: %w", key, err)
	}
	return nil
}

// publish stores ev, retrying transient errors with backoff until ctx is
// done. It returns nil, an error with a reject reason, or ctx's error.
func (s *streamReader) publish(ctx context.Context, key string, ev event) error {
	var bo bridges.Backoff
	bo.Max = 5 * time.Second
	for {
		err := s.b.publish(ctx, sourceStreams, ev)
		if err == nil || reasonOf(err) != "" {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := bo.Next()
		s.b.log.Warn("redis streams: publish failed; retrying", "source", sourceStreams, "key", key, "msg_id", ev.msgID, "err", err, "retry_in", d)
		if !bridges.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// deadLetter copies a poison entry to "<key>:dead" with its fields plus
// reason, error, source_key and source_id, and counts and logs it.
func (s *streamReader) deadLetter(ctx context.Context, key string, m goredis.XMessage, reason string, cause error) error {
	values := make([]any, 0, 2*len(m.Values)+8)
	for k, v := range m.Values {
		switch k {
		case "reason", "error", "source_key", "source_id":
			continue
		}
		values = append(values, k, v)
	}
	values = append(values, "reason", reason, "error", cause.Error(), "source_key", key, "source_id", m.ID)
	dead := key + deadSuffix
	if err := s.rc.XAdd(ctx, &goredis.XAddArgs{Stream: dead, MaxLen: deadMaxLen, Approx: true, Values: values}).Err(); err != nil {
		return fmt.Errorf("xadd %s: %w", dead, err)
	}
	s.b.m.Rejected.WithLabelValues(sourceStreams, reason).Inc()
	s.b.log.Warn("redis streams: poison entry dead-lettered", "source", sourceStreams, "key", key, "id", m.ID, "reason", reason, "err", cause, "dead_letter", dead)
	return nil
}

// measureLag sets fraiseql_bridge_source_lag to the entries the
// group has not acknowledged yet over all keys: pending plus not yet
// delivered (XINFO GROUPS lag, Redis 7+). Best effort.
func (s *streamReader) measureLag(ctx context.Context) {
	if len(s.keys) == 0 {
		s.b.m.Lag.WithLabelValues(sourceStreams).Set(0)
		return
	}
	cmds := make([]*goredis.XInfoGroupsCmd, 0, len(s.keys))
	_, _ = s.rc.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for k := range s.keys {
			cmds = append(cmds, p.XInfoGroups(ctx, k))
		}
		return nil
	})
	var lag int64
	for _, c := range cmds {
		gs, err := c.Result()
		if err != nil {
			continue
		}
		for _, g := range gs {
			if g.Name == s.b.cfg.Group {
				lag += g.Pending + max(g.Lag, 0)
			}
		}
	}
	s.b.m.Lag.WithLabelValues(sourceStreams).Set(float64(lag))
}
