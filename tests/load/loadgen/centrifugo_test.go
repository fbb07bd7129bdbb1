//go:build linux

package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestParsePush(t *testing.T) {
	tests := []struct {
		name   string
		msg    string
		seq    uint64
		ts     int64
		wantOK bool
	}{
		{
			name: "as Centrifugo writes it",
			msg:  `{"push":{"channel":"lg1-0","pub":{"data":{"id":"42-1700000000123456789","room":"lg1-0","text":"xx"},"offset":3}}}`,
			seq:  42, ts: 1700000000123456789, wantOK: true,
		},
		{name: "a reply", msg: `{"id":2,"subscribe":{}}`},
		{name: "a ping", msg: `{}`},
		{name: "a push of something else", msg: `{"push":{"channel":"c","join":{"info":{"client":"x"}}}}`},
		{name: "an id not ours", msg: `{"push":{"channel":"c","pub":{"data":{"id":"hello"}}}}`},
		{name: "truncated", msg: `{"push":{"channel":"c","pub":{"data":{"id":"42-17`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq, ts, ok := parsePush([]byte(tc.msg))
			if ok != tc.wantOK || seq != tc.seq || ts != tc.ts {
				t.Fatalf("got %d %d %v, want %d %d %v", seq, ts, ok, tc.seq, tc.ts, tc.wantOK)
			}
		})
	}
}

// TestCentrifugoAccounting feeds a client the frames Centrifugo would
// send, several messages to a frame, and checks the phase's counts.
func TestCentrifugoAccounting(t *testing.T) {
	var ps phases
	cs := newClients(centrifugoProto{}, "", []string{"r"}, 1, &ps)
	c := &client{cs: cs, seqs: make([]SeqTracker, 1)}
	ph := newPhase("measure", 10, 1)
	ps.add(ph)
	ph.start[0].Store(1)
	now := time.Now()
	push := func(seq uint64) string {
		ts := now.Add(-3 * time.Millisecond).UnixNano()
		return `{"push":{"channel":"r","pub":{"data":{"id":"` + strconv.Itoa(int(seq)) + "-" + strconv.Itoa(int(ts)) + `","text":"x"}}}}`
	}
	c.sent()
	c.subStart.Store(now.Add(-time.Millisecond).UnixNano())
	cs.proto.handle(c, []byte(`{"id":2,"subscribe":{}}`), now)
	if cs.subscribed.Load() != 1 || cs.subscribeTime.Summarize().Count != 1 {
		t.Fatalf("the subscribe reply did not confirm: subscribed %d", cs.subscribed.Load())
	}
	cs.proto.handle(c, []byte(push(1)+"\n"+push(2)+"\n"+push(2)), now) // a duplicate
	cs.proto.handle(c, []byte(push(4)), now)                           // a gap
	ph.end[0].Store(4)
	if got := ph.delivered.load(); got != 3 {
		t.Fatalf("delivered %d, want 3", got)
	}
	if ph.dups.load() != 1 || ph.skipped.load() != 1 {
		t.Fatalf("dups %d skipped %d", ph.dups.load(), ph.skipped.load())
	}
	if s := ph.latency.Summarize(); s.P50 < 2.9 || s.P50 > 3.2 {
		t.Fatalf("latency p50 %vms, want ≈3", s.P50)
	}
	cs.proto.handle(c, []byte(`{"id":2,"error":{"code":103,"message":"permission denied"}}`), now)
	if cs.refused["centrifugo 103"] != 1 || cs.accepted.Load() != 0 {
		t.Fatalf("refused %v, accepted %d", cs.refused, cs.accepted.Load())
	}
	cs.proto.handle(c, []byte(`not json`), now)
	if cs.unknown.Load() != 1 {
		t.Fatalf("unknown %d", cs.unknown.Load())
	}
}

func TestCentrifugoConfig(t *testing.T) {
	b, err := centrifugoConfig(18123)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		HTTPServer struct {
			Address string `json:"address"`
			Port    int    `json:"port"`
		} `json:"http_server"`
		HTTPAPI struct {
			Key string `json:"key"`
		} `json:"http_api"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.HTTPServer.Address != "127.0.0.1" || m.HTTPServer.Port != 18123 || m.HTTPAPI.Key != centrifugoAPIKey {
		t.Fatalf("config %s", b)
	}
}

// fakeCentrifugo speaks the part of Centrifugo's protocol and HTTP API
// the tool uses: connect, subscribe, pings, publish fanned out as pushes.
type fakeCentrifugo struct {
	mu      sync.Mutex
	subs    map[string][]*websocket.Conn
	offset  int
	pongs   atomic.Int64
	batches atomic.Int64
}

func (f *fakeCentrifugo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/health":
		w.Write([]byte(`{}`))
	case "/api/publish", "/api/batch":
		if r.Header.Get("X-API-Key") != centrifugoAPIKey {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		type pub struct {
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		}
		var one pub
		var batch struct {
			Commands []struct{ Publish pub } `json:"commands"`
		}
		var cmds []pub
		if r.URL.Path == "/api/publish" {
			if json.NewDecoder(r.Body).Decode(&one) != nil {
				w.Write([]byte(`{"error":{"code":107,"message":"bad request"}}`))
				return
			}
			cmds = []pub{one}
		} else {
			if json.NewDecoder(r.Body).Decode(&batch) != nil {
				w.Write([]byte(`{"error":{"code":107,"message":"bad request"}}`))
				return
			}
			for _, c := range batch.Commands {
				cmds = append(cmds, c.Publish)
			}
			f.batches.Add(1)
		}
		f.mu.Lock()
		for _, p := range cmds {
			f.offset++
			push := []byte(`{"push":{"channel":"` + p.Channel + `","pub":{"data":` + string(p.Data) + `,"offset":` + strconv.Itoa(f.offset) + `}}}`)
			for _, c := range f.subs[p.Channel] {
				_ = c.Write(r.Context(), websocket.MessageText, push)
			}
		}
		f.mu.Unlock()
		if r.URL.Path == "/api/publish" {
			w.Write([]byte(`{"result":{}}`))
			return
		}
		replies := strings.Repeat(`{"publish":{}},`, len(cmds))
		w.Write([]byte(`{"replies":[` + strings.TrimSuffix(replies, ",") + `]}`))
	case "/connection/websocket":
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := context.Background()
		for {
			_, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			var cmd struct {
				ID        int `json:"id"`
				Subscribe *struct {
					Channel string `json:"channel"`
				} `json:"subscribe"`
			}
			switch {
			case string(msg) == `{}`:
				f.pongs.Add(1)
			case json.Unmarshal(msg, &cmd) != nil:
				return
			case cmd.ID == 1:
				// A ping in the same frame as the reply, as Centrifugo may batch.
				_ = c.Write(ctx, websocket.MessageText, []byte(`{"id":1,"connect":{"client":"c","version":"0.0.0","ping":25,"pong":true}}`+"\n{}"))
			case cmd.Subscribe != nil:
				f.mu.Lock()
				f.subs[cmd.Subscribe.Channel] = append(f.subs[cmd.Subscribe.Channel], c)
				f.mu.Unlock()
				_ = c.Write(ctx, websocket.MessageText, []byte(`{"id":`+strconv.Itoa(cmd.ID)+`,"subscribe":{}}`))
			}
		}
	default:
		http.NotFound(w, r)
	}
}

// TestRunAgainstCentrifugoProtocol runs the tool in -server centrifugo
// mode against fakeCentrifugo: every event must arrive, in order, with
// the subscribe round trips and the ping answered.
func TestRunAgainstCentrifugoProtocol(t *testing.T) {
	fake := &fakeCentrifugo{subs: map[string][]*websocket.Conn{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	cfg := Defaults()
	cfg.Server = ServerCentrifugo
	cfg.Target = "ws" + strings.TrimPrefix(srv.URL, "http") + "/connection/websocket"
	cfg.API, cfg.APIKey = srv.URL+"/api", centrifugoAPIKey
	cfg.ServerPID = os.Getpid()
	cfg.Conns, cfg.Rate = 10, 50
	cfg.Duration, cfg.Warmup = time.Second, 200*time.Millisecond
	cfg.Settle, cfg.Drain = 50*time.Millisecond, time.Second
	cfg.MaxRuntime = 20 * time.Second
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := rep.Windows[0]
	if rep.Connect.Connected != 10 || rep.Subscribe.Confirmed != 10 || w.Published != 50 || w.Expected != 500 || w.Delivered != 500 ||
		w.Duplicates+w.Reorders+w.Skipped != 0 || rep.UnreadableMessages != 0 || rep.Node.Server != ServerCentrifugo {
		t.Fatalf("connected %d confirmed %d, window %+v, unreadable %d, node %+v",
			rep.Connect.Connected, rep.Subscribe.Confirmed, w, rep.UnreadableMessages, rep.Node)
	}
	if fake.pongs.Load() != 10 {
		t.Fatalf("%d pongs, want one a connection", fake.pongs.Load())
	}
}

// TestCentrifugoSinkBatchesInOrder holds the first publish until more
// events wait: they must go in one batch, in order, and a command the
// server refuses must count as failed, alone.
func TestCentrifugoSinkBatchesInOrder(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	var mu sync.Mutex
	var got []string
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var one struct{ Data struct{ ID string } }
		var batch struct {
			Commands []struct {
				Publish struct{ Data struct{ ID string } }
			}
		}
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.URL.Path == "/api/publish" {
			json.NewDecoder(r.Body).Decode(&one)
			arrived <- struct{}{}
			<-release
			mu.Lock()
			got = append(got, one.Data.ID)
			mu.Unlock()
			w.Write([]byte(`{"result":{}}`))
			return
		}
		json.NewDecoder(r.Body).Decode(&batch)
		var replies []string
		mu.Lock()
		for _, c := range batch.Commands {
			got = append(got, c.Publish.Data.ID)
			if c.Publish.Data.ID == "3" {
				replies = append(replies, `{"error":{"code":107,"message":"bad request"}}`)
			} else {
				replies = append(replies, `{"publish":{}}`)
			}
		}
		mu.Unlock()
		w.Write([]byte(`{"replies":[` + strings.Join(replies, ",") + `]}`))
	}))
	defer srv.Close()
	var failed []string
	var fmu sync.Mutex
	s := newCentrifugoSink(context.Background(), srv.URL+"/api", "k", []string{"r"}, 16, func(_ int, body []byte, err error) {
		if !strings.Contains(fmt.Sprint(err), "error 107 bad request") {
			t.Errorf("error %v, want the server's", err)
		}
		fmu.Lock()
		failed = append(failed, idOf(body))
		fmu.Unlock()
	}, func(int, []byte, error) { t.Error("a refusal counted as unconfirmed") })
	deadline := time.Now().Add(5 * time.Second)
	for i := 1; i <= 5; i++ {
		if err := s.send(0, []byte(`{"id":"`+strconv.Itoa(i)+`"}`), deadline); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			<-arrived // the others wait behind it
		}
	}
	if s.waitAcks(context.Background(), 50*time.Millisecond) {
		t.Fatal("acknowledged while the first publish is held")
	}
	close(release)
	if !s.waitAcks(context.Background(), 5*time.Second) {
		t.Fatal("not acknowledged")
	}
	s.close()
	if strings.Join(got, ",") != "1,2,3,4,5" || strings.Join(paths, ",") != "/api/publish,/api/batch" {
		t.Fatalf("published %v through %v; want 1..5, alone then in one batch", got, paths)
	}
	if strings.Join(failed, ",") != "3" {
		t.Fatalf("failed %v, want [3]", failed)
	}
}

// TestCentrifugoSinkBoundsInflight: with the server holding every
// request, sends beyond maxInflight wait until their deadline and fail;
// the rest are answered once the server answers.
func TestCentrifugoSinkBoundsInflight(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-release
		if r.URL.Path == "/api/batch" {
			w.Write([]byte(`{"replies":[{"publish":{}},{"publish":{}}]}`))
			return
		}
		w.Write([]byte(`{"result":{}}`))
	}))
	defer srv.Close()
	var failed atomic.Int64
	count := func(int, []byte, error) { failed.Add(1) }
	s := newCentrifugoSink(context.Background(), srv.URL+"/api", "k", []string{"r"}, 2, count, count)
	const wait = 100 * time.Millisecond
	var errs int
	for i := 0; i < 5; i++ { // 1 in the held request, 2 queued, 2 refused
		start := time.Now()
		err := s.send(0, []byte(`{"id":"1-1"}`), start.Add(wait))
		if err != nil {
			errs++
			if d := time.Since(start); d < wait*9/10 {
				t.Fatalf("a refused send waited %v, want its deadline (%v)", d, wait)
			}
		}
		if i == 0 {
			<-arrived
		}
	}
	if got := s.takeWaitingMax(); got != 2 {
		t.Fatalf("waiting max %d, want 2", got)
	}
	close(release)
	if !s.waitAcks(context.Background(), 5*time.Second) {
		t.Fatalf("not acknowledged: %d pending", s.pending.Load())
	}
	s.close()
	if errs != 2 || failed.Load() != 0 {
		t.Fatalf("%d sends refused (want 2), %d failed (want 0)", errs, failed.Load())
	}
}

// TestCentrifugoSinkLostReplyIsUnconfirmed: a server that takes a
// request and closes the connection without a reply (as Centrifugo does
// past its write timeout) may have published it: the event is
// unconfirmed, not failed, so it stays expected.
func TestCentrifugoSinkLostReplyIsUnconfirmed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	defer srv.Close()
	var failed, unconfirmed atomic.Int64
	s := newCentrifugoSink(context.Background(), srv.URL+"/api", "k", []string{"r"}, 4,
		func(int, []byte, error) { failed.Add(1) }, func(int, []byte, error) { unconfirmed.Add(1) })
	if err := s.send(0, []byte(`{"id":"1-1"}`), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !s.waitAcks(context.Background(), 5*time.Second) {
		t.Fatal("not answered")
	}
	s.close()
	if failed.Load() != 0 || unconfirmed.Load() != 1 {
		t.Fatalf("failed %d, unconfirmed %d; want 0 and 1", failed.Load(), unconfirmed.Load())
	}
}

// TestCentrifugoSinkCloseCancelsAHeldRequest: a server that never
// answers delays close by the grace period only, and the event counts as
// failed.
func TestCentrifugoSinkCloseCancelsAHeldRequest(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then a closed connection ends the request's context
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer srv.Close()
	var answered atomic.Int64
	count := func(int, []byte, error) { answered.Add(1) }
	s := newCentrifugoSink(context.Background(), srv.URL+"/api", "k", []string{"r"}, 4, count, count)
	s.grace = 50 * time.Millisecond
	if err := s.send(0, []byte(`{"id":"1-1"}`), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	<-arrived
	closed := make(chan struct{})
	go func() { // ends when close does; waited for below
		s.close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not cancel the held request")
	}
	if answered.Load() != 1 {
		t.Fatalf("the held event counted %d times, want once", answered.Load())
	}
}

// TestUnconfirmedStaysExpected: a refused publish leaves the expected
// count, one with no answer does not; the first error is kept.
func TestUnconfirmedStaysExpected(t *testing.T) {
	var ps phases
	p := newPublisher(nil, []string{"r"}, 0, &ps)
	ph := newPhase("measure", 10, 1)
	ps.add(ph)
	ph.start[0].Store(1)
	ph.end[0].Store(4)
	first := errors.New("refused")
	p.failed(0, []byte(`{"id":"2-1"}`), first)
	p.unconfirmed(0, []byte(`{"id":"3-1"}`), errors.New("EOF"))
	if got := ph.expected([]int64{2}); got != 3*2 {
		t.Fatalf("expected %d, want 6 (4 events, 1 refused, 2 subscriptions)", got)
	}
	if ph.pubErrors.Load() != 1 || ph.pubUnconfirmed.Load() != 1 || p.firstError() != first {
		t.Fatalf("errors %d, unconfirmed %d, first %v", ph.pubErrors.Load(), ph.pubUnconfirmed.Load(), p.firstError())
	}
}
