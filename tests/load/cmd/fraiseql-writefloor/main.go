//go:build linux

// Command fraiseql-writefloor measures what a delivery costs on this
// machine when it is nothing but its own write(2): the floor under the
// node's CPU per delivery at low rates.
//
// It opens -conns loopback TCP connections to a reader process of its own
// (this binary again, one goroutine per connection reading, as the load
// generator's clients do), then -rate times a second writes -frames frames
// of -size bytes to every connection with one raw write(2) each: no
// WebSocket, no routing, no JetStream, no allocation. The CPU this process
// spends (user + system, from getrusage) divided by the writes is what the
// kernel charges the sender for one write; on loopback that includes the
// receiving socket's TCP work and the reader's wake-up.
//
//	fraiseql-writefloor -conns 2000 -rate 20 -duration 30s          # as scenario cpu-per-delivery
//	fraiseql-writefloor -conns 2000 -rate 10 -frames 2 -duration 30s # two frames per write, as ws.write_delay gives
//	fraiseql-writefloor -conns 2000 -rate 20 -engine io_uring        # the same sends, 64 per io_uring_enter, as the node's write rounds
//
// The report (and -out JSON, readable by fraiseql-benchsum) gives CPU per
// write and per frame, and checks that the reader got every byte written.
// Only loopback addresses are used; every loop is bounded by -duration.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/fraiseql/subscriptions/internal/uring"
	"github.com/fraiseql/subscriptions/tests/load/loadgen"
)

// readerEnv makes this binary the reader: "ADDR CONNS".
const readerEnv = "FRAISEQL_WRITEFLOOR_READER"

func main() {
	if spec := os.Getenv(readerEnv); spec != "" {
		os.Exit(reader(spec, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type config struct {
	conns, size, frames int
	writers             int
	engine              string
	rate                float64
	duration, warmup    time.Duration
	out                 string
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("fraiseql-writefloor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.conns, "conns", 2000, "connections (1..20000)")
	fs.Float64Var(&c.rate, "rate", 20, "write rounds per second; each round writes once to every connection (0 < rate <= 10000)")
	fs.IntVar(&c.size, "size", 540, "bytes per frame (1..65536); 540 is about the frame a 512-byte load-tool event becomes")
	fs.IntVar(&c.frames, "frames", 1, "frames per write (1..64), as several queued events share one write")
	fs.IntVar(&c.writers, "writers", 1, "goroutines sharing each round's writes (1..64), as the node splits a large write round over GOMAXPROCS goroutines")
	fs.StringVar(&c.engine, "engine", "write", "how each write is made: write (one write(2) each) or io_uring (non-blocking sends, 64 per io_uring_enter, as the node's write rounds with ws.io_uring)")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "measured time (1ms..1h)")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured writing first (0..1m)")
	fs.StringVar(&c.out, "out", "", "write the JSON report to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case c.conns < 1 || c.conns > 20000:
		return c, fmt.Errorf("-conns %d: want 1..20000", c.conns)
	case !(c.rate > 0 && c.rate <= 10000):
		return c, fmt.Errorf("-rate %g: want 0 < rate <= 10000", c.rate)
	case c.size < 1 || c.size > 65536:
		return c, fmt.Errorf("-size %d: want 1..65536", c.size)
	case c.frames < 1 || c.frames > 64:
		return c, fmt.Errorf("-frames %d: want 1..64", c.frames)
	case c.engine != "write" && c.engine != "io_uring":
		return c, fmt.Errorf("-engine %q: want write or io_uring", c.engine)
	case c.writers < 1 || c.writers > 64:
		return c, fmt.Errorf("-writers %d: want 1..64", c.writers)
	case c.duration < time.Millisecond || c.duration > time.Hour:
		return c, fmt.Errorf("-duration %s: want 1ms..1h", c.duration)
	case c.warmup < 0 || c.warmup > time.Minute:
		return c, fmt.Errorf("-warmup %s: want 0..1m", c.warmup)
	}
	return c, nil
}

// Report is the JSON report. Windows holds one "measure" window in the
// load tool's shape, so fraiseql-benchsum summarises runs of this tool
// beside the scenarios: there a "delivery" is a frame and the "server" is
// this process.
type Report struct {
	Mode           string   `json:"mode"`
	Engine         string   `json:"engine"`
	Conns          int      `json:"conns"`
	Writers        int      `json:"writers"`
	Rate           float64  `json:"rate"`
	Size           int      `json:"size"`
	FramesPerWrite int      `json:"frames_per_write"`
	DurationS      float64  `json:"duration_s"`
	Writes         uint64   `json:"writes"`
	ShortWrites    uint64   `json:"short_writes"`
	CPUSeconds     float64  `json:"cpu_seconds"`
	CPUUsPerWrite  float64  `json:"cpu_us_per_write"`
	CPUUsPerFrame  float64  `json:"cpu_us_per_frame"`
	BytesWritten   uint64   `json:"bytes_written"`
	BytesRead      uint64   `json:"bytes_read"`
	Windows        []window `json:"windows"`
}

type window struct {
	Name        string  `json:"name"`
	Offered     float64 `json:"offered_deliveries_per_s"`
	Deliveries  float64 `json:"deliveries_per_s"`
	ServerCPUUs float64 `json:"server_cpu_us_per_delivery"`
	ServerCores float64 `json:"server_cores"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "fraiseql-writefloor:", err)
		}
		return 2
	}
	if _, err := loadgen.RaiseNoFile(); err != nil {
		fmt.Fprintln(stderr, "fraiseql-writefloor: raising RLIMIT_NOFILE:", err)
	}
	rep, err := measure(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, "fraiseql-writefloor:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d conns × %g writes/s of %d × %d bytes for %s: %d writes (%d short), %.3f s CPU\n",
		rep.Conns, rep.Rate, rep.FramesPerWrite, rep.Size, c.duration, rep.Writes, rep.ShortWrites, rep.CPUSeconds)
	fmt.Fprintf(stdout, "  %.2f µs CPU per write, %.2f µs per frame; reader got %d of %d bytes\n",
		rep.CPUUsPerWrite, rep.CPUUsPerFrame, rep.BytesRead, rep.BytesWritten)
	if c.out != "" {
		raw, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(c.out, append(raw, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "fraiseql-writefloor:", err)
			return 1
		}
	}
	if rep.BytesRead != rep.BytesWritten {
		fmt.Fprintf(stderr, "fraiseql-writefloor: the reader got %d bytes of %d written\n", rep.BytesRead, rep.BytesWritten)
		return 1
	}
	return 0
}

// measure runs the reader, writes for warmup+duration and reports.
func measure(ctx context.Context, c config) (*Report, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// The reader is bounded by the connections: it ends when they close.
	// The context kills it if this process stops early.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(rctx, self)
	cmd.Env = append(os.Environ(), readerEnv+"="+ln.Addr().String()+" "+strconv.Itoa(c.conns))
	cmd.Stderr = os.Stderr
	rout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	conns, fds, err := accept(ln, c.conns, 30*time.Second)
	closeAll := func() {
		for _, cn := range conns {
			cn.Close()
		}
	}
	if err != nil {
		closeAll()
		cmd.Wait()
		return nil, err
	}

	buf := make([]byte, c.size*c.frames)
	for i := range buf {
		buf[i] = 'x'
	}
	ws := shards(fds, conns, buf, c.writers)
	if c.engine == "io_uring" {
		for i := range ws {
			r, err := uring.New(64)
			if err != nil {
				closeAll()
				cmd.Wait()
				return nil, fmt.Errorf("-engine io_uring: %w", err)
			}
			defer r.Close()
			ws[i].ring = r
		}
	}
	if err := rounds(ctx, ws, c.rate, c.warmup); err != nil {
		closeAll()
		cmd.Wait()
		return nil, err
	}
	var warm writer
	for i := range ws {
		warm.add(&ws[i])
		ws[i].writes, ws[i].short, ws[i].bytes = 0, 0, 0
	}
	cpu0, t0 := loadgen.SelfCPU(), time.Now()
	err = rounds(ctx, ws, c.rate, c.duration)
	cpu, elapsed := loadgen.SelfCPU()-cpu0, time.Since(t0)
	closeAll()
	var measured writer
	for i := range ws {
		measured.add(&ws[i])
	}
	read, rerr := readCount(rout)
	werr := cmd.Wait()
	if err != nil {
		return nil, err
	}
	if rerr != nil || werr != nil {
		return nil, fmt.Errorf("reader: %v", errors.Join(rerr, werr))
	}
	if measured.writes == 0 {
		return nil, errors.New("no write was made: -duration shorter than one round")
	}
	rep := &Report{
		Mode: "write-floor", Engine: c.engine, Conns: c.conns, Writers: len(ws), Rate: c.rate, Size: c.size, FramesPerWrite: c.frames,
		DurationS: elapsed.Seconds(), Writes: measured.writes, ShortWrites: measured.short,
		CPUSeconds:    cpu.Seconds(),
		CPUUsPerWrite: float64(cpu.Microseconds()) / float64(measured.writes),
		BytesWritten:  warm.bytes + measured.bytes, BytesRead: read,
	}
	rep.CPUUsPerFrame = rep.CPUUsPerWrite / float64(c.frames)
	frames := float64(measured.writes) * float64(c.frames)
	rep.Windows = []window{{
		Name:        "measure",
		Offered:     c.rate * float64(c.conns) * float64(c.frames),
		Deliveries:  frames / elapsed.Seconds(),
		ServerCPUUs: rep.CPUUsPerFrame,
		ServerCores: cpu.Seconds() / elapsed.Seconds(),
	}}
	return rep, nil
}

// accept takes n connections and their descriptors. The conns are kept so
// that the descriptors stay open; Go made them non-blocking.
func accept(ln net.Listener, n int, limit time.Duration) ([]net.Conn, []uintptr, error) {
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(limit))
	conns := make([]net.Conn, 0, n)
	fds := make([]uintptr, 0, n)
	for len(conns) < n {
		cn, err := ln.Accept()
		if err != nil {
			return conns, nil, fmt.Errorf("accepted %d of %d connections: %w", len(conns), n, err)
		}
		conns = append(conns, cn)
		rc, err := cn.(*net.TCPConn).SyscallConn()
		if err != nil {
			return conns, nil, err
		}
		rc.Control(func(fd uintptr) { fds = append(fds, fd) })
	}
	return conns, fds, nil
}

// writer writes one share of the connections in each round.
type writer struct {
	fds   []uintptr
	conns []net.Conn
	buf   []byte
	ring  *uring.Ring // -engine io_uring
	res   []int32     // the ring's results, by connection of a batch

	writes, short, bytes uint64
}

func (w *writer) add(o *writer) {
	w.writes, w.short, w.bytes = w.writes+o.writes, w.short+o.short, w.bytes+o.bytes
}

// shards splits the connections into n near-equal writers.
func shards(fds []uintptr, conns []net.Conn, buf []byte, n int) []writer {
	n = min(n, len(fds))
	size := (len(fds) + n - 1) / n
	var ws []writer
	for i := 0; i < len(fds); i += size {
		j := min(i+size, len(fds))
		ws = append(ws, writer{fds: fds[i:j], conns: conns[i:j], buf: buf})
	}
	return ws
}

// rounds makes a round rate times a second for d: the writers write
// their shares at once, the first on this goroutine, as the node's write
// round does.
func rounds(ctx context.Context, ws []writer, rate float64, d time.Duration) error {
	period := time.Duration(float64(time.Second) / rate)
	errs := make([]error, len(ws))
	start := time.Now()
	for next := start; time.Since(start) < d; next = next.Add(period) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		var wg sync.WaitGroup
		for i := 1; i < len(ws); i++ {
			wg.Go(func() { errs[i] = ws[i].round() }) // waited for below
		}
		errs[0] = ws[0].round()
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return nil
}

// round writes buf once to each of w's connections. A write the socket
// does not take whole (it should not happen at these rates) is counted as
// short and finished with a blocking write, so that the reader's count
// stays comparable.
func (w *writer) round() error {
	if w.ring != nil {
		return w.roundURing()
	}
	p := uintptr(unsafe.Pointer(&w.buf[0]))
	for i, fd := range w.fds {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, p, uintptr(len(w.buf)))
		w.writes++
		if errno != 0 && errno != syscall.EAGAIN {
			return fmt.Errorf("write: %w", errno)
		}
		if errno == syscall.EAGAIN {
			n = 0
		}
		if err := w.wrote(i, int(n)); err != nil {
			return err
		}
	}
	return nil
}

// wrote counts a write to connection i that took n bytes of w.buf,
// finishing a short one with a blocking write.
func (w *writer) wrote(i, n int) error {
	if n < len(w.buf) {
		w.short++
		if _, err := w.conns[i].Write(w.buf[n:]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	w.bytes += uint64(len(w.buf))
	return nil
}

// roundURing is round with the sends of up to 64 connections in one
// io_uring_enter, as the node's write rounds make them.
func (w *writer) roundURing() error {
	size := w.ring.Size()
	if w.res == nil {
		w.res = make([]int32, size)
	}
	for i := 0; i < len(w.fds); i += size {
		batch := w.fds[i:min(i+size, len(w.fds))]
		for j, fd := range batch {
			w.ring.PrepSend(fd, w.buf, j)
		}
		if err := w.ring.Submit(func(tag int, res int32) { w.res[tag] = res }); err != nil {
			return err
		}
		for j, res := range w.res[:len(batch)] {
			w.writes++
			n := int(res)
			switch {
			case res == -int32(syscall.EAGAIN):
				n = 0
			case res < 0:
				return fmt.Errorf("send: %w", syscall.Errno(-res))
			}
			if err := w.wrote(i+j, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// readCount reads the reader's one-line result: "read N".
func readCount(r io.Reader) (uint64, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("no result from the reader: %w", err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "read ")
	if !ok {
		return 0, fmt.Errorf("reader said %q", line)
	}
	return strconv.ParseUint(v, 10, 64)
}

// reader dials the connections named by spec ("ADDR CONNS"), reads each
// until it closes, one goroutine per connection, and prints "read N", the
// bytes it got in all.
func reader(spec string, stdout, stderr io.Writer) int {
	addr, n, ok := strings.Cut(spec, " ")
	conns, err := strconv.Atoi(n)
	if !ok || err != nil || conns < 1 {
		fmt.Fprintf(stderr, "fraiseql-writefloor: bad %s %q\n", readerEnv, spec)
		return 2
	}
	if h, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(h).IsLoopback() {
		fmt.Fprintf(stderr, "fraiseql-writefloor: reader address %q is not loopback\n", addr)
		return 2
	}
	loadgen.RaiseNoFile()
	var total atomic.Uint64
	var wg sync.WaitGroup
	for range conns {
		cn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			fmt.Fprintln(stderr, "fraiseql-writefloor: reader:", err)
			return 1 // the open connections close with the process
		}
		wg.Go(func() {
			defer cn.Close()
			buf := make([]byte, 4096)
			for {
				k, err := cn.Read(buf)
				total.Add(uint64(k))
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	fmt.Fprintf(stdout, "read %d\n", total.Load())
	return 0
}
