package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestSummaryMediansAndSaturation(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	mk := func(del, p99 float64) string {
		return `{"mode":"run","memory":{"rss_per_conn_bytes":20480,"rss_per_conn_with_subs_bytes":30720},` +
			`"windows":[{"name":"measure","deliveries_per_s":` + ftoa(del) + `,"latency":{"p50_ms":1,"p99_ms":` + ftoa(p99) + `}}]}`
	}
	files := []string{
		write("a-1.json", mk(100, 30)), write("a-2.json", mk(300, 10)), write("a-3.json", mk(200, 20)),
		write("sat-1.json", `{"mode":"saturate","saturation":{"max_loss_pct":0.1,"max_p99_ms":500},"windows":[`+
			`{"deliveries_per_s":1000,"loss_pct":0,"latency":{"p99_ms":100}},`+
			`{"deliveries_per_s":2000,"loss_pct":0.05,"latency":{"p99_ms":400}},`+
			`{"deliveries_per_s":3000,"loss_pct":2,"latency":{"p99_ms":900}}]}`),
	}
	// A fraiseql-writefloor report: no latency, client or memory.
	floor := `{"mode":"write-floor","windows":[{"name":"measure","deliveries_per_s":40000,"server_cpu_us_per_delivery":`
	files = append(files, write("write-floor-1.json", floor+`10.5,"server_cores":0.42}]}`),
		write("write-floor-2.json", floor+`11,"server_cores":0.44}]}`))
	var out bytes.Buffer
	if err := run(files, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"| a | 3 | 200 (100–300) |", "20.0 (10.0–30.0)", "| 20.0 (20.0–20.0) | 30.0 (30.0–30.0) |", "| sat | 1 | 2000 |",
		"| write-floor | 2 | 40000 (40000–40000) | 0.000 (0.000–0.000) | – | – | 10.8 (10.5–11.0) | 0.43 (0.42–0.44) | – | – | – |"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
