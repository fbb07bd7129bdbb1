package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminTokenFile: admin.token_file must name a readable file holding
// at least 32 bytes, and needs the ops listener.
func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	tokenFile := func(n int) string {
		p := filepath.Join(dir, "token-"+strings.Repeat("x", n%7)+string(rune('a'+n%26)))
		os.WriteFile(p, []byte(strings.Repeat("k", n)+"\n"), 0o600)
		return p
	}
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"31 bytes", "admin:\n  token_file: " + tokenFile(31) + "\n", "admin.token_file"},
		{"32 bytes", "admin:\n  token_file: " + tokenFile(32) + "\n", ""},
		{"33 bytes", "admin:\n  token_file: " + tokenFile(33) + "\n", ""},
		{"missing file", "admin:\n  token_file: " + filepath.Join(dir, "nope") + "\n", "admin.token_file"},
		{"revocation_ttl 999ms", "admin:\n  revocation_ttl: 999ms\n", "admin.revocation_ttl"},
		{"revocation_ttl 1s", "admin:\n  revocation_ttl: 1s\n", ""},
		{"revocation_ttl 2s", "admin:\n  revocation_ttl: 2s\n", ""},
		{"ops off", "ops_listen: \"off\"\nadmin:\n  token_file: " + tokenFile(40) + "\n", "admin.token_file"},
	} {
		file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
		os.WriteFile(file, []byte(tc.yaml), 0o600)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"config", "check", "--config", file}, []string{"FRAISEQL_DATA_DIR=" + dir}, nil, &stdout, &stderr)
		switch {
		case tc.wantErr == "" && code != exitOK:
			t.Errorf("%s: exit %d: %s", tc.name, code, stderr.String())
		case tc.wantErr != "" && (code != exitUsage || !strings.Contains(stderr.String(), tc.wantErr)):
			t.Errorf("%s: exit %d, stderr %q; want exit %d naming %s", tc.name, code, stderr.String(), exitUsage, tc.wantErr)
		}
	}
}
