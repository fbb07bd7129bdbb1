//go:build linux

package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher publishes numbered events round-robin over the rooms,
// through a sink: the node's real path (JetStream), or a Centrifugo
// server's HTTP API. It is driven by one goroutine.
type publisher struct {
	out    sink
	rooms  []string
	seq    []uint64 // last sequence published, per room
	next   int
	pad    string
	corpus string // PayloadText: the text an event's pad is taken from
	phases *phases
	cur    *phase // the phase being published; set and read by the driver only

	errMu    sync.Mutex
	firstErr error // the first publish error, for the report
}

// sink takes events to the server under test, in the order sent per room.
type sink interface {
	// send publishes body to room r, retrying a passing refusal until
	// deadline; an error counts the event as not published.
	send(r int, body []byte, deadline time.Time) error
	// waitAcks waits, bounded by d, until every send so far is acknowledged.
	waitAcks(ctx context.Context, d time.Duration) bool
	// takeWaitingMax returns the most events that waited at once in the
	// tool's own queue, behind a request to the server, since the last
	// call: a wait that is part of their latency.
	takeWaitingMax() int64
	close()
}

func newPublisher(out sink, rooms []string, payload int, ps *phases) *publisher {
	p := &publisher{out: out, rooms: rooms, seq: make([]uint64, len(rooms)), phases: ps}
	// The body is padded to payload bytes, give or take the digits of the
	// sequence (measured at six).
	base := len(p.body(nil, 0, 100_000, time.Now().UnixNano(), ""))
	p.pad = strings.Repeat("x", max(0, payload-base))
	return p
}

// useText fills the pad of each event with a different window of
// chat-like English (PayloadText) instead of 'x's.
func (p *publisher) useText() {
	p.corpus = textCorpus(max(1<<20, 4*len(p.pad)))
}

// padFor is event seq's pad.
func (p *publisher) padFor(seq uint64) string {
	if p.corpus == "" {
		return p.pad
	}
	return textAt(p.corpus, seq, len(p.pad))
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
	data := p.body(make([]byte, 0, len(p.pad)+96), r, seq, time.Now().UnixNano(), p.padFor(seq))
	if err := p.out.send(r, data, deadline); err != nil {
		p.noteErr(err)
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

// failed counts an event a sink learnt later it could not publish,
// against the phase of its sequence. It may run on a sink's goroutine.
func (p *publisher) failed(r int, body []byte, err error) {
	p.onPhase(r, body, err, func(ph *phase) {
		ph.pubErrors.Add(1)
		ph.pubFailed[r].Add(1)
	})
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

// unconfirmed counts an event whose publish got no answer: it may have
// been taken, so it stays expected. It may run on a sink's goroutine.
func (p *publisher) unconfirmed(r int, body []byte, err error) {
	p.onPhase(r, body, err, func(ph *phase) { ph.pubUnconfirmed.Add(1) })
}

// onPhase notes err and calls count with the phase body's event belongs to.
func (p *publisher) onPhase(r int, body []byte, err error, count func(*phase)) {
	p.noteErr(err)
	seq, _, ok := parseEventID(idOf(body))
	if !ok {
		return
	}
	if ph := p.phases.find(r, seq); ph != nil {
		count(ph)
	}
}

func (p *publisher) noteErr(err error) {
	p.errMu.Lock()
	if p.firstErr == nil {
		p.firstErr = err
	}
	p.errMu.Unlock()
}

// firstError is the first publish error so far, or nil.
func (p *publisher) firstError() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.firstErr
}

// waitAcks waits, bounded, until every publish so far is acknowledged.
func (p *publisher) waitAcks(ctx context.Context, d time.Duration) bool {
	return p.out.waitAcks(ctx, d)
}

func (p *publisher) close() { p.out.close() }

// jetStreamSink publishes to <prefix>.<tenant>.chat.<room>, the subject
// the node's consumer reads. Publishes are asynchronous with at most
// maxInflight unacknowledged.
type jetStreamSink struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	subjects []string
	roomOf   map[string]int // subject → room
	failed   func(r int, body []byte, err error)
}

func newJetStreamSink(ctx context.Context, natsURL, prefix, tenant string, rooms []string, maxInflight int, failed func(int, []byte, error)) (*jetStreamSink, error) {
	nc, err := nats.Connect(natsURL,
		nats.Name("fraiseql-loadgen"),
		nats.Timeout(5*time.Second),
		nats.MaxReconnects(10),
	)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", redactedURL(natsURL), err)
	}
	s := &jetStreamSink{nc: nc, roomOf: make(map[string]int, len(rooms)), failed: failed}
	s.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(maxInflight),
		jetstream.WithPublishAsyncErrHandler(s.asyncErr),
	)
	if err != nil {
		nc.Close()
		return nil, err
	}
	for i, r := range rooms {
		subj := prefix + "." + tenant + ".chat." + r
		s.subjects = append(s.subjects, subj)
		s.roomOf[subj] = i
	}
	// Check the stream takes our subjects before anything is measured.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.js.StreamNameBySubject(cctx, s.subjects[0]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("no JetStream stream takes %s (is the node up on this NATS?): %w", s.subjects[0], err)
	}
	return s, nil
}

func (s *jetStreamSink) send(r int, body []byte, deadline time.Time) error {
	msg := &nats.Msg{Subject: s.subjects[r], Data: body}
	for {
		_, err := s.js.PublishMsgAsync(msg)
		if err == nil || !errors.Is(err, jetstream.ErrTooManyStalledMsgs) || !time.Now().Before(deadline) {
			return err
		}
		// Acks are late: PublishMsgAsync waited for room; try again, keeping the order.
	}
}

// asyncErr counts a publish JetStream did not acknowledge. It runs on a
// nats.go goroutine.
func (s *jetStreamSink) asyncErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	if r, ok := s.roomOf[m.Subject]; ok {
		s.failed(r, m.Data, err)
	}
}

func (s *jetStreamSink) waitAcks(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.js.PublishAsyncComplete():
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// takeWaitingMax is 0: a JetStream publish goes out at once, and what
// waits for its ack is already with the server.
func (s *jetStreamSink) takeWaitingMax() int64 { return 0 }

func (s *jetStreamSink) close() { s.nc.Close() }
