package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher publishes numbered events round-robin over the rooms, through
// the real path: JetStream publish to <prefix>.<tenant>.chat.<room>, the
// subject the node's consumer reads. Publishes are asynchronous with at
// most MaxInflight unacknowledged. It is driven by one goroutine.
type publisher struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	subjects []string
	rooms    []string
	roomOf   map[string]int // subject → room
	seq      []uint64       // last sequence published, per room
	next     int
	pad      string
	phases   *phases
	cur      *phase // the phase being published; set and read by the driver only
	stallErr uint64
}

func newPublisher(ctx context.Context, natsURL, prefix, tenant string, rooms []string, payload, maxInflight int, ps *phases) (*publisher, error) {
	nc, err := nats.Connect(natsURL,
		nats.Name("fraiseql-loadgen"),
		nats.Timeout(5*time.Second),
		nats.MaxReconnects(10),
	)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", natsURL, err)
	}
	p := &publisher{
		nc:     nc,
		rooms:  rooms,
		roomOf: make(map[string]int, len(rooms)),
		seq:    make([]uint64, len(rooms)),
		phases: ps,
	}
	p.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(maxInflight),
		jetstream.WithPublishAsyncErrHandler(p.asyncErr),
	)
	if err != nil {
		nc.Close()
		return nil, err
	}
	for i, r := range rooms {
		s := prefix + "." + tenant + ".chat." + r
		p.subjects = append(p.subjects, s)
		p.roomOf[s] = i
	}
	// The body is padded to payload bytes, give or take the digits of the
	// sequence (measured at six).
	base := len(p.body(nil, 0, 100_000, time.Now().UnixNano(), ""))
	p.pad = strings.Repeat("x", max(0, payload-base))
	// Check the stream takes our subjects before anything is measured.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.js.StreamNameBySubject(cctx, p.subjects[0]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("no JetStream stream takes %s (is the node up on this NATS?): %w", p.subjects[0], err)
	}
	return p, nil
}

// body is {"id":"<seq>-<ts>","room":"<room>","text":"<pad>","ts":<ts>,"seq":<seq>}.
// The demo schema's Message has no timestamp or sequence field, so the id
// carries both to the subscriber; ts and seq are repeated for other tools.
func (p *publisher) body(dst []byte, room int, seq uint64, ts int64, pad string) []byte {
	name := ""
	if room < len(p.rooms) {
		name = p.rooms[room]
	}
	dst = append(dst, `{"id":"`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `","room":"`...)
	dst = append(dst, name...)
	dst = append(dst, `","text":"`...)
	dst = append(dst, pad...)
	dst = append(dst, `","ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, '}')
}

// bodySize is the size of one event body.
func (p *publisher) bodySize() int {
	return len(p.body(nil, 0, 100_000, time.Now().UnixNano(), p.pad))
}

// begin makes ph the phase new events belong to.
func (p *publisher) begin(ph *phase) {
	p.phases.add(ph)
	ph.began = time.Now()
	p.cur = ph
}

// publish sends one event; false when the run should stop (deadline).
func (p *publisher) publish(deadline time.Time) bool {
	r := p.next
	p.next = (p.next + 1) % len(p.rooms)
	p.seq[r]++
	seq := p.seq[r]
	ph := p.cur
	if ph != nil && ph.start[r].Load() == unset {
		// Before the publish: a subscriber can only see seq after it.
		ph.start[r].Store(seq)
	}
	data := p.body(make([]byte, 0, len(p.pad)+96), r, seq, time.Now().UnixNano(), p.pad)
	msg := &nats.Msg{Subject: p.subjects[r], Data: data}
	for {
		_, err := p.js.PublishMsgAsync(msg)
		if err == nil {
			break
		}
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) && time.Now().Before(deadline) {
			p.stallErr++ // acks are late: wait for room, keep the order
			continue
		}
		if ph != nil {
			ph.pubErrors.Add(1)
			ph.pubFailed[r].Add(1)
		}
		return time.Now().Before(deadline)
	}
	if ph != nil {
		ph.published.Add(1)
	}
	return true
}

// asyncErr counts a publish JetStream did not acknowledge against the
// phase its sequence belongs to. It runs on a nats.go goroutine.
func (p *publisher) asyncErr(_ jetstream.JetStream, m *nats.Msg, _ error) {
	r, ok := p.roomOf[m.Subject]
	if !ok {
		return
	}
	seq, _, ok := parseEventID(idOf(m.Data))
	if !ok {
		return
	}
	if ph := p.phases.find(r, seq); ph != nil {
		ph.pubErrors.Add(1)
		ph.pubFailed[r].Add(1)
	}
}

// idOf returns the id of a body written by body.
func idOf(b []byte) string {
	const head = `{"id":"`
	if !bytes.HasPrefix(b, []byte(head)) {
		return ""
	}
	b = b[len(head):]
	if i := bytes.IndexByte(b, '"'); i >= 0 {
		return string(b[:i])
	}
	return ""
}

// end closes the current phase: its last sequence per room is fixed, and
// events published from now on belong to no phase until the next begin.
func (p *publisher) end() {
	ph := p.cur
	if ph == nil {
		return
	}
	for r := range p.rooms {
		if ph.start[r].Load() != unset {
			ph.end[r].Store(p.seq[r])
		}
	}
	p.cur = nil
}

// waitAcks waits, bounded, until every publish so far is acknowledged.
func (p *publisher) waitAcks(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.js.PublishAsyncComplete():
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (p *publisher) close() {
	p.nc.Close()
}
