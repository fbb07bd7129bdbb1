package limits

import (
	"encoding"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	_ encoding.TextUnmarshaler = (*Rate)(nil)
	_ encoding.TextMarshaler   = Rate(0)
	_ encoding.TextUnmarshaler = (*Duration)(nil)
	_ encoding.TextMarshaler   = Duration(0)
)

func TestConfigWithDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	want := Config{
		MaxQueryBytes:           64 * 1024,
		MaxMessageBytes:         256 * 1024,
		MaxEventBytes:           1024 * 1024,
		MaxFilterDepth:          50,
		MaxFilterOperands:       100,
		MaxComplexity:           1000,
		MaxDepth:                12,
		SubscribeRate:           Rate(50.0 / 60),
		SubscribeBurst:          50,
		EventRate:               100,
		EventBurst:              100,
		MaxSubscriptionsPerConn: 5,
		MaxConns:                100_000,
		MaxConnsPerUser:         100,
		ConnRatePerIP:           20,
		ConnBurstPerIP:          40,
		MaxPendingConns:         4096,
		MaxPendingConnsPerIP:    64,
		UpgradeTimeout:          Duration(5 * time.Second),
		MaxKeys:                 100_000,
		InitTimeout:             Duration(3 * time.Second),
		MaxSubscriptionDuration: 0, // off
	}
	if !configEqual(c, want) {
		t.Fatalf("WithDefaults:\n got %+v\nwant %+v", c, want)
	}
	if !configEqual(DefaultConfig(), want) {
		t.Fatal("DefaultConfig differs from Config{}.WithDefaults()")
	}
	// Set fields, including negative "unlimited" ones, are kept.
	set := Config{MaxQueryBytes: 1, SubscribeRate: -1, MaxConns: -1, MaxSubscriptionDuration: Duration(time.Hour)}.WithDefaults()
	if set.MaxQueryBytes != 1 || set.SubscribeRate != -1 || set.MaxConns != -1 || set.MaxSubscriptionDuration.Std() != time.Hour {
		t.Fatalf("WithDefaults overwrote set fields: %+v", set)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config does not validate: %v", err)
	}
}

// configEqual compares configs, ignoring Tenants.
func configEqual(a, b Config) bool {
	a.Tenants, b.Tenants = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		want []string // substrings of the error; none: valid
	}{
		{"unlimited rates and counts", Config{SubscribeRate: -1, EventRate: -1, ConnRatePerIP: -1, MaxConns: -1, MaxConnsPerUser: -1, MaxSubscriptionsPerConn: -1}, nil},
		{"negative query size", Config{MaxQueryBytes: -1}, []string{"limits.max_query_bytes: must not be negative"}},
		{"negative message size", Config{MaxMessageBytes: -1}, []string{"limits.max_message_bytes"}},
		{"negative event size", Config{MaxEventBytes: -1}, []string{"limits.max_event_bytes"}},
		{"negative depths", Config{MaxDepth: -1, MaxFilterDepth: -2, MaxComplexity: -3}, []string{"limits.max_depth", "limits.max_filter_depth", "limits.max_complexity"}},
		{"negative bursts", Config{SubscribeBurst: -1, EventBurst: -1, ConnBurstPerIP: -1}, []string{"limits.subscribe_burst", "limits.event_burst", "limits.conn_burst_per_ip"}},
		{"negative filter operands", Config{MaxFilterOperands: -1}, []string{"limits.max_filter_operands: must not be negative (got -1)"}},
		{"negative max keys", Config{MaxKeys: -1}, []string{"limits.max_keys"}},
		{"NaN rate", Config{SubscribeRate: Rate(math.NaN())}, []string{"limits.subscribe_rate: must be a finite rate"}},
		{"infinite rate", Config{EventRate: Rate(math.Inf(1))}, []string{"limits.event_rate"}},
		{"negative init timeout", Config{InitTimeout: -1}, []string{"limits.init_timeout"}},
		{"negative upgrade timeout", Config{UpgradeTimeout: -1}, []string{"limits.upgrade_timeout: must not be negative"}},
		{"unlimited pending conns", Config{MaxPendingConns: -1, MaxPendingConnsPerIP: -1}, nil},
		{"negative lifetime", Config{MaxSubscriptionDuration: Duration(-time.Second)}, []string{"limits.max_subscription_duration"}},
		{"query above message", Config{MaxQueryBytes: 300 << 10}, []string{"limits.max_query_bytes (307200) cannot be higher than limits.max_message_bytes (262144)"}},
		{"query at message", Config{MaxQueryBytes: 256 << 10}, nil},
		{"tenant", Config{Tenants: map[string]TenantLimits{"acme": {SubscribeBurst: -1, EventRate: Rate(math.NaN())}}}, []string{`limits.tenants."acme".subscribe_burst`, `limits.tenants."acme".event_rate`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an invalid config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigFor(t *testing.T) {
	c := Config{
		Tenants: map[string]TenantLimits{
			"acme":    {SubscribeRate: 10, MaxSubscriptionsPerConn: 20, MaxConnsPerUser: -1},
			"tiny":    {EventRate: 1, EventBurst: 2, SubscribeBurst: 3},
			"inherit": {},
		},
	}.WithDefaults()
	for _, tc := range []struct {
		tenant string
		check  func(Config) bool
	}{
		{"unknown", func(r Config) bool { return configEqual(r, c) }},
		{"inherit", func(r Config) bool { return configEqual(r, c) }},
		{"acme", func(r Config) bool {
			return r.SubscribeRate == 10 && r.SubscribeBurst == DefaultSubscribeBurst &&
				r.MaxSubscriptionsPerConn == 20 && r.MaxConnsPerUser == -1 && r.EventRate == DefaultEventRate
		}},
		{"tiny", func(r Config) bool {
			return r.EventRate == 1 && r.EventBurst == 2 && r.SubscribeBurst == 3 && r.SubscribeRate == DefaultSubscribeRate
		}},
	} {
		if r := c.For(tc.tenant); !tc.check(r) {
			t.Errorf("For(%q) = %+v", tc.tenant, r)
		}
	}
	// For fills defaults even on a config that skipped WithDefaults.
	if r := (Config{}).For("x"); r.MaxSubscriptionsPerConn != DefaultMaxSubscriptionsPerConn {
		t.Errorf("For on zero Config: MaxSubscriptionsPerConn %d", r.MaxSubscriptionsPerConn)
	}
}

func TestConfigLimiterParams(t *testing.T) {
	c := DefaultConfig()
	if r, b := c.SubscribeLimit(); r != 50.0/60 || b != 50 {
		t.Errorf("SubscribeLimit = %v, %d", r, b)
	}
	if r, b := c.EventLimit(); r != 100 || b != 100 {
		t.Errorf("EventLimit = %v, %d", r, b)
	}
	if r, b := c.ConnLimitPerIP(); r != 20 || b != 40 {
		t.Errorf("ConnLimitPerIP = %v, %d", r, b)
	}
	c.EventRate = -1
	if r, _ := c.EventLimit(); !math.IsInf(r, 1) {
		t.Errorf("unlimited EventRate gives %v, want Inf", r)
	}
	// The default subscribe limit, end to end: 50 at once, then one per 1.2s.
	k := &Keyed[string]{}
	k.Rate, k.Burst = DefaultConfig().SubscribeLimit()
	if got := keyedCount(k, "u", t0, 100); got != 50 {
		t.Errorf("default subscribe limiter admitted %d at once, want 50", got)
	}
	if _, wait := k.allowAt("u", t0, 1); wait != 1200*time.Millisecond {
		t.Errorf("retry after %v, want 1.2s", wait)
	}
}

func TestConfigChecks(t *testing.T) {
	c := DefaultConfig()
	for _, tc := range []struct {
		name  string
		check func(int) error
		limit int
		code  string
	}{
		{"query bytes", c.CheckQueryBytes, DefaultMaxQueryBytes, CodeQueryTooLarge},
		{"complexity", c.CheckComplexity, DefaultMaxComplexity, CodeQueryTooComplex},
		{"depth", c.CheckDepth, DefaultMaxDepth, CodeQueryTooComplex},
		{"filter depth", c.CheckFilterDepth, DefaultMaxFilterDepth, CodeFilterTooDeep},
		{"zero config uses defaults", Config{}.CheckFilterDepth, DefaultMaxFilterDepth, CodeFilterTooDeep},
		{"filter operands", c.CheckFilterOperands, DefaultMaxFilterOperands, CodeFilterTooComplex},
		{"filter operands custom", Config{MaxFilterOperands: 7}.CheckFilterOperands, 7, CodeFilterTooComplex},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []int{tc.limit - 1, tc.limit} {
				if err := tc.check(v); err != nil {
					t.Fatalf("%d (limit %d): %v", v, tc.limit, err)
				}
			}
			err := tc.check(tc.limit + 1)
			var le *Error
			if !errors.As(err, &le) || le.Code != tc.code || le.Limit != int64(tc.limit) || le.Value != int64(tc.limit+1) {
				t.Fatalf("limit+1: got %#v, want %s with limit %d", err, tc.code, tc.limit)
			}
		})
	}
}

func TestRateText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rate
		out  string
	}{
		{"50/m", Rate(50.0 / 60), "50/m"},
		{"50/min", Rate(50.0 / 60), "50/m"},
		{"50 / minute", Rate(50.0 / 60), "50/m"},
		{"100/s", 100, "100/s"},
		{"100", 100, "100/s"},
		{"0.5", 0.5, "30/m"},
		{"5/10s", 0.5, "30/m"},
		{"1/h", Rate(1.0 / 3600), "1/h"},
		{"3/1m30s", Rate(3 / 90.0), "2/m"},
		{"", 0, "0/s"},
		{"unlimited", -1, "unlimited"},
		{"Inf", -1, "unlimited"},
		{"-1", -1, "unlimited"},
		{"-5/s", -1, "unlimited"},
	} {
		var r Rate
		if err := r.UnmarshalText([]byte(tc.in)); err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if r != tc.want {
			t.Errorf("%q = %v, want %v", tc.in, float64(r), float64(tc.want))
		}
		if got := r.String(); got != tc.out {
			t.Errorf("%q formats as %q, want %q", tc.in, got, tc.out)
		}
		var back Rate
		text, _ := r.MarshalText()
		if err := back.UnmarshalText(text); err != nil || math.Abs(float64(back-r)) > 1e-12 {
			t.Errorf("%q does not round-trip through %q: %v, %v", tc.in, text, float64(back), err)
		}
	}
	for _, bad := range []string{"fast", "10/fortnight", "10/0s", "10/-1s", "NaN", "1e400", "/s"} {
		var r Rate
		if err := r.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted as %v", bad, float64(r))
		}
	}
}

func TestDurationText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"3s", 3 * time.Second},
		{"1m", time.Minute},
		{"1m30s", 90 * time.Second},
		{"250ms", 250 * time.Millisecond},
		{"0", 0},
		{"", 0},
		{" 2h ", 2 * time.Hour},
	} {
		var d Duration
		if err := d.UnmarshalText([]byte(tc.in)); err != nil || d.Std() != tc.want {
			t.Errorf("%q = %v, %v; want %v", tc.in, d, err, tc.want)
		}
		text, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(text); err != nil || back != d {
			t.Errorf("%q does not round-trip through %q", tc.in, text)
		}
	}
	for _, bad := range []string{"3", "three seconds", "1x"} {
		var d Duration
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted as %v", bad, d)
		}
	}
}
