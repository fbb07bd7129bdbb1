package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostgresLegacyConfig: bridges.postgres.legacy is read from the
// file, and its errors name the full key.
func TestPostgresLegacyConfig(t *testing.T) {
	dir := t.TempDir()
	const head = "bridges:\n  postgres:\n    enabled: true\n    tenant: acme\n    notify_channels: [fraiseql_orders]\n    legacy:\n"
	cases := []struct {
		name, legacy, wantErr string // wantErr "": valid
	}{
		{"valid", "    - channels: [fraiseql_billing]\n      tenants: [globex]\n      topics: [\"orders.*\", \"chat.>\"]\n", ""},
		{"any tenant alone", "    - channels: [fraiseql_all]\n      tenants: [\"*\"]\n", ""},
		{"any tenant among others", "    - channels: [fraiseql_all]\n      tenants: [globex, \"*\"]\n", "bridges.postgres.legacy[0].tenants"},
		{"bad topic pattern", "    - channels: [fraiseql_x]\n      topics: [\"chat.r*\"]\n", "bridges.postgres.legacy[0].topics[0]"},
		{"channel declared twice", "    - channels: [fraiseql_orders]\n", "bridges.postgres.legacy[0].channels[0]"},
		{"unknown key", "    - channels: [fraiseql_x]\n      tenant_ids: [globex]\n", "bridges.postgres.legacy[0].tenant_ids"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			os.WriteFile(file, []byte(head+tc.legacy), 0o600)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"config", "check", "--config", file}, []string{"FRAISEQL_DATA_DIR=" + dir}, nil, &stdout, &stderr)
			switch {
			case tc.wantErr == "" && code != exitOK:
				t.Fatalf("exit %d: %s", code, stderr.String())
			case tc.wantErr == "" && !strings.Contains(stdout.String(), "fraiseql_billing") && !strings.Contains(stdout.String(), "fraiseql_all"):
				t.Fatalf("legacy sources missing from the effective config:\n%s", stdout.String())
			case tc.wantErr != "" && code != exitUsage:
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, stderr.String())
			case tc.wantErr != "" && !strings.Contains(stderr.String(), tc.wantErr):
				t.Fatalf("error does not name %q: %s", tc.wantErr, stderr.String())
			}
		})
	}
}
