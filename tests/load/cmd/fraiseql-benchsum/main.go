// Command fraiseql-benchsum summarises fraiseql-loadgen JSON reports as
// the Markdown rows of docs/benchmarks.md: for each scenario (the report
// file name without its trailing -N run number), the median and the
// min–max over its runs of each measure.
//
//	go run ./tests/load/cmd/fraiseql-benchsum /tmp/bench/*.json
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
)

// report holds the parts of a fraiseql-loadgen report that are summarised.
type report struct {
	Mode   string `json:"mode"`
	Memory struct {
		RSSPerConn         float64 `json:"rss_per_conn_bytes"`
		RSSPerConnWithSubs float64 `json:"rss_per_conn_with_subs_bytes"`
	} `json:"memory"`
	Windows    []window `json:"windows"`
	Saturation *struct {
		MaxLossPct float64 `json:"max_loss_pct"`
		MaxP99MS   float64 `json:"max_p99_ms"`
	} `json:"saturation"`
}

type window struct {
	Name        string   `json:"name"`
	Offered     float64  `json:"offered_deliveries_per_s"`
	Deliveries  float64  `json:"deliveries_per_s"`
	LossPct     float64  `json:"loss_pct"`
	Duplicates  float64  `json:"duplicates"`
	Reorders    float64  `json:"reorders"`
	ServerCPUUs float64  `json:"server_cpu_us_per_delivery"`
	ServerCores float64  `json:"server_cores"`
	ClientCores *float64 `json:"client_cores"`
	Latency     *struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"latency"`
}

var runSuffix = regexp.MustCompile(`-\d+$`)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fraiseql-benchsum:", err)
		os.Exit(1)
	}
}

func run(files []string, w io.Writer) error {
	if len(files) == 0 {
		return errors.New("usage: fraiseql-benchsum REPORT.json [REPORT.json ...]")
	}
	byScenario := map[string][]report{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r report
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		name := runSuffix.ReplaceAllString(filepath.Base(f[:len(f)-len(filepath.Ext(f))]), "")
		byScenario[name] = append(byScenario[name], r)
	}
	names := make([]string, 0, len(byScenario))
	for n := range byScenario {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "| scenario | runs | deliveries/s | loss % | p50 ms | p99 ms | server µs CPU/delivery | server cores | client cores | RSS/conn KiB | RSS/conn+sub KiB |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, n := range names {
		runs := byScenario[n]
		var del, loss, p50, p99, cpu, sc, cc, rss, rssSub []float64
		for _, r := range runs {
			win, ok := best(r)
			if !ok {
				continue
			}
			// A measure a report lacks (fraiseql-writefloor has no
			// latency, client or memory) shows as "–", not as 0.
			del, loss = append(del, win.Deliveries), append(loss, win.LossPct)
			cpu, sc = append(cpu, win.ServerCPUUs), append(sc, win.ServerCores)
			if win.Latency != nil {
				p50, p99 = append(p50, win.Latency.P50), append(p99, win.Latency.P99)
			}
			if win.ClientCores != nil {
				cc = append(cc, *win.ClientCores)
			}
			if r.Memory.RSSPerConn > 0 {
				rss = append(rss, r.Memory.RSSPerConn/1024)
				rssSub = append(rssSub, r.Memory.RSSPerConnWithSubs/1024)
			}
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n, len(runs),
			stat(del, "%.0f"), stat(loss, "%.3f"), stat(p50, "%.1f"), stat(p99, "%.1f"),
			stat(cpu, "%.1f"), stat(sc, "%.2f"), stat(cc, "%.2f"), stat(rss, "%.1f"), stat(rssSub, "%.1f"))
	}
	return nil
}

// best is the window a run is judged by: the measured window, or for a
// saturation run the highest step that passed.
func best(r report) (window, bool) {
	if r.Mode != "saturate" {
		for _, w := range r.Windows {
			if w.Name == "measure" {
				return w, true
			}
		}
		if len(r.Windows) > 0 {
			return r.Windows[0], true
		}
		return window{}, false
	}
	if r.Saturation == nil {
		return window{}, false
	}
	var top window
	found := false
	for _, w := range r.Windows {
		passed := w.LossPct <= r.Saturation.MaxLossPct && w.Latency != nil && w.Latency.P99 <= r.Saturation.MaxP99MS
		if passed && w.Deliveries > top.Deliveries {
			top, found = w, true
		}
	}
	return top, found
}

// stat formats the median and, over several runs, the min–max.
func stat(v []float64, f string) string {
	if len(v) == 0 {
		return "–"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if len(s) == 1 {
		return fmt.Sprintf(f, med)
	}
	return fmt.Sprintf(f+" ("+f+"–"+f+")", med, s[0], s[len(s)-1])
}
