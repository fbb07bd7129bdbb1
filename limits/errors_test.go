package limits

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestErrorExtensions(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *Error
		want string // JSON of Extensions()
	}{
		{"rate limited", RateLimited(1200 * time.Millisecond), `{"code":"RATE_LIMITED","retryAfter":1.2}`},
		{"retry rounds up to the ms", RateLimited(1500 * time.Microsecond), `{"code":"RATE_LIMITED","retryAfter":0.002}`},
		{"retry never", RateLimited(Never), `{"code":"RATE_LIMITED"}`},
		{"subscription limit", SubscriptionLimit(5), `{"code":"SUBSCRIPTION_LIMIT","limit":5}`},
		{"query too large", QueryTooLarge(70000, 65536), `{"code":"QUERY_TOO_LARGE","limit":65536,"value":70000}`},
		{"query too complex", QueryTooComplex(1001, 1000), `{"code":"QUERY_TOO_COMPLEX","limit":1000,"value":1001}`},
		{"query too deep", QueryTooDeep(13, 12), `{"code":"QUERY_TOO_COMPLEX","limit":12,"value":13}`},
		{"filter too deep", FilterTooDeep(51, 50), `{"code":"FILTER_TOO_DEEP","limit":50,"value":51}`},
		{"filter too complex", FilterTooComplex(101, 100), `{"code":"FILTER_TOO_COMPLEX","limit":100,"value":101}`},
		{"expired", SubscriptionExpired(time.Hour), `{"code":"SUBSCRIPTION_EXPIRED"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.err.Extensions())
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("Extensions = %s, want %s", got, tc.want)
			}
			if tc.err.Message == "" {
				t.Fatal("empty message")
			}
		})
	}
}

func TestErrorIs(t *testing.T) {
	err := fmt.Errorf("subscribe 1: %w", RateLimited(time.Second))
	if !errors.Is(err, &Error{Code: CodeRateLimited}) {
		t.Fatal("errors.Is by code failed")
	}
	if errors.Is(err, &Error{Code: CodeSubscriptionLimit}) {
		t.Fatal("errors.Is matched another code")
	}
	var le *Error
	if !errors.As(err, &le) || le.RetryAfter != time.Second {
		t.Fatal("errors.As failed")
	}
	if got := le.Error(); got != "limits: RATE_LIMITED: too many subscribe requests; retry later" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 1},
		{time.Millisecond, 1},
		{time.Second, 1},
		{1001 * time.Millisecond, 2},
		{50 * time.Second, 50},
	} {
		if got := RetryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}
