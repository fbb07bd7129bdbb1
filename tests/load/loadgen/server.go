//go:build linux

package loadgen

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// probe reads the node's CPU, memory and goroutines: CPU and RSS from
// /proc when its PID is known, else from its /metrics (the Prometheus
// process collector); goroutines and heap always from /metrics.
type probe struct {
	pid     int
	ready   string // the readiness path
	base    string // http://127.0.0.1:PORT
	ops     string // where /metrics is: the ops listener, else base
	hc      *http.Client
	metrics bool // /metrics answered at least once
}

func newProbe(wsURL, opsURL, ready string, pid int) (*probe, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	base := "http://" + u.Host
	return &probe{
		pid:   pid,
		ready: ready,
		base:  base,
		ops:   cmp.Or(strings.TrimSuffix(opsURL, "/"), base),
		// No keep-alive: a sample every few seconds does not need it, and
		// no idle connection goroutine outlives the run.
		hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}, nil
}

// MemSample is the node's memory and goroutines at one moment.
type MemSample struct {
	At         float64 `json:"t_s"` // seconds since the run began
	RSS        int64   `json:"rss_bytes"`
	HeapInuse  int64   `json:"heap_inuse_bytes,omitempty"`
	Goroutines int     `json:"goroutines,omitempty"`
	Threads    int     `json:"threads,omitempty"`
	Conns      int64   `json:"client_conns_alive"`
	// Delivered counts every next message the clients received so far.
	Delivered uint64 `json:"delivered_total"`
}

func (p *probe) get(ctx context.Context, path string) ([]byte, error) {
	return p.getFrom(ctx, p.base, path)
}

func (p *probe) getFrom(ctx context.Context, base, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("%s: %s", path, resp.Status)
	}
	return b, nil
}

// waitReady polls the readiness path until it answers 200, bounded by d.
func (p *probe) waitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if _, err = p.get(ctx, p.ready); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("server not ready within %v: %w", d, err)
}

func (p *probe) prom(ctx context.Context) map[string]float64 {
	b, err := p.getFrom(ctx, p.ops, "/metrics")
	if err != nil {
		return nil
	}
	p.metrics = true
	return parseProm(b, "process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines", "go_memstats_heap_inuse_bytes", "go_threads")
}

// cpu returns the node's CPU time so far; ok is false when unknown.
func (p *probe) cpu(ctx context.Context) (time.Duration, bool) {
	if p.pid > 0 {
		d, err := ProcCPU(p.pid)
		return d, err == nil
	}
	m := p.prom(ctx)
	v, ok := m["process_cpu_seconds_total"]
	return time.Duration(v * float64(time.Second)), ok
}

// io returns the node's system call counts, zero when its PID is
// unknown (or /proc/<pid>/io unreadable).
func (p *probe) io() ProcIOStats {
	if p.pid <= 0 {
		return ProcIOStats{}
	}
	st, _ := ProcIO(strconv.Itoa(p.pid))
	return st
}

// mem samples the node's memory and goroutines.
func (p *probe) mem(ctx context.Context) MemSample {
	var s MemSample
	m := p.prom(ctx)
	s.Goroutines = int(m["go_goroutines"])
	s.HeapInuse = int64(m["go_memstats_heap_inuse_bytes"])
	s.Threads = int(m["go_threads"])
	if p.pid > 0 {
		if st, err := ReadProcStatus(p.pid); err == nil {
			s.RSS, s.Threads = st.RSS, st.Threads
			return s
		}
	}
	s.RSS = int64(m["process_resident_memory_bytes"])
	return s
}

// readNATSURL reads <dataDir>/nats.url, written by a node running an
// embedded NATS server.
// redactedURL is u with any password masked: a node's nats.url carries
// its embedded server's password, which logs and reports must not.
func redactedURL(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return u
}

func readNATSURL(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "nats.url"))
	if err != nil {
		return "", fmt.Errorf("-data-dir: %w (is a node with embedded NATS running there?)", err)
	}
	u := strings.TrimSpace(string(b))
	if err := checkLoopbackURL(u, "nats"); err != nil {
		return "", fmt.Errorf("%s/nats.url: %w", dataDir, err)
	}
	return u, nil
}
