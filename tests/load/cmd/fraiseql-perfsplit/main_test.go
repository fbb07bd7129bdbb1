package main

import (
	"bytes"
	"strings"
	"testing"
)

// sample is one perf script sample: a header, then its frames leaf first.
func sample(frames ...string) string {
	var b strings.Builder
	b.WriteString("fraiseql-node 4242 \n")
	for _, f := range frames {
		b.WriteString("\t" + f + "\n")
	}
	return b.String() + "\n"
}

const (
	kWrite  = "ffffffff8200d68f tcp_sendmsg_locked"
	kSleep  = "ffffffff816b8cd8 do_nanosleep"
	uDirect = "b7786e github.com/fraiseql/subscriptions/ws.(*directWriter).write"
	uFlush  = "b80000 github.com/fraiseql/subscriptions/ws.(*Conn).flush"
	uSubmit = "b91000 github.com/fraiseql/subscriptions/internal/uring.(*Ring).Submit"
	uPin    = "b92000 github.com/fraiseql/subscriptions/ws.(*uringBatch).pin"
	uURing  = "b93000 github.com/fraiseql/subscriptions/ws.flushConnsURing"
	uRound  = "beaf38 github.com/fraiseql/subscriptions/ws.(*Fanout).write"
	uSysmon = "4a1234 runtime.sysmon"
	uExit   = "93d81 runtime.goexit.abi0"
	uNATS   = "8a1000 github.com/nats-io/nats%2ego.(*Conn).processMsg"
	kArm64  = "ffff800080123456 tcp_sendmsg"
)

func TestSplitsSamplesByWhatTheNodeDid(t *testing.T) {
	in := sample(kWrite, uDirect, uFlush, uRound, uExit) + // a write: the direct writer wins over the round below it
		sample(kWrite, uSubmit, uPin, uURing, uRound, uExit) + // the same through io_uring
		sample(uFlush, uRound, uExit) + // the round's own user-space work
		sample(kSleep, uSysmon) +
		sample("4b0000 main.somethingElse") +
		sample(uNATS, uExit) +
		sample(kArm64, uNATS, uExit)
	var out bytes.Buffer
	if err := run([]string{"-cpu-per-delivery", "10"}, strings.NewReader(in), &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| direct writes of the write rounds (`write(2)` or io_uring) | 28.6% | 28.6% | 0.0% | 2.86 |",
		"| routing, queuing, round bookkeeping | 14.3% | 0.0% | 14.3% | 1.43 |",
		"| Go runtime: sysmon | 14.3% | 14.3% | 0.0% | 1.43 |",
		"| NATS client | 28.6% | 14.3% | 14.3% | 2.86 |",
		"| other | 14.3% | 0.0% | 14.3% | 1.43 |",
		"| all (7 samples) | 100% | 57.1% | 42.9% | 10.00 |",
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("missing row %q in\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "NATS server") {
		t.Errorf("a group with no samples has a row:\n%s", out.String())
	}
}

// TestReadsPerfScriptPadding: perf pads the frame lines with a tab and
// spaces, and ends each sample with an empty line.
func TestReadsPerfScriptPadding(t *testing.T) {
	in := "fraiseql-node 13770 \n" +
		"\tffffffff8200d68f tcp_sendmsg_locked\n" +
		"\t          b7786e github.com/fraiseql/subscriptions/ws.(*directWriter).write\n" +
		"\n" +
		"fraiseql-node 13771 \n" +
		"\t           4a1234 runtime.sysmon\n" +
		"\n"
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(in), &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| direct writes of the write rounds (`write(2)` or io_uring) | 50.0% | 50.0% | 0.0% |\n",
		"| Go runtime: sysmon | 50.0% | 0.0% | 50.0% |\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing row %q in\n%s", want, out.String())
		}
	}
}

func TestWithoutCPUPerDeliveryHasNoMicrosecondColumn(t *testing.T) {
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(sample(kWrite, uDirect)), &out, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "µs") || !strings.Contains(out.String(), "| all (1 samples) | 100% | 100.0% | 0.0% |\n") {
		t.Errorf("got\n%s", out.String())
	}
}

func TestRefusesInputWithoutSamples(t *testing.T) {
	var out bytes.Buffer
	err := run(nil, strings.NewReader("not perf output at all"), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "no samples") {
		t.Fatalf("got %v, want a no-samples error", err)
	}
	if err := run([]string{"-cpu-per-delivery", "-1"}, strings.NewReader(""), &out, &out); err == nil {
		t.Fatal("a negative -cpu-per-delivery was accepted")
	}
	if err := run([]string{"a", "b"}, strings.NewReader(""), &out, &out); err == nil {
		t.Fatal("two inputs were accepted")
	}
}
