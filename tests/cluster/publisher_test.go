//go:build chaos

package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher bounds.
const (
	publishAttempt = 2 * time.Second  // one PublishMsg waiting for its ack
	publishGiveUp  = 30 * time.Second // retries of one event before it counts as unacked
	maxEvents      = 1_000_000        // per room, a bound on the loop
	streamName     = "EVENTS"         // the node's default stream
)

// Publish status of an event id in a room.
const (
	statusNone      = iota // never published
	statusAcked            // JetStream acknowledged it: it must be delivered
	statusUncertain        // published, never acknowledged: it may or may not be delivered
)

// room is one room's publish log. Event ids are 1, 2, 3, … in publish
// order; each is published with Nats-Msg-Id <room>-<id> and retried (same
// id, so the stream stores it at most once) until acked or publishGiveUp.
// The next id is published only after the previous one was acked or given
// up, so the stream holds a room's ids in increasing order.
type room struct {
	name string
	text string // the body's text, padding events to a size

	lastAcked atomic.Int64

	mu     sync.Mutex
	status []uint8 // by id; index 0 unused
	ackAt  []int64 // unix nanos of the ack, by id; 0 when not acked
}

// ackedBy returns the status of id and when it was acked.
func (r *room) get(id int64) (uint8, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id <= 0 || id >= int64(len(r.status)) {
		return statusNone, 0
	}
	return r.status[id], r.ackAt[id]
}

func (r *room) set(id int64, st uint8, at int64) {
	r.mu.Lock()
	for int64(len(r.status)) <= id {
		r.status = append(r.status, statusNone)
		r.ackAt = append(r.ackAt, 0)
	}
	r.status[id], r.ackAt[id] = st, at
	r.mu.Unlock()
	if st == statusAcked {
		r.lastAcked.Store(id)
	}
}

// counts returns how many ids were acked and how many stayed unacked.
func (r *room) counts() (acked, uncertain int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.status {
		switch s {
		case statusAcked:
			acked++
		case statusUncertain:
			uncertain++
		}
	}
	return acked, uncertain
}

// publisher publishes to its rooms at a steady rate, one goroutine per
// room, with JetStream acks.
type publisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	rooms   map[string]*room
	retries atomic.Int64 // publish attempts that failed (each retried)

	mu      sync.Mutex
	lastErr string

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startPublisher connects to every NATS server and publishes perRoom
// events per second to each room, bodies padded with textBytes of text.
func startPublisher(w *world, rooms []string, perRoom float64, textBytes int) *publisher {
	w.t.Helper()
	nc, err := nats.Connect(w.natsURLs(),
		nats.Name("fraiseql-chaos-publisher"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.ReconnectJitter(50*time.Millisecond, 50*time.Millisecond),
	)
	if err != nil {
		w.t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{nc: nc, js: js, rooms: map[string]*room{}, cancel: cancel}
	w.t.Cleanup(p.close)
	for _, name := range rooms {
		r := &room{name: name, text: strings.Repeat("x", textBytes)}
		p.rooms[name] = r
		p.wg.Go(func() { p.run(ctx, r, perRoom) }) // owned by p: ends with stop
	}
	return p
}

func (p *publisher) run(ctx context.Context, r *room, perSecond float64) {
	period := time.Duration(float64(time.Second) / perSecond)
	sleepCtx(ctx, rand.N(period)) // rooms publish spread over the period, not in bursts
	tick := time.NewTicker(period)
	defer tick.Stop()
	subject := "fraiseql.public.chat." + r.name
	for id := int64(1); id <= maxEvents; id++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		body := fmt.Appendf(nil, `{"id":"%d","room":%q,"text":%q}`, id, r.name, r.text)
		msgID := r.name + "-" + strconv.FormatInt(id, 10)
		st := uint8(statusUncertain)
		for deadline := time.Now().Add(publishGiveUp); ctx.Err() == nil && time.Now().Before(deadline); {
			actx, cancel := context.WithTimeout(ctx, publishAttempt)
			_, err := p.js.PublishMsg(actx, &nats.Msg{Subject: subject, Data: body}, jetstream.WithMsgID(msgID))
			cancel()
			if err == nil {
				st = statusAcked
				break
			}
			p.retries.Add(1)
			p.mu.Lock()
			p.lastErr = err.Error()
			p.mu.Unlock()
			sleepCtx(ctx, 100*time.Millisecond)
		}
		var at int64
		if st == statusAcked {
			at = time.Now().UnixNano()
		}
		r.set(id, st, at)
		if ctx.Err() != nil {
			return
		}
	}
}

// stop ends publishing and waits for the room goroutines. An event
// interrupted mid-publish counts as unacked.
func (p *publisher) stop() {
	p.cancel()
	p.wg.Wait()
}

func (p *publisher) close() {
	p.stop()
	p.nc.Close()
}

// lastAcked is the highest acked id of room.
func (p *publisher) lastAcked(room string) int64 { return p.rooms[room].lastAcked.Load() }

// streamLeader is the name of the NATS server leading the stream.
func (p *publisher) streamLeader() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := p.js.Stream(ctx, streamName)
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", fmt.Errorf("stream %s has no leader: %w", streamName, errNotYet)
	}
	if n := len(info.Config.Subjects); info.Config.Replicas != 3 || n == 0 {
		return "", fmt.Errorf("stream %s: %d replicas, want 3", streamName, info.Config.Replicas)
	}
	return info.Cluster.Leader, nil
}

// sleepCtx sleeps d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
