//go:build integration

// Package docs runs the shell commands of the README and
// docs/getting-started.md, as a reader would, against a fresh node: so a
// document cannot promise what the code no longer does.
package docs

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// documents are the files whose shell commands must work as written.
var documents = []string{"README.md", "docs/getting-started.md"}

// notRun are the commands of those documents this test does not run, and why.
// A command that is neither run nor listed here fails the test.
var notRun = map[string]string{
	"make test": "the whole suite, this test included",
}

// nodeCmd is how the documents start the node and run its commands; the
// test runs the binary it built from the same package instead of `go run`
// per command (same code, one build).
const nodeCmd = "go run ./cmd/fraiseql-node"

// command is one shell command of a document, with the input lines typed
// into it (`> …` lines) and the terminal (code block) it runs in.
type command struct {
	line  int
	text  string
	input []string
	block int
}

var fence = regexp.MustCompile("(?m)^[ \t]*```([a-z]*)[ \t]*\n")

// commands extracts the commands of the sh code blocks of a Markdown file.
// A block is a terminal: each line is a command, `\` continues a line, and
// `> ` lines are typed into the command before them.
func commands(t *testing.T, md string) []command {
	t.Helper()
	var out []command
	rest, offset, block := md, 0, 0
	for {
		m := fence.FindStringSubmatchIndex(rest)
		if m == nil {
			return out
		}
		lang := rest[m[2]:m[3]]
		body := rest[m[1]:]
		end := fence.FindStringIndex(body)
		if end == nil {
			t.Fatalf("unterminated code block at line %d", strings.Count(md[:offset+m[0]], "\n")+1)
		}
		startLine := strings.Count(md[:offset+m[1]], "\n") + 1
		if lang == "sh" || lang == "bash" || lang == "shell" {
			block++
			var cur *command
			for i, l := range strings.Split(body[:end[0]], "\n") {
				l = strings.TrimSpace(l)
				switch {
				case l == "" || strings.HasPrefix(l, "#"):
				case strings.HasPrefix(l, "> ") && cur != nil:
					cur.input = append(cur.input, strings.TrimPrefix(l, "> "))
				case cur != nil && strings.HasSuffix(cur.text, "\\"):
					cur.text = strings.TrimSuffix(cur.text, "\\") + " " + l
				default:
					out = append(out, command{line: startLine + i, text: l, block: block})
					cur = &out[len(out)-1]
				}
			}
		}
		consumed := m[1] + end[1]
		offset += consumed
		rest = rest[consumed:]
	}
}

func TestDocumentedCommands(t *testing.T) {
	root := repoRoot(t)
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("the documents' client commands need Node.js >= 20 with npm: apt-get install nodejs npm")
	}
	bin := filepath.Join(t.TempDir(), "fraiseql-node")
	build := exec.Command("go", "build", "-o", bin, "./cmd/fraiseql-node")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, doc := range documents {
		t.Run(doc, func(t *testing.T) {
			md, err := os.ReadFile(filepath.Join(root, doc))
			if err != nil {
				t.Fatal(err)
			}
			cmds := commands(t, string(md))
			if len(cmds) == 0 {
				t.Fatalf("%s has no shell commands", doc)
			}
			s := newShell(t, root, bin)
			for _, c := range cmds {
				s.run(doc, c)
			}
			s.checkSubscribers(doc)
		})
	}
}

// shell runs a document's commands: one fresh node (a data directory and a
// free port of its own, told through the environment as a reader would set
// it), background processes for what does not end, and the working
// directory of each terminal.
type shell struct {
	t    *testing.T
	root string
	bin  string
	env  []string
	addr string

	node *proc
	subs []*proc
	cwd  map[int]string // by block
}

func newShell(t *testing.T, root, bin string) *shell {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &shell{t: t, root: root, bin: bin, addr: addr, cwd: make(map[int]string)}
	s.env = append(os.Environ(),
		"FRAISEQL_DATA_DIR="+t.TempDir(),
		"FRAISEQL_LISTEN="+addr,
		"FRAISEQL_OPS_LISTEN=off",
		"FRAISEQL_URL=ws://"+addr+"/graphql",
		"npm_config_audit=false", "npm_config_fund=false", "npm_config_update_notifier=false",
	)
	t.Cleanup(s.stopAll)
	return s
}

// proc is a command left running in the background.
type proc struct {
	cmd  *exec.Cmd
	what string
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

type lockedWriter struct{ p *proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

func (s *shell) start(c command, text, dir string) *proc {
	p := &proc{what: fmt.Sprintf("line %d: %s", c.line, c.text), done: make(chan struct{})}
	p.cmd = exec.Command("sh", "-c", text)
	p.cmd.Dir = dir
	p.cmd.Env = s.env
	p.cmd.Stdout, p.cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its children stop with it
	// A terminal's input stays open while the command runs (wscat quits
	// when its input ends), unless the document types lines into it.
	var hold *os.File
	if len(c.input) > 0 {
		p.cmd.Stdin = strings.NewReader(strings.Join(c.input, "\n") + "\n")
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			s.t.Fatal(err)
		}
		defer r.Close()
		p.cmd.Stdin, hold = r, w
	}
	if err := p.cmd.Start(); err != nil {
		s.t.Fatalf("%s: %v", p.what, err)
	}
	go func() { // ends when the command does
		p.cmd.Wait()
		if hold != nil {
			hold.Close()
		}
		close(p.done)
	}()
	return p
}

// stop ends p and its children: SIGINT, as Ctrl-C would, then SIGKILL.
func (p *proc) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (s *shell) stopAll() {
	for _, p := range s.subs {
		p.stop()
	}
	if s.node != nil {
		s.node.stop()
	}
}

func (s *shell) run(doc string, c command) {
	t := s.t
	if why, ok := notRun[stripComment(c.text)]; ok {
		t.Logf("%s:%d: not run (%s): %s", doc, c.line, why, c.text)
		return
	}
	dir := s.cwd[c.block]
	if dir == "" {
		dir = s.root
	}
	text := strings.ReplaceAll(c.text, nodeCmd, s.bin)
	text = strings.ReplaceAll(text, "127.0.0.1:8080", s.addr)
	if m := cdPrefix.FindStringSubmatch(c.text); m != nil {
		s.cwd[c.block] = filepath.Join(dir, m[1])
	}
	switch {
	case startsNode(c.text):
		if s.node != nil { // a document starting the node again: restart it
			s.node.stop()
		}
		s.node = s.start(c, text, dir)
		deadline := time.After(60 * time.Second)
		for !strings.Contains(s.node.output(), "FraiseQL node ready") {
			select {
			case <-s.node.done:
				t.Fatalf("%s:%d: the node exited: %s\n%s", doc, c.line, c.text, s.node.output())
			case <-deadline:
				t.Fatalf("%s:%d: the node was not ready in 60 s: %s\n%s", doc, c.line, c.text, s.node.output())
			case <-time.After(50 * time.Millisecond):
			}
		}
	case strings.Contains(c.text, "subscribe.mjs"):
		// A subscriber runs until interrupted; one that ends within 10 s
		// (an error it reports) is an ordinary command.
		p := s.start(c, text, dir)
		select {
		case <-p.done:
			s.checkExit(doc, c, p)
		case <-time.After(10 * time.Second):
			if !strings.Contains(p.output(), "connected to") {
				t.Fatalf("%s:%d: the subscriber did not connect in 10 s: %s\n%s", doc, c.line, c.text, p.output())
			}
			s.subs = append(s.subs, p)
		}
	case strings.Contains(c.text, "wscat"):
		// It sends what its -x flags say, prints the answers, and closes
		// after -w seconds: the node must have acknowledged the connection
		// and refused nothing.
		p := s.start(c, text, dir)
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			p.stop()
			t.Fatalf("%s:%d: still running after 1 min: %s\n%s", doc, c.line, c.text, p.output())
		}
		s.checkExit(doc, c, p)
		if out := p.output(); !strings.Contains(out, `{"type":"connection_ack"}`) || strings.Contains(out, `"type":"error"`) {
			t.Fatalf("%s:%d: want a connection_ack and no error: %s\n%s", doc, c.line, c.text, out)
		}
	default:
		p := s.start(c, text, dir)
		select {
		case <-p.done:
		case <-time.After(3 * time.Minute):
			p.stop()
			t.Fatalf("%s:%d: still running after 3 min: %s\n%s", doc, c.line, c.text, p.output())
		}
		s.checkExit(doc, c, p)
	}
}

func (s *shell) checkExit(doc string, c command, p *proc) {
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Fatalf("%s:%d: exit %d: %s\n%s", doc, c.line, code, c.text, p.output())
	}
	s.t.Logf("%s:%d: ok: %s", doc, c.line, c.text)
}

// checkSubscribers: every subscriber left running received a result, from
// the publish commands the document showed after it.
func (s *shell) checkSubscribers(doc string) {
	for _, p := range s.subs {
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(p.output(), `{"data":`) {
			if time.Now().After(deadline) {
				s.t.Fatalf("%s: the subscriber received nothing: %s\n%s", doc, p.what, p.output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

var cdPrefix = regexp.MustCompile(`^cd (\S+) &&`)

// startsNode reports whether the command runs the node itself (serve)
// rather than one of its other commands.
func startsNode(text string) bool {
	rest, ok := strings.CutPrefix(stripComment(text), nodeCmd)
	if !ok {
		return false
	}
	f := strings.Fields(rest)
	return len(f) == 0 || f[0] == "serve" || strings.HasPrefix(f[0], "-")
}

func stripComment(text string) string {
	if i := strings.Index(text, " #"); i >= 0 && !strings.ContainsAny(text[:i], `'"`) {
		text = text[:i]
	}
	return strings.TrimSpace(text)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestCommandsExtracted checks the extraction on a sample: blocks,
// continuations, typed input and comments.
func TestCommandsExtracted(t *testing.T) {
	md := "text\n\n```sh\ngo run ./cmd/fraiseql-node   # start\n# a comment\nfoo \\\n  --bar\n```\n\n```json\n{}\n```\n\n   ```sh\n   wscat -c x\n   > hello\n   ```\n"
	got := commands(t, md)
	want := []command{
		{line: 4, text: "go run ./cmd/fraiseql-node   # start", block: 1},
		{line: 6, text: "foo  --bar", block: 1},
		{line: 15, text: "wscat -c x", input: []string{"hello"}, block: 2},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("commands = %+v\nwant       %+v", got, want)
	}
	if !startsNode(got[0].text) || startsNode("go run ./cmd/fraiseql-node publish chat.r1 '{}'") || !startsNode("go run ./cmd/fraiseql-node --config x") {
		t.Fatal("startsNode misclassifies")
	}
}
