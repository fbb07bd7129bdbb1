//go:build chaos

package cluster

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy is a TCP proxy on loopback in front of one node: it delays every
// chunk by latency (order kept) in both directions, and resets
// connections on demand (SO_LINGER 0, so the peers see an RST).
type proxy struct {
	ln      net.Listener
	target  string
	latency time.Duration

	accepted atomic.Int64
	resets   atomic.Int64

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	closed bool
	wg     sync.WaitGroup // accept loop and every connection's pumps
}

type proxyConn struct {
	client, server *net.TCPConn
	once           sync.Once
}

// close ends both sides; with reset, as an RST.
func (pc *proxyConn) close(reset bool) {
	pc.once.Do(func() {
		if reset {
			_ = pc.client.SetLinger(0)
			_ = pc.server.SetLinger(0)
		}
		pc.client.Close()
		pc.server.Close()
	})
}

// startProxy listens on a random loopback port and forwards to target
// (host:port).
func startProxy(target string, latency time.Duration) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, latency: latency, conns: map[*proxyConn]struct{}{}}
	p.wg.Go(p.acceptLoop) // owned by p: ends when close closes the listener
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) acceptLoop() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.wg.Go(func() { p.handle(c.(*net.TCPConn)) }) // owned by p: ends when either side closes
	}
}

func (p *proxy) handle(client *net.TCPConn) {
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = client.SetLinger(0)
		client.Close()
		return
	}
	pc := &proxyConn{client: client, server: s.(*net.TCPConn)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pc.close(false)
		return
	}
	p.conns[pc] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { p.pump(pc, pc.server, pc.client) }) // owned by handle
	p.pump(pc, pc.client, pc.server)
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// pump copies src to dst, each chunk delayed by the latency; when either
// side fails it closes both, so that the other pump ends too.
func (p *proxy) pump(pc *proxyConn, dst, src *net.TCPConn) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	ch := make(chan chunk, 256)
	done := make(chan struct{})
	go func() { // owned by pump, which waits for it
		defer close(done)
		for ck := range ch {
			if d := time.Until(ck.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(ck.b); err != nil {
				pc.close(false)
				for range ch { // let the reader finish
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			ch <- chunk{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(p.latency)}
		}
		if err != nil {
			break
		}
	}
	close(ch)
	<-done
	pc.close(false)
}

// resetFraction resets each open connection with probability f and
// returns how many it reset.
func (p *proxy) resetFraction(f float64) int {
	p.mu.Lock()
	var victims []*proxyConn
	for pc := range p.conns {
		if rand.Float64() < f {
			victims = append(victims, pc)
		}
	}
	p.mu.Unlock()
	for _, pc := range victims {
		pc.close(true)
	}
	p.resets.Add(int64(len(victims)))
	return len(victims)
}

// open is the number of proxied connections.
func (p *proxy) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// close stops accepting, closes every connection and waits for the pumps.
func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for pc := range p.conns {
		pc.close(false)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
