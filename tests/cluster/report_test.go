//go:build chaos

package cluster

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// Bounds of a scenario's phases.
const (
	liveTimeout    = 90 * time.Second  // every client has its first event
	catchUpTimeout = 180 * time.Second // every client has the last acked event
)

// scenario is one test's world, publisher and clients, and what it saw.
type scenario struct {
	t     *testing.T
	w     *world
	pub   *publisher
	cs    *clients
	begin time.Time

	faultAt time.Time
	// bound is each room's highest published id when the fault began: a
	// client's first event must not be later (it was subscribed before).
	bound map[string]int64
	notes []string
}

// size is short in -short mode (the subset `make test` runs), else full.
func size(short, full int) int {
	if testing.Short() {
		return short
	}
	return full
}

// onlyFull skips a scenario of the full set under -short (`make chaos`
// runs it).
func onlyFull(t *testing.T) {
	if testing.Short() {
		t.Skip("full set only: make chaos")
	}
}

// spread makes n client configs in rooms, round robin over the nodes.
func spread(w *world, n int, rooms []string) []clientConfig {
	cfgs := make([]clientConfig, n)
	for i := range cfgs {
		cfgs[i] = clientConfig{room: rooms[i%len(rooms)], endpoints: w.endpoints}
	}
	return cfgs
}

// start publishes to rooms at perRoom events/s, starts the clients and
// waits until every one has received an event.
func start(w *world, rooms []string, perRoom float64, textBytes int, cfgs func(*world) []clientConfig) *scenario {
	t := w.t
	t.Helper()
	s := &scenario{t: t, w: w, begin: time.Now()}
	s.pub = startPublisher(w, rooms, perRoom, textBytes)
	streamLeader(t, s.pub) // the nodes created the stream with 3 replicas
	s.cs = startClients(w, s.pub, cfgs(w))
	err := poll(liveTimeout, func() error {
		waiting := 0
		for _, c := range s.cs.all {
			if c.last() == 0 {
				waiting++
			}
		}
		if waiting > 0 {
			return fmt.Errorf("%d of %d clients have no event yet: %w", waiting, len(s.cs.all), errNotYet)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d clients live after %v", len(s.cs.all), time.Since(s.begin).Round(time.Millisecond))
	return s
}

// fault marks the moment the failure is injected.
func (s *scenario) fault(what string) {
	s.faultAt = time.Now()
	s.bound = map[string]int64{}
	for name, r := range s.pub.rooms {
		s.bound[name] = r.lastAcked.Load() + 1 // the one in flight may already be stored
	}
	s.t.Logf("fault at +%v: %s", s.faultAt.Sub(s.begin).Round(time.Millisecond), what)
}

func (s *scenario) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.notes = append(s.notes, msg)
	s.t.Log(msg)
}

// run lets the scenario go on for d.
func (s *scenario) run(d time.Duration) { time.Sleep(d) }

// finish stops the publisher, waits until every client has the last
// acked event of its room, stops the clients, checks every sequence and
// prints the report. It returns the result for scenario-specific checks.
func (s *scenario) finish() *result {
	t := s.t
	t.Helper()
	s.pub.stop()
	behind := func() []*client {
		var b []*client
		for _, c := range s.cs.all {
			if c.last() < s.pub.lastAcked(c.cfg.room) {
				b = append(b, c)
			}
		}
		return b
	}
	if err := poll(catchUpTimeout, func() error {
		if b := behind(); len(b) > 0 {
			c := b[0]
			return fmt.Errorf("%d clients behind the publisher, e.g. client %d at %d of %d in %s: %w",
				len(b), c.id, c.last(), s.pub.lastAcked(c.cfg.room), c.cfg.room, errNotYet)
		}
		return nil
	}); err != nil {
		t.Errorf("catch up: %v", err)
	}
	s.cs.stop()
	r := s.result()
	r.report(t)
	return r
}

// result is what a scenario measured.
type result struct {
	name                   string
	clients                int
	acked, unacked         int
	retries                int64
	delivered              int
	disconnects, errorRecs int
	reconnect, first, live []time.Duration
	lag                    []time.Duration
	errs, closes           map[string]int
	dialFailures           int
	problems               []string // sequence failures, one line each
	badClients             int
	incomplete             int // recoveries never completed
	elapsed                time.Duration
	notes                  []string
	perClient              map[*client]clientStats
	lagByNode              map[string]time.Duration // worst delivery lag by the node that delivered
}

type clientStats struct {
	disconnects int
	maxLag      time.Duration
}

func (s *scenario) result() *result {
	r := &result{
		name:      s.t.Name(),
		clients:   len(s.cs.all),
		retries:   s.pub.retries.Load(),
		errs:      map[string]int{},
		closes:    map[string]int{},
		elapsed:   time.Since(s.begin),
		notes:     s.notes,
		perClient: map[*client]clientStats{},
		lagByNode: map[string]time.Duration{},
	}
	for _, rm := range s.pub.rooms {
		a, u := rm.counts()
		r.acked += a
		r.unacked += u
	}
	for _, c := range s.cs.all {
		c.mu.Lock()
		rm := s.pub.rooms[c.cfg.room]
		r.delivered += len(c.ids)
		r.dialFailures += c.dialFailures
		for k, v := range c.errs {
			r.errs[k] += v
		}
		for k, v := range c.closes {
			r.closes[k] += v
		}
		var st clientStats
		for i, rec := range c.recs {
			if strings.HasPrefix(rec.reason, "error ") {
				r.errorRecs++
			} else {
				r.disconnects++
				st.disconnects++
			}
			if !rec.up.IsZero() && rec.first.IsZero() && rec.had >= rm.lastAcked.Load() {
				continue // back after the last event: nothing was left to receive
			}
			if rec.up.IsZero() || rec.first.IsZero() || rec.live.IsZero() {
				// Cut again before it was live (a slow client closed once
				// more by its byte budget): the next recovery measures it.
				if i+1 < len(c.recs) {
					continue
				}
				r.incomplete++
				continue
			}
			r.reconnect = append(r.reconnect, rec.up.Sub(rec.down))
			r.first = append(r.first, rec.first.Sub(rec.down))
			r.live = append(r.live, rec.live.Sub(rec.down))
		}
		seg := 0
		for i, id := range c.ids {
			for seg+1 < len(c.segs) && c.segs[seg+1].from <= i {
				seg++
			}
			if _, at := rm.get(id); at != 0 {
				d := max(time.Duration(c.at[i]-at), 0)
				r.lag = append(r.lag, d)
				st.maxLag = max(st.maxLag, d)
				if seg < len(c.segs) {
					name := s.w.nameOf(c.segs[seg].ep)
					r.lagByNode[name] = max(r.lagByNode[name], d)
				}
			}
		}
		r.perClient[c] = st
		probs := checkSequence(c.ids, rm, s.bound[c.cfg.room])
		if c.gaveUp != "" {
			probs = append(probs, "gave up after "+c.gaveUp)
		}
		if c.dropped > 0 {
			probs = append(probs, fmt.Sprintf("node reported %d dropped events", c.dropped))
		}
		c.mu.Unlock()
		if len(probs) > 0 {
			r.badClients++
			if len(r.problems) < 20 {
				r.problems = append(r.problems, fmt.Sprintf("client %d (%s): %s", c.id, c.cfg.room, strings.Join(probs, "; ")))
			}
		}
	}
	return r
}

// checkSequence compares the ids a client received with the room's
// publish log: strictly increasing (no duplicate, no reordering), only
// published ids, no acked id missing after the first, up to the last
// acked id, and a first id no later than bound (0: no bound).
func checkSequence(ids []int64, rm *room, bound int64) []string {
	var probs []string
	add := func(format string, args ...any) bool {
		if len(probs) < 5 {
			probs = append(probs, fmt.Sprintf(format, args...))
		}
		return len(probs) < 5
	}
	if len(ids) == 0 {
		return []string{"received nothing"}
	}
	if bound > 0 && ids[0] > bound {
		add("first event %d is later than the fault (ids up to %d were published before)", ids[0], bound)
	}
	var missing []int64
	for i, id := range ids {
		if st, _ := rm.get(id); st == statusNone {
			if !add("id %d (index %d) was never published", id, i) {
				break
			}
		}
		if i == 0 {
			continue
		}
		prev := ids[i-1]
		if id <= prev {
			if !add("id %d at index %d after %d: duplicate or out of order", id, i, prev) {
				break
			}
			continue
		}
		for g := prev + 1; g < id; g++ {
			if st, _ := rm.get(g); st == statusAcked {
				missing = append(missing, g)
			}
		}
	}
	if len(missing) > 0 {
		add("%d acked events missing (gap), first %v", len(missing), missing[:min(len(missing), 8)])
	}
	if last, want := ids[len(ids)-1], rm.lastAcked.Load(); last < want {
		add("last id %d, want at least the last acked %d", last, want)
	}
	return probs
}

// quantiles formats p50/max (and p99 with p99) of ds, "-" if empty.
func quantiles(ds []time.Duration, p99 bool) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(f float64) string { return fmtDur(s[min(int(f*float64(len(s))), len(s)-1)]) }
	if p99 {
		return q(0.5) + " / " + q(0.99) + " / " + fmtDur(s[len(s)-1])
	}
	return q(0.5) + " / " + fmtDur(s[len(s)-1])
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func fmtLags(m map[string]time.Duration) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+" "+fmtDur(m[k]))
	}
	return strings.Join(parts, ", ")
}

func fmtCounts(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// report logs the result, appends it as a Markdown row to $CHAOS_REPORT
// when set, and fails the test on any sequence problem.
func (r *result) report(t *testing.T) {
	t.Helper()
	pass := "pass"
	if r.badClients > 0 || t.Failed() {
		pass = "FAIL"
	}
	errCount := 0
	for _, v := range r.errs {
		errCount += v
	}
	t.Logf(`%s: %s in %v
  clients %d; published %d acked, %d unacked (%d publish retries); delivered %d
  disconnects %d (%s); coded errors %d (%s); dial failures %d; recoveries never completed %d
  recovery (from the moment the client noticed)  p50 / max
    to reconnect:   %s
    to first event: %s
    to live:        %s
  delivery lag after the ack  p50 / p99 / max: %s; worst by node: %s
  notes: %s`,
		r.name, pass, r.elapsed.Round(time.Millisecond),
		r.clients, r.acked, r.unacked, r.retries, r.delivered,
		r.disconnects, fmtCounts(r.closes), errCount, fmtCounts(r.errs), r.dialFailures, r.incomplete,
		quantiles(r.reconnect, false), quantiles(r.first, false), quantiles(r.live, false),
		quantiles(r.lag, true), fmtLags(r.lagByNode), strings.Join(r.notes, "; "))
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		row := fmt.Sprintf("| %s | %s | %d | %d (%d unacked) | %d | %d | %d | %s | %s | %s | %s | %s |\n",
			strings.TrimPrefix(r.name, "Test"), pass, r.clients, r.acked, r.unacked, r.delivered,
			r.disconnects, errCount, quantiles(r.reconnect, false), quantiles(r.first, false), quantiles(r.live, false),
			quantiles(r.lag, true), fmtDur(r.elapsed))
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = f.WriteString(row)
			f.Close()
		}
	}
	for _, p := range r.problems {
		t.Errorf("sequence: %s", p)
	}
	if r.badClients > 0 {
		t.Errorf("%d of %d clients did not receive exactly the acked events in order", r.badClients, r.clients)
	}
	if r.incomplete > 0 {
		t.Errorf("%d recoveries never completed (no reconnect, first event or catch-up)", r.incomplete)
	}
}
