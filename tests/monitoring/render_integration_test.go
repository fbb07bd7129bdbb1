//go:build integration

package monitoring

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

// renderData (FRAISEQL_DASHBOARD_DATA=dir, see ops/grafana/render.sh) keeps
// the node under a steady scripted load for renderLoad, then writes each
// dashboard's panels as Prometheus returned them over that window, one
// JSON file per dashboard, for ops/grafana/render.py to draw.
func renderData(t *testing.T, n *node.Node, cl *cluster.Cluster, promURL string, dashboards []string, dir string) {
	const renderLoad = 90 * time.Second
	start := time.Now()
	load(t, n, cl, renderLoad)
	end := time.Now()
	waitScrapes(t, promURL, 2)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range dashboards {
		b, _ := os.ReadFile(f)
		var d struct {
			Title  string `json:"title"`
			Panels []struct {
				Title       string `json:"title"`
				Type        string `json:"type"`
				FieldConfig struct {
					Defaults struct {
						Unit string `json:"unit"`
					} `json:"defaults"`
				} `json:"fieldConfig"`
				Targets []struct {
					Expr   string `json:"expr"`
					Legend string `json:"legendFormat"`
				} `json:"targets"`
			} `json:"panels"`
		}
		json.Unmarshal(b, &d)
		type series struct {
			Legend string       `json:"legend"`
			Points [][2]float64 `json:"points"`
		}
		type panel struct {
			Title  string   `json:"title"`
			Type   string   `json:"type"`
			Unit   string   `json:"unit"`
			Series []series `json:"series"`
		}
		out := struct {
			Title  string  `json:"title"`
			From   int64   `json:"from"`
			To     int64   `json:"to"`
			Panels []panel `json:"panels"`
		}{Title: d.Title, From: start.Unix(), To: end.Unix()}
		for _, p := range d.Panels {
			pp := panel{Title: p.Title, Type: p.Type, Unit: p.FieldConfig.Defaults.Unit}
			for _, tg := range p.Targets {
				for _, r := range queryRange(t, promURL, tg.Expr, start, end) {
					pp.Series = append(pp.Series, series{Legend: legend(tg.Legend, r.Metric), Points: r.Points})
				}
			}
			out.Panels = append(out.Panels, pp)
		}
		b, err := json.MarshalIndent(out, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strings.TrimSuffix(filepath.Base(f), ".json")+".data.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var legendLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

func legend(format string, labels map[string]string) string {
	if format == "" {
		var parts []string
		for k, v := range labels {
			parts = append(parts, k+"="+v)
		}
		return strings.Join(parts, ",")
	}
	return legendLabel.ReplaceAllStringFunc(format, func(m string) string {
		return labels[legendLabel.FindStringSubmatch(m)[1]]
	})
}

type rangeResult struct {
	Metric map[string]string
	Points [][2]float64
}

func queryRange(t *testing.T, base, expr string, start, end time.Time) []rangeResult {
	t.Helper()
	q := url.Values{"query": {expr}, "start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"2"}}
	resp, err := promClient.Get(base + "/api/v1/query_range?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	var out []rangeResult
	for _, s := range r.Data.Result {
		rr := rangeResult{Metric: s.Metric}
		for _, v := range s.Values {
			f, err := strconv.ParseFloat(fmt.Sprint(v[1]), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				continue // JSON has no NaN: a gap in the line
			}
			rr.Points = append(rr.Points, [2]float64{v[0].(float64), f})
		}
		out = append(out, rr)
	}
	return out
}

// load runs the scripted session's steps over and over for d: a steady
// publisher, clients coming and resuming, refused subscribes, and now and
// then a client that stops reading.
func load(t *testing.T, n *node.Node, cl *cluster.Cluster, d time.Duration) {
	deadline := time.Now().Add(d)
	var subs []*client
	var cursor string
	for round := 0; time.Now().Before(deadline); round++ {
		if round%5 == 0 && len(subs) < 40 {
			// The transient clients (refused, resumed, slow) are gone
			// first, so the count below is the new subscription's.
			waitFor(t, "the transient clients gone", func() bool { return n.Stats().Connections == int64(len(subs)) })
			c := dial(t, n)
			c.subscribe("1", "r1", "")
			waitFor(t, "a subscription", func() bool { return n.Stats().Subscriptions == int64(len(subs)+1) })
			subs = append(subs, c)
		}
		switch round % 40 {
		case 10: // a refused subscribe
			c := dial(t, n)
			c.send(`{"id":"2","type":"subscribe","payload":{"query":"subscription { nope }"}}`)
			c.read()
			c.c.CloseNow()
		case 20: // a client back from a drop resumes from its cursor
			if cursor != "" {
				c := dial(t, n)
				c.subscribe("1", "r1", cursor) // the first of the last round's 20: 19 to replay
				for range 19 {
					c.cursor()
				}
				c.c.CloseNow()
			}
		case 30:
			slowClient(t, n, cl)
		}
		for i := range 20 {
			body := fmt.Sprintf(`{"id":"%d","room":"r1","text":"load"}`, i)
			if _, err := cl.Publish(t.Context(), "public", "chat.r1", []byte(body), ""); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range subs { // they read, so they are never slow
			for k := range 20 {
				if cur := c.cursor(); i == 0 && k == 0 {
					cursor = cur
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}
