// Command fraiseql-plot draws a PNG line chart from fraiseql-loadgen
// saturation reports: deliveries/s (blue, left axis) and p99 latency (red,
// right axis) against the offered event rate. Several reports (e.g. the
// three runs of a scenario) are drawn over each other. Reports of a
// Centrifugo server (fraiseql-loadgen -server centrifugo) are drawn in
// their own colours, teal and orange, with a legend.
//
//	go run ./tests/load/cmd/fraiseql-plot -o saturation.png sat-1.json sat-2.json sat-3.json
//
// It uses only the standard library (image/png and a built-in 3×5 font).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"strconv"
)

// point is one saturation step.
type point struct{ offered, deliveries, p99 float64 }

// run1 is one report's steps, and the server measured.
type run1 struct {
	server string
	pts    []point
}

// report is the part of the loadgen JSON report the chart needs.
type report struct {
	Mode string `json:"mode"`
	Node struct {
		Server string `json:"server"`
	} `json:"node"`
	Windows []struct {
		OfferedRate      float64 `json:"offered_rate"`
		DeliveriesPerSec float64 `json:"deliveries_per_s"`
		Latency          struct {
			P99 float64 `json:"p99_ms"`
		} `json:"latency"`
	} `json:"windows"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("fraiseql-plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "saturation.png", "output PNG")
	width := fs.Int("w", 900, "width in pixels")
	height := fs.Int("h", 540, "height in pixels")
	title := fs.String("title", "", "title (default: from the reports)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: fraiseql-plot [-o out.png] report.json...")
		return 2
	}
	var series []run1
	for _, path := range fs.Args() {
		r, err := load(path)
		if err != nil {
			fmt.Fprintln(stderr, "fraiseql-plot:", err)
			return 1
		}
		series = append(series, r)
	}
	if *title == "" {
		*title = "deliveries/s (blue) and p99 ms (red) vs offered ev/s"
		if legend(series) {
			*title = "deliveries/s and p99 ms vs offered ev/s"
		}
	}
	img, err := chart(series, *width, *height, *title)
	if err != nil {
		fmt.Fprintln(stderr, "fraiseql-plot:", err)
		return 1
	}
	f, err := os.Create(*out)
	if err == nil {
		err = png.Encode(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "fraiseql-plot:", err)
		return 1
	}
	return 0
}

func load(path string) (run1, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return run1{}, err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return run1{}, fmt.Errorf("%s: %w", path, err)
	}
	out := run1{server: r.Node.Server}
	for _, w := range r.Windows {
		out.pts = append(out.pts, point{w.OfferedRate, w.DeliveriesPerSec, w.Latency.P99})
	}
	if len(out.pts) == 0 {
		return run1{}, fmt.Errorf("%s: no windows (is it a loadgen report?)", path)
	}
	return out, nil
}

// legend reports whether the chart needs one: a Centrifugo run is in it.
func legend(series []run1) bool {
	for _, s := range series {
		if s.server == "centrifugo" {
			return true
		}
	}
	return false
}

// colours returns the deliveries and p99 colours of a server's runs.
func colours(server string) (deliveries, p99 color.RGBA) {
	if server == "centrifugo" {
		return teal, orange
	}
	return blue, red
}

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	grid  = color.RGBA{225, 225, 225, 255}
	blue  = color.RGBA{30, 90, 200, 255}
	red   = color.RGBA{200, 40, 40, 255}
	// Centrifugo's runs
	teal   = color.RGBA{20, 160, 150, 255}
	orange = color.RGBA{240, 150, 20, 255}
)

// chart draws the series: x is the offered rate, the left axis
// deliveries/s and the right axis p99 ms, each from 0 to a rounded max.
func chart(series []run1, w, h int, title string) (*image.RGBA, error) {
	if w < 200 || h < 150 || w > 8000 || h > 8000 {
		return nil, errors.New("size must be 200×150 to 8000×8000")
	}
	var maxX, maxD, maxL float64
	for _, s := range series {
		for _, p := range s.pts {
			maxX, maxD, maxL = math.Max(maxX, p.offered), math.Max(maxD, p.deliveries), math.Max(maxL, p.p99)
		}
	}
	maxX, maxD, maxL = niceCeil(maxX), niceCeil(maxD), niceCeil(maxL)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), white)
	const scale = 2
	left, right, top, bottom := 90, w-80, 40, h-50
	drawText(img, (w-textWidth(title, scale))/2, 12, title, scale, black)
	px := func(x float64) int { return left + int(x/maxX*float64(right-left)) }
	pyD := func(v float64) int { return bottom - int(v/maxD*float64(bottom-top)) }
	pyL := func(v float64) int { return bottom - int(v/maxL*float64(bottom-top)) }
	const ticks = 5
	for i := 0; i <= ticks; i++ {
		f := float64(i) / ticks
		y := bottom - int(f*float64(bottom-top))
		line(img, left, y, right, y, grid)
		lbl := short(f * maxD)
		drawText(img, left-8-textWidth(lbl, scale), y-5, lbl, scale, blue)
		drawText(img, right+8, y-5, short(f*maxL), scale, red)
		x := left + int(f*float64(right-left))
		line(img, x, top, x, bottom, grid)
		xl := short(f * maxX)
		drawText(img, x-textWidth(xl, scale)/2, bottom+8, xl, scale, black)
	}
	line(img, left, top, left, bottom, black)
	line(img, right, top, right, bottom, black)
	line(img, left, bottom, right, bottom, black)
	xt := "offered events/s"
	drawText(img, (left+right-textWidth(xt, scale))/2, bottom+28, xt, scale, black)
	drawText(img, 4, top-22, "deliv/s", scale, blue)
	drawText(img, right-10, top-22, "p99 ms", scale, red)
	for _, s := range series {
		cd, cl := colours(s.server)
		for i, p := range s.pts {
			dot(img, px(p.offered), pyD(p.deliveries), cd)
			dot(img, px(p.offered), pyL(p.p99), cl)
			if i > 0 {
				q := s.pts[i-1]
				line(img, px(q.offered), pyD(q.deliveries), px(p.offered), pyD(p.deliveries), cd)
				line(img, px(q.offered), pyL(q.p99), px(p.offered), pyL(p.p99), cl)
			}
		}
	}
	if legend(series) {
		y := top + 8
		for _, l := range []struct {
			text string
			c    color.RGBA
		}{{"FraiseQL deliveries/s", blue}, {"FraiseQL p99 ms", red}, {"Centrifugo deliveries/s", teal}, {"Centrifugo p99 ms", orange}} {
			fill(img, image.Rect(left+10, y, left+24, y+10), l.c)
			drawText(img, left+30, y, l.text, scale, l.c)
			y += 16
		}
	}
	return img, nil
}

// niceCeil rounds v up to 1, 2 or 5 × 10^n (1 for v ≤ 0).
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

// short formats a tick value: 1500 → 1.5k, 2000000 → 2m.
func short(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "m"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.Set(x, y, c)
		}
	}
}

func dot(img *image.RGBA, x, y int, c color.Color) {
	fill(img, image.Rect(x-3, y-3, x+4, y+4), c)
}

// line draws with Bresenham's algorithm, 2 px thick.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for range dx - dy + 1 { // bounded: one pixel per step
		img.Set(x0, y0, c)
		img.Set(x0+1, y0, c)
		img.Set(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
