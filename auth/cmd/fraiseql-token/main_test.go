package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/auth"
)

const secret = "dev-secret-dev-secret-dev-secret"

func TestMint(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run([]string{"--secret-file", secretFile, "--tenant", "acme", "--sub", "alice",
		"--roles", "admin, ops", "--ttl", "10m", "--aud", "subs", "--claim", "plan=pro"}, &out, &errOut, time.Now)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	v, err := auth.New(auth.Config{HS256Secret: secret, Audience: "subs"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	id, err := v.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.Tenant != "acme" || id.User != "alice" || !slices.Equal(id.Roles, []string{"admin", "ops"}) || id.Claims["plan"] != "pro" {
		t.Errorf("identity %+v", id)
	}
	if d := time.Until(id.Expires); d <= 8*time.Minute || d > 10*time.Minute {
		t.Errorf("expires in %v, want about 10m", d)
	}
}

func TestMintRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"--secret", "short", "--tenant", "acme"},
		{"--secret", secret},                    // no tenant
		{"--secret", secret, "--tenant", "a.b"}, // bad tenant
		{"--secret", secret, "--tenant", "a", "--ttl", "-1m"},
		{"--secret", secret, "--secret-file", "x", "--tenant", "a"},
		{"--nope"},
	} {
		t.Setenv("FRAISEQL_TOKEN_SECRET", "")
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut, time.Now); code == 0 || out.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q", args, code, out.String())
		}
	}
}
