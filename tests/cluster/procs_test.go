//go:build chaos

package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Bounds of every wait on a child process.
const (
	startTimeout = 60 * time.Second // a process printing its address, a server becoming healthy
	exitTimeout  = 30 * time.Second // a signalled process exiting (SIGTERM drains first)
	pollEvery    = 50 * time.Millisecond
)

// proc is one child process: a NATS server or a node. It can be started
// again after it exited (a restart); each run logs to its own file in dir.
// The kernel kills it if the test binary dies first (Pdeathsig), and the
// world kills it at the end of the test.
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	dir  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run has exited
	runs int
	logs []string // one per run
}

// start runs the process. It fails if a previous run is still alive.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !closed(p.done) {
		return fmt.Errorf("%s: already running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	logPath := filepath.Join(p.dir, fmt.Sprintf("%s.%d.log", p.name, p.runs))
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: start: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() { // owned by the proc: ends when the child exits (kill waits for it)
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	p.runs++
	p.logs = append(p.logs, logPath)
	return nil
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// current returns the running command and its done channel (nil if never started).
func (p *proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// running reports whether the current run is alive.
func (p *proc) running() bool {
	cmd, done := p.current()
	return cmd != nil && !closed(done)
}

// signal sends sig to the current run's PID.
func (p *proc) signal(sig syscall.Signal) error {
	cmd, done := p.current()
	if cmd == nil || closed(done) {
		return fmt.Errorf("%s: not running", p.name)
	}
	return cmd.Process.Signal(sig)
}

// wait waits up to d for the current run to exit.
func (p *proc) wait(d time.Duration) error {
	_, done := p.current()
	if done == nil {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("%s: still running %v after the signal", p.name, d)
	}
}

// stop sends sig, waits up to d, then kills. It reports whether the
// process exited on sig alone.
func (p *proc) stop(sig syscall.Signal, d time.Duration) error {
	if !p.running() {
		return nil
	}
	_ = p.signal(sig)
	if err := p.wait(d); err != nil {
		_ = p.signal(syscall.SIGKILL)
		_ = p.wait(exitTimeout)
		return err
	}
	return nil
}

// exitState describes how the last run ended ("" while it runs).
func (p *proc) exitState() string {
	cmd, done := p.current()
	if cmd == nil || !closed(done) {
		return ""
	}
	return cmd.ProcessState.String()
}

// logText is the current run's log so far.
func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.logs) == 0 {
		return ""
	}
	b, _ := os.ReadFile(p.logs[len(p.logs)-1])
	return string(b)
}

// tail returns the last n lines of every run's log.
func (p *proc) tail(n int) string {
	p.mu.Lock()
	logs := append([]string(nil), p.logs...)
	p.mu.Unlock()
	var sb strings.Builder
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
		if len(lines) > n {
			fmt.Fprintf(&sb, "… (%d lines before)\n", len(lines)-n)
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&sb, "==== %s\n%s\n", l, bytes.Join(lines, []byte("\n")))
	}
	return sb.String()
}

// freePorts returns n loopback TCP ports that were free a moment ago (all
// held at once, so they are distinct).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// httpClient is for health checks: short timeouts, no idle connections
// left behind.
var httpClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// httpOK reports whether GET url answers 200.
func httpOK(url string) bool {
	resp, err := httpClient.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// poll calls cond every pollEvery until it returns nil or d passes; it
// returns cond's last error.
func poll(d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", d, err)
		}
		time.Sleep(pollEvery)
	}
}

var errNotYet = errors.New("not yet")

// childEnv is the test's environment without FRAISEQL_* variables, so
// that a developer's settings never reach the children, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FRAISEQL_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
