//go:build linux

package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is the server under test (the FraiseQL node, or Centrifugo for
// comparison): spawned by the tool, or running.
type node struct {
	ws, nats string
	// ops is the node's ops listener (http://host:port: /metrics); "" means
	// the WebSocket endpoint's host.
	ops string
	// api and apiKey are a Centrifugo server's HTTP API, where events go.
	api, apiKey string
	pid         int // 0 when unknown (a running node without -pid)
	env         []string

	// spawned only
	cmd    *exec.Cmd
	dir    string
	keep   bool
	logf   *os.File
	waited chan struct{} // closed once cmd.Wait returned
	wg     sync.WaitGroup
}

var (
	wsAddrRE   = regexp.MustCompile(`ws://(127\.0\.0\.1:\d+)/graphql`)
	natsAddrRE = regexp.MustCompile(`nats://127\.0\.0\.1:\d+`)
	opsAddrRE  = regexp.MustCompile(`operations: +(http://127\.0\.0\.1:\d+)/metrics`)
)

const (
	buildTimeout = 5 * time.Minute
	startTimeout = 60 * time.Second
	stopTimeout  = 20 * time.Second
)

// findRepo returns dir, or the nearest directory upward from the working
// directory whose go.mod declares this module.
func findRepo(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 32 { // bounded: a path has fewer levels than that
		mod, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(mod), "module github.com/fraiseql/subscriptions\n") {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return "", errors.New("repository root not found above the working directory: give -repo or -node-bin")
}

// spawnNode builds ./cmd/fraiseql-node (unless cfg.NodeBin is set) into a temp dir
// and starts it on a free loopback port with its own data dir, then reads
// the WebSocket and NATS addresses it prints.
func spawnNode(ctx context.Context, cfg *Config, logf func(string, ...any)) (_ *node, err error) {
	n, err := newChild(cfg, "fraiseql-loadgen-")
	if err != nil {
		return nil, err
	}
	dir := n.dir
	defer func() {
		if err != nil {
			n.stop()
		}
	}()
	bin := cfg.NodeBin
	if bin == "" {
		repo, err := findRepo(cfg.RepoDir)
		if err != nil {
			return n, err
		}
		bin = filepath.Join(dir, "fraiseql-node")
		logf("building ./cmd/fraiseql-node in %s", repo)
		bctx, cancel := context.WithTimeout(ctx, buildTimeout)
		defer cancel()
		b := exec.CommandContext(bctx, "go", "build", "-o", bin, "./cmd/fraiseql-node")
		b.Dir = repo
		if out, err := b.CombinedOutput(); err != nil {
			return n, fmt.Errorf("go build ./cmd/fraiseql-node: %w\n%s", err, out)
		}
	}
	n.env = nil
	if cfg.NodeDefaults {
		n.env = append(n.env, LoadNodeEnv(cfg.Subs)...)
	}
	n.env = append(n.env, cfg.NodeEnv...)
	out, err := n.start(bin, []string{"serve", "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data")}, "node.log", true)
	if err != nil {
		return n, err
	}
	addrs := make(chan [3]string, 1)
	n.wg.Go(func() { // reads the node's stdout until it exits, so it never blocks on a full pipe
		scanAddrs(out, addrs)
		_, _ = io.Copy(io.Discard, out)
	})
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case a := <-addrs:
		n.ws, n.nats, n.ops = "ws://"+a[0]+"/graphql", a[1], a[2]
		// The embedded server takes clients with the credentials the node
		// writes to nats.url (0600) only; the banner shows the bare URL.
		if u, err := readNATSURL(filepath.Join(dir, "data")); err == nil {
			n.nats = u
		}
	case <-n.waited:
		return n, fmt.Errorf("the node exited at start (%v); its log: %s", n.cmd.ProcessState, n.logTail())
	case <-t.C:
		return n, fmt.Errorf("the node printed no address within %v; its log: %s", startTimeout, n.logTail())
	case <-ctx.Done():
		return n, ctx.Err()
	}
	logf("node pid %d at %s, NATS %s (log %s)", n.pid, n.ws, redactedURL(n.nats), n.logf.Name())
	return n, nil
}

// newChild makes the node of a server the tool will spawn, with a temp
// dir of its own.
func newChild(cfg *Config, prefix string) (*node, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	return &node{dir: dir, keep: cfg.KeepNodeDir, waited: make(chan struct{})}, nil
}

// start runs bin with args and n.env as the child n stands for. Its
// stderr goes to logName in n.dir, and so does its stdout unless
// withStdout, which returns it as a pipe to read. The kernel stops the
// child if the tool dies without doing so.
func (n *node) start(bin string, args []string, logName string, withStdout bool) (io.Reader, error) {
	n.cmd = exec.Command(bin, args...)
	n.cmd.Env = append(os.Environ(), n.env...)
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	var err error
	if n.logf, err = os.Create(filepath.Join(n.dir, logName)); err != nil {
		return nil, err
	}
	n.cmd.Stderr = n.logf
	var out io.Reader
	if withStdout {
		if out, err = n.cmd.StdoutPipe(); err != nil {
			return nil, err
		}
	} else {
		n.cmd.Stdout = n.logf
	}
	if err := n.cmd.Start(); err != nil {
		close(n.waited)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	n.pid = n.cmd.Process.Pid
	n.wg.Go(func() {
		_ = n.cmd.Wait()
		close(n.waited)
	})
	return out, nil
}

// scanAddrs reads lines until it has seen both addresses and sends them.
func scanAddrs(r io.Reader, out chan<- [3]string) {
	var a [3]string // ws, nats, ops (printed before nats, if at all)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if m := wsAddrRE.FindStringSubmatch(line); m != nil && a[0] == "" {
			a[0] = m[1]
		}
		if m := natsAddrRE.FindString(line); m != "" && a[1] == "" {
			a[1] = m
		}
		if m := opsAddrRE.FindStringSubmatch(line); m != nil && a[2] == "" {
			a[2] = m[1]
		}
		if a[0] != "" && a[1] != "" {
			out <- a
			return
		}
	}
}

func (n *node) logTail() string {
	if n.logf == nil {
		return ""
	}
	b, _ := os.ReadFile(n.logf.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop ends a spawned node: SIGTERM (it closes each WebSocket with 1001),
// then SIGKILL if it has not exited within stopTimeout. A no-op for a
// node the tool did not start.
func (n *node) stop() {
	if n.cmd != nil && n.cmd.Process != nil {
		select {
		case <-n.waited:
		default:
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(stopTimeout)
			select {
			case <-n.waited:
			case <-t.C:
				_ = n.cmd.Process.Kill()
				<-n.waited
			}
			t.Stop()
		}
	}
	n.wg.Wait()
	if n.logf != nil {
		n.logf.Close()
	}
	if n.dir != "" && !n.keep {
		os.RemoveAll(n.dir)
	}
}

// exited reports whether a spawned node has exited.
func (n *node) exited() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.waited:
		return true
	default:
		return false
	}
}
