// Command fraiseql-perfsplit splits a node's CPU samples by what the node
// was doing: the direct writes of the write rounds, routing and queuing,
// the Go runtime's sysmon, the embedded NATS server, and so on, each with
// its kernel and user-space share and, given the run's CPU per delivery,
// its microseconds per delivery. It reads the text of
//
//	perf record -e cpu-clock -g -p <node pid> -o node.data -- sleep 10
//	perf script -i node.data -F comm,tid,ip,sym | fraiseql-perfsplit -cpu-per-delivery 7.8
//
// A sample goes to the first group (in the order of the output's rows)
// that one of its stack's functions belongs to; kernel or user space is
// where the sample itself was taken. The output is a Markdown table, as in
// docs/benchmarks.md.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// group is a row of the output: a sample whose stack has a function
// containing one of match belongs to it.
type group struct {
	name  string
	match []string
}

// groups are tried in order; "other" takes the rest.
var groups = []group{
	{"direct writes of the write rounds (`write(2)` or io_uring)", []string{"ws.(*directWriter)", "ws.(*uringBatch)", "internal/uring.(*Ring)"}},
	{"write goroutines (hand-offs, keep-alives)", []string{"ws.(*Conn).writeLoop", "ws.(*Conn).keepAliveDue"}},
	{"routing, queuing, round bookkeeping", []string{"node.(*Node).route", "node.(*router)", "ws.(*Fanout)", "ws.(*Conn).flush", "cluster.(*Consumer)"}},
	{"connection reads", []string{"ws.(*Conn).readLoop"}},
	{"Go runtime: sysmon", []string{"runtime.sysmon"}},
	{"embedded NATS server", []string{"nats-server/v2/"}},
	{"NATS client", []string{"nats-io/nats%2ego", "nats-io/nats.go"}}, // symbols spell the path's last dot %2e
	{"Go runtime: GC", []string{"runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.bgsweep", "runtime.bgscavenge", "runtime.mallocgc"}},
	{"Go runtime: netpoll", []string{"runtime.netpoll"}},
	{"Go runtime: scheduler (threads parking and waking)", []string{"runtime.schedule", "runtime.findRunnable", "runtime.mstart", "runtime.notesleep", "runtime.notewakeup", "runtime.futex"}},
}

const other = "other"

// tally counts samples per group, split by where each was taken.
type tally struct {
	kernel, user map[string]int
	total        int
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fraiseql-perfsplit:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fraiseql-perfsplit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	perDelivery := fs.Float64("cpu-per-delivery", 0, "the run's µs of CPU per delivery (fraiseql-loadgen's server_cpu_us_per_delivery): adds a µs-per-delivery column")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *perDelivery < 0 {
		return fmt.Errorf("-cpu-per-delivery must not be negative")
	}
	in := stdin
	switch fs.NArg() {
	case 0:
	case 1:
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	default:
		return fmt.Errorf("one input at most (perf script output), got %d", fs.NArg())
	}
	t, err := read(in)
	if err != nil {
		return err
	}
	if t.total == 0 {
		return fmt.Errorf("no samples: feed it `perf script -F comm,tid,ip,sym` of a `perf record -g` profile")
	}
	write(stdout, t, *perDelivery)
	return nil
}

// read parses perf script's text: a sample is a header line, then one
// indented "address symbol" line per stack frame, leaf first, then a
// blank line.
func read(r io.Reader) (tally, error) {
	t := tally{kernel: map[string]int{}, user: map[string]int{}}
	var stack []string
	kernel, inSample := false, false
	end := func() {
		if inSample && len(stack) > 0 {
			g := classify(stack)
			if kernel {
				t.kernel[g]++
			} else {
				t.user[g]++
			}
			t.total++
		}
		stack, inSample = stack[:0], false
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			end()
		case line[0] != ' ' && line[0] != '\t': // a sample's header
			end()
			inSample = true
		case inSample:
			addr, sym, _ := strings.Cut(trimmed, " ")
			if len(stack) == 0 {
				kernel = kernelAddr(addr)
			}
			stack = append(stack, sym)
		}
	}
	end()
	return t, sc.Err()
}

// kernelAddr reports whether a sample's address is in the kernel's half
// of the address space (x86-64 and arm64 both put it at the top).
func kernelAddr(hex string) bool {
	a, err := strconv.ParseUint(hex, 16, 64)
	return err == nil && a >= 0xffff800000000000
}

func classify(stack []string) string {
	for _, g := range groups {
		for _, fn := range stack {
			for _, m := range g.match {
				if strings.Contains(fn, m) {
					return g.name
				}
			}
		}
	}
	return other
}

func write(w io.Writer, t tally, perDelivery float64) {
	pct := func(n int) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(t.total)) }
	fmt.Fprint(w, "| what the node was doing | share of samples | in the kernel | in user space |")
	if perDelivery > 0 {
		fmt.Fprint(w, " µs per delivery |")
	}
	fmt.Fprint(w, "\n|---|---|---|---|")
	if perDelivery > 0 {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	var kernel, user int
	rows := make([]string, 0, len(groups)+1)
	for _, g := range groups {
		rows = append(rows, g.name)
	}
	for _, name := range append(rows, other) {
		k, u := t.kernel[name], t.user[name]
		kernel, user = kernel+k, user+u
		if k+u == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |", name, pct(k+u), pct(k), pct(u))
		if perDelivery > 0 {
			fmt.Fprintf(w, " %.2f |", perDelivery*float64(k+u)/float64(t.total))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "| all (%d samples) | 100%% | %s | %s |", t.total, pct(kernel), pct(user))
	if perDelivery > 0 {
		fmt.Fprintf(w, " %.2f |", perDelivery)
	}
	fmt.Fprintln(w)
}
