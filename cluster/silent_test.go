package cluster_test

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// freezer is a TCP proxy to one address that can stop forwarding while
// keeping its connections open: a server whose host vanished (power
// loss, a partition) sends no FIN or RST, so only the client's pings
// notice.
type freezer struct {
	ln     net.Listener
	to     string
	frozen atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startFreezer(t *testing.T, to string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, to: to}
	f.wg.Go(f.accept) // owned by f: close ends it
	t.Cleanup(f.close)
	return f
}

func (f *freezer) addr() string { return f.ln.Addr().String() }

func (f *freezer) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", f.to)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, c, s)
		f.mu.Unlock()
		f.wg.Go(func() { f.pipe(s, c) }) // owned by f: close ends both
		f.wg.Go(func() { f.pipe(c, s) })
	}
}

// pipe copies from src to dst until either ends; frozen, it reads and
// discards, as a link that delivers nothing.
func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !f.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF, or closed by close
			return
		}
	}
}

func (f *freezer) close() {
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// TestSilentServerIsNoticed: the node's NATS server stops answering
// without closing the connection. The client's pings (every 2 s, two
// unanswered) notice within about 6 s, so the node reports not ready and
// moves to another server, instead of after the library's default of
// minutes.
func TestSilentServerIsNoticed(t *testing.T) {
	url := clustertest.RunServer(t)
	p := startFreezer(t, url[len("nats://"):])
	c := open(t, cluster.Config{URL: "nats://" + p.addr()})
	if err := c.Ready(); err != nil {
		t.Fatal(err)
	}
	p.frozen.Store(true)
	start := time.Now()
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if c.Ready() == nil {
			return errors.New("still ready behind a silent server")
		}
		return nil
	})
	t.Logf("not ready %v after the server fell silent", time.Since(start).Round(time.Millisecond))
}
