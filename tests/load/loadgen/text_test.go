//go:build linux

package loadgen

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"strings"
	"testing"
)

// deflated is the size of b deflated on its own.
func deflated(w *flate.Writer, b []byte) int {
	var out bytes.Buffer
	w.Reset(&out)
	_, _ = w.Write(b)
	_ = w.Close()
	return out.Len()
}

// TestTextPayload: -payload-kind text gives bodies of the same size as
// 'x' padding, valid JSON that the readers' fast path still takes
// (the id comes first, no "dropped" key), a different text in each
// event, and a compression ratio like real text's (a 512-byte English
// message deflates to roughly half), not the 'x's' 30 to 1.
func TestTextPayload(t *testing.T) {
	var ps phases
	x := newPublisher(nil, []string{"lg1-0"}, 512, &ps)
	txt := newPublisher(nil, []string{"lg1-0"}, 512, &ps)
	txt.useText()
	if x.bodySize() != txt.bodySize() {
		t.Fatalf("body sizes %d (x) and %d (text)", x.bodySize(), txt.bodySize())
	}
	if a, b := textCorpus(1000), textCorpus(1000); a != b || len(a) < 1000 {
		t.Fatalf("the corpus is not the same each time, or short: %d bytes", len(a))
	}
	w, err := flate.NewWriter(nil, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	var xSize, tSize, plain int
	prev := ""
	for seq := uint64(1); seq <= 200; seq++ {
		pad := txt.padFor(seq)
		if len(pad) != len(x.pad) || pad == prev || strings.Contains(pad, "xxxx") {
			t.Fatalf("seq %d: pad %q (%d bytes, want %d)", seq, pad, len(pad), len(x.pad))
		}
		prev = pad
		body := txt.body(nil, 0, seq, 1, pad)
		var m struct {
			ID   string `json:"id"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(body, &m); err != nil || m.Text != pad || bytes.Contains(body, dropKey) || bytes.ContainsAny([]byte(pad), "\"\\\n") {
			t.Fatalf("seq %d: body %s: %v", seq, body, err)
		}
		plain += len(body)
		tSize += deflated(w, body)
		xSize += deflated(w, x.body(nil, 0, seq, 1, x.pad))
	}
	ratio, xRatio := float64(plain)/float64(tSize), float64(plain)/float64(xSize)
	t.Logf("deflate ratio of a body: text %.2f, x %.2f", ratio, xRatio)
	if ratio < 1.3 || ratio > 2.5 || xRatio < 4 {
		t.Fatalf("deflate ratio text %.2f (want 1.3..2.5), x %.2f", ratio, xRatio)
	}
	if got := textAt("abc", 5, 0); got != "" {
		t.Fatalf("textAt n=0: %q", got)
	}
	for seq := range uint64(50) { // the window always fits: n = len, len-1
		if got := textAt("abcdef", seq, 6); got != "abcdef" {
			t.Fatalf("textAt whole: %q", got)
		}
		if got := textAt("abcdef", seq, 5); len(got) != 5 {
			t.Fatalf("textAt 5 of 6: %q", got)
		}
	}
}
