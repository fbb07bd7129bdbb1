package node

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/ws"
)

func TestOriginPatterns(t *testing.T) {
	cases := []struct {
		pattern      string
		plain, given bool // accepted without, with cookie authentication
		msg          string
	}{
		{"app.example.com", true, true, ""},
		{"app.example.com:3000", true, true, ""},
		{"localhost:5173", true, true, ""},
		{"*.example.com", true, true, ""},
		{"app-?.example.com", true, true, ""},
		{"[ab].example.co.uk", true, true, ""},
		{"*", true, false, "any site"},
		{"*.*", true, false, "any site"},
		{"*.com", true, false, "any site"},
		{"*example.com", true, false, "any site"}, // evilexample.com
		{"*.example.", true, false, "any site"},
		{"app.*", true, false, "any site"},
		{"*.co.uk", true, false, "any site"},      // a public suffix (ICANN)
		{"*.github.io", true, false, "any site"},  // a public suffix (private section)
		{"*.vercel.app", true, false, "any site"}, // likewise
		{"*.example.co.uk", true, true, ""},
		{"*.myapp.github.io", true, true, ""},
		{"*.example.com:8443", true, true, ""},
		{"[", false, false, "not a valid pattern"},
		{"app.[a-.com", false, false, "not a valid pattern"},
		{`\`, false, false, "not a valid pattern"},
		{"", false, false, "empty pattern"},
		{"https://app.example.com", false, false, "without scheme or path"},
	}
	for _, tc := range cases {
		for _, cookie := range []bool{false, true} {
			want := tc.plain
			if cookie {
				want = tc.given
			}
			err := CheckOriginPatterns([]string{"ok.example.com", tc.pattern}, cookie)
			if (err == nil) != want {
				t.Errorf("%q, cookie %v: err %v, want accepted %v", tc.pattern, cookie, err, want)
				continue
			}
			if err != nil && (!strings.Contains(err.Error(), "ws.origin_patterns") || !strings.Contains(err.Error(), tc.msg)) {
				t.Errorf("%q, cookie %v: %q does not name the key and %q", tc.pattern, cookie, err, tc.msg)
			}
		}
	}
}

// New refuses a wildcard origin only when tokens may come from a cookie.
func TestConfigRefusesAnyOriginWithCookieAuth(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	secret := "origin-test-secret-0123456789abcdefgh"
	withCookie, err := auth.New(auth.Config{HS256Secret: secret, Cookie: "session"}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer withCookie.Close()
	noCookie, err := auth.New(auth.Config{HS256Secret: secret}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer noCookie.Close()
	schema := testSchema(t)
	for _, tc := range []struct {
		v    *auth.Verifier
		want bool
	}{{nil, true}, {noCookie, true}, {withCookie, false}} {
		cfg := Config{Schema: schema, Auth: tc.v, WS: ws.Options{OriginPatterns: []string{"*"}}}
		if err := cfg.Validate(); (err == nil) != tc.want {
			t.Errorf("auth %v: Validate = %v, want accepted %v", tc.v != nil && tc.v.Cookie() != "", err, tc.want)
		}
	}
}

func TestRebindingSafeHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:8080": true, "LOCALHOST:1": true, "localhost.": true, "a.localhost:80": true,
		"127.0.0.1": true, "127.0.0.1:8080": true, "[::1]:8080": true, "::1": true, "10.1.2.3:80": true, "[fe80::1]": true,
		"": false, ":8080": false, "example.com": false, "example.com:8080": false, "localhost.example.com": false,
		"127.0.0.1.nip.io": false, "localhostx": false, "xlocalhost": false,
	} {
		if got := rebindingSafeHost(host); got != want {
			t.Errorf("rebindingSafeHost(%q) = %v, want %v", host, got, want)
		}
	}
}
