package node

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// histogramCount is the sample count of the histogram name, or -1.
func histogramCount(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return float64(mf.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// TestOpsMetricsFollowASession drives one session (subscribe, publish,
// resume, bad cursor) and checks what an operator would see move: the
// write latency, resumes by result with the events they replayed and
// their duration, the listed tenant's gauges, and the build info.
func TestOpsMetricsFollowASession(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.MetricsTenants = []string{"public", "acme"}
		c.WS.NodeQueuedBytes = 64 << 20
	})
	for _, tenant := range []string{"public", "acme", tenantOther} {
		if v := metricValue(t, n, "fraiseql_tenant_connections", "tenant", tenant); v != 0 {
			t.Fatalf("fraiseql_tenant_connections{tenant=%q} = %v before any connection, want 0", tenant, v)
		}
	}
	if v := metricValue(t, n, "fraiseql_build_info", "goversion", runtime.Version()); v != 1 {
		t.Fatalf("fraiseql_build_info = %v, want 1 with the Go version", v)
	}
	for _, r := range resumeResults {
		if v := metricValue(t, n, "fraiseql_resumes_total", "result", r); v != 0 {
			t.Fatalf("fraiseql_resumes_total{result=%q} = %v before any resume, want 0", r, v)
		}
	}

	a := dialGQL(t, n)
	a.subscribe("r1", "")
	waitFor(t, "the subscription", func() bool { return n.Stats().Subscriptions == 1 })
	if v := metricValue(t, n, "fraiseql_tenant_subscriptions", "tenant", "public"); v != 1 {
		t.Fatalf("fraiseql_tenant_subscriptions{tenant=public} = %v, want 1", v)
	}
	if v := metricValue(t, n, "fraiseql_tenant_connections", "tenant", "public"); v != 1 {
		t.Fatalf("fraiseql_tenant_connections{tenant=public} = %v, want 1", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		if _, err := n.cl.Publish(ctx, "public", "chat.r1", fmt.Appendf(nil, `{"id":"%d","room":"r1","text":"t"}`, i), ""); err != nil {
			t.Fatal(err)
		}
	}
	_, cursor := a.next()
	a.next()
	a.next()
	waitFor(t, "the write latency of 3 events", func() bool {
		return histogramCount(t, n, "fraiseql_delivery_write_latency_seconds") == 3
	})

	b := dialGQL(t, n) // resumes after the first event: two to replay
	b.subscribe("r1", cursor)
	b.next()
	b.next()
	waitFor(t, "a resume counted ok", func() bool { return metricValue(t, n, "fraiseql_resumes_total", "result", resumeOK) == 1 })
	if v := metricValue(t, n, "fraiseql_resume_events_replayed_total"); v != 2 {
		t.Fatalf("fraiseql_resume_events_replayed_total = %v, want 2", v)
	}
	if c := histogramCount(t, n, "fraiseql_resume_duration_seconds"); c != 1 {
		t.Fatalf("fraiseql_resume_duration_seconds has %v samples, want 1", c)
	}

	c := dialGQL(t, n)
	c.subscribe("r1", "not-a-cursor")
	if typ, _ := c.read(); typ != "error" {
		t.Fatalf("a bad cursor got %q, want error", typ)
	}
	if v := metricValue(t, n, "fraiseql_resumes_total", "result", resumeBad); v != 1 {
		t.Fatalf("fraiseql_resumes_total{result=bad_cursor} = %v, want 1", v)
	}
	if v := metricValue(t, n, "fraiseql_tenant_connections", "tenant", "public"); v != 3 {
		t.Fatalf("fraiseql_tenant_connections{tenant=public} = %v, want 3", v)
	}
	if v := metricValue(t, n, "fraiseql_tenant_connections", "tenant", tenantOther); v != 0 {
		t.Fatalf("fraiseql_tenant_connections{tenant=_other} = %v, want 0", v)
	}
	a.c.CloseNow()
	waitFor(t, "the closed connection uncounted", func() bool {
		return metricValue(t, n, "fraiseql_tenant_connections", "tenant", "public") == 2 &&
			metricValue(t, n, "fraiseql_tenant_subscriptions", "tenant", "public") == 1
	})
	if v := metricValue(t, n, "fraiseql_write_queue_frames"); v < 0 {
		t.Fatal("fraiseql_write_queue_frames missing")
	}
	if v := metricValue(t, n, "fraiseql_queued_bytes_limit"); v != 64<<20 {
		t.Fatalf("fraiseql_queued_bytes_limit = %v, want ws.node_queued_bytes (64 MiB)", v)
	}
}

// TestTenantMetricsUnlisted: without metrics.tenants there is no
// per-tenant series; an unlisted tenant counts under _other.
func TestTenantMetricsUnlisted(t *testing.T) {
	n := startNode(t, nil)
	if v := metricValue(t, n, "fraiseql_tenant_connections"); v != -1 {
		t.Fatalf("fraiseql_tenant_connections exists without metrics.tenants (%v)", v)
	}
	m := startNode(t, func(c *Config) { c.MetricsTenants = []string{"acme"} })
	dialGQL(t, m)
	if v := metricValue(t, m, "fraiseql_tenant_connections", "tenant", tenantOther); v != 1 {
		t.Fatalf("fraiseql_tenant_connections{tenant=_other} = %v, want 1 (public is not listed)", v)
	}
	if v := testutil.ToFloat64(m.om.resumes[resumeOK]); v != 0 {
		t.Fatalf("resumes ok = %v", v)
	}
}

// TestMetricsTenantsBound: metrics.tenants takes up to MaxMetricsTenants
// valid, distinct tenants.
func TestMetricsTenantsBound(t *testing.T) {
	list := func(k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = fmt.Sprintf("t%d", i)
		}
		return out
	}
	base := Config{Schema: testSchema(t)}
	for _, tc := range []struct {
		name    string
		tenants []string
		ok      bool
	}{
		{"limit-1", list(MaxMetricsTenants - 1), true},
		{"limit", list(MaxMetricsTenants), true},
		{"limit+1", list(MaxMetricsTenants + 1), false},
		{"duplicate", []string{"a", "a"}, false},
		{"reserved", []string{tenantOther}, false},
		{"bad tenant", []string{"a.b"}, false},
	} {
		cfg := base
		cfg.MetricsTenants = tc.tenants
		err := cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "metrics.tenants") {
			t.Errorf("%s: error %q does not name metrics.tenants", tc.name, err)
		}
	}
}
