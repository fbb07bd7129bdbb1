package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestNiceCeilAndShort(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{{0, 1}, {0.7, 1}, {3, 5}, {12, 20}, {99000, 100000}, {100001, 200000}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   float64
		want string
	}{{0, "0"}, {40, "40"}, {1500, "1.5k"}, {2e6, "2m"}} {
		if got := short(tc.in); got != tc.want {
			t.Errorf("short(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFontCoversLabels(t *testing.T) {
	for _, r := range "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ./-()%: " {
		if _, ok := font3x5[r]; !ok {
			t.Errorf("no glyph for %q", r)
		}
	}
}

func TestPlotWritesPNG(t *testing.T) {
	dir := t.TempDir()
	rep := `{"mode":"saturate","windows":[
	 {"offered_rate":10,"deliveries_per_s":20000,"latency":{"p99_ms":3}},
	 {"offered_rate":12.5,"deliveries_per_s":25000,"latency":{"p99_ms":4}},
	 {"offered_rate":15.6,"deliveries_per_s":29000,"latency":{"p99_ms":700}}]}`
	in := filepath.Join(dir, "sat.json")
	if err := os.WriteFile(in, []byte(rep), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "sat.png")
	var stderr bytes.Buffer
	if code := run([]string{"-o", out, in, in}, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 900 || b.Dy() != 540 {
		t.Fatalf("size %v", b)
	}
	if code := run([]string{"-o", out, filepath.Join(dir, "missing.json")}, &stderr); code != 1 {
		t.Fatalf("missing input: exit %d", code)
	}
}

func TestLineStaysBetweenEndpoints(t *testing.T) {
	for _, seg := range [][4]int{{10, 10, 90, 40}, {90, 40, 10, 10}, {50, 5, 52, 95}, {5, 50, 95, 50}, {30, 30, 30, 30}} {
		img := image.NewRGBA(image.Rect(0, 0, 100, 100))
		line(img, seg[0], seg[1], seg[2], seg[3], black)
		x0, x1 := min(seg[0], seg[2]), max(seg[0], seg[2])+1 // the line is 2 px thick
		y0, y1 := min(seg[1], seg[3]), max(seg[1], seg[3])+1
		for y := 0; y < 100; y++ {
			for x := 0; x < 100; x++ {
				if img.RGBAAt(x, y).A != 0 && (x < x0 || x > x1 || y < y0 || y > y1) {
					t.Fatalf("segment %v drew (%d,%d)", seg, x, y)
				}
			}
		}
		if img.RGBAAt(seg[2], seg[3]).A == 0 {
			t.Fatalf("segment %v misses its end", seg)
		}
	}
}

// TestPlotTellsServersApart: a Centrifugo run is drawn in its own
// colours, with a legend; a chart of the node alone has neither.
func TestPlotTellsServersApart(t *testing.T) {
	pts := []point{{10, 20000, 3}, {20, 40000, 50}, {40, 60000, 900}}
	has := func(img *image.RGBA, c color.RGBA) bool {
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if img.RGBAAt(x, y) == c {
					return true
				}
			}
		}
		return false
	}
	both, err := chart([]run1{{"fraiseql", pts}, {"centrifugo", pts[:2]}}, 900, 540, "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []color.RGBA{blue, red, teal, orange} {
		if !has(both, c) {
			t.Fatalf("colour %v missing from a chart of both servers", c)
		}
	}
	alone, err := chart([]run1{{"fraiseql", pts}}, 900, 540, "t")
	if err != nil {
		t.Fatal(err)
	}
	if has(alone, teal) || has(alone, orange) {
		t.Fatal("Centrifugo's colours in a chart of the node alone")
	}
}
