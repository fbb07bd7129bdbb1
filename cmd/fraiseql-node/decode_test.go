package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkConfig runs `config check` with a file (when yaml is not empty), env
// and args, and returns its exit code, stdout and stderr.
func checkConfig(t *testing.T, yaml string, env []string, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	argv := append([]string{"config", "check"}, args...)
	if yaml != "" {
		file := filepath.Join(dir, "node.yaml")
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		argv = append(argv, "--config", file)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), argv, append([]string{"FRAISEQL_DATA_DIR=" + dir}, env...), nil, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestConfigErrorsNameKeyAndForm: an invalid value names its full key and
// the form wanted, in the configuration's words, never a Go type.
func TestConfigErrorsNameKeyAndForm(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        []string
		want       []string
	}{
		{"duration", "ws:\n  keep_alive: fast\n", nil, []string{"line 2", "ws.keep_alive", `"fast"`, "a duration (e.g. 500ms, 30s"}},
		{"duration without a unit", "ws:\n  keep_alive: 30\n", nil, []string{"ws.keep_alive", "no unit"}},
		{"limits duration without a unit", "limits:\n  init_timeout: 3\n", nil, []string{"limits.init_timeout", "no unit"}},
		{"rate", "limits:\n  subscribe_rate: many\n", nil, []string{"limits.subscribe_rate", "50/m"}},
		{"fraction for a count", "limits:\n  max_query_bytes: 1.5\n", nil, []string{"limits.max_query_bytes", "a whole number"}},
		{"bool", "bridges:\n  redis:\n    enabled: maybe\n", nil, []string{"bridges.redis.enabled", "true or false"}},
		{"list", "ws:\n  origin_patterns: x\n", nil, []string{"ws.origin_patterns", "a list of strings"}},
		{"section not a mapping", "nats: [1]\n", nil, []string{"nats", "a mapping of keys"}},
		{"tenant entry", "limits:\n  tenants:\n    acme:\n      event_rate: x\n", nil, []string{"line 4", "limits.tenants.acme.event_rate"}},
		{"list entry", "bridges:\n  postgres:\n    legacy:\n      - channels: 5\n", nil, []string{"bridges.postgres.legacy[0].channels", "a list of strings"}},
		{"key given twice", "listen: a:1\nlisten: b:1\n", nil, []string{"line 2", "listen", "given twice"}},
		{"env duration", "", []string{"FRAISEQL_WS_KEEP_ALIVE=fast"}, []string{"FRAISEQL_WS_KEEP_ALIVE", "ws.keep_alive", "a duration"}},
		{"env rate", "", []string{"FRAISEQL_LIMITS_SUBSCRIBE_RATE=x"}, []string{"FRAISEQL_LIMITS_SUBSCRIBE_RATE", "limits.subscribe_rate", "50/m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := checkConfig(t, tc.yaml, tc.env)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d: %s", code, exitUsage, stderr)
			}
			for _, w := range append(tc.want, "fraiseql-node: ") {
				if !strings.Contains(stderr, w) {
					t.Errorf("error lacks %q: %s", w, stderr)
				}
			}
			for _, goWord := range []string{"time.Duration", "!!str", "unmarshal", "main.", "limits.Config", "[]string", "int64"} {
				if strings.Contains(stderr, goWord) {
					t.Errorf("error speaks Go (%q): %s", goWord, stderr)
				}
			}
		})
	}
}

// TestConfigZeroDurations: 0 needs no unit; 0s and durations with units pass.
func TestConfigZeroDurations(t *testing.T) {
	for _, y := range []string{"limits:\n  init_timeout: 0\n", "nats:\n  max_age: 0s\n", "ws:\n  keep_alive: 1m30s\n"} {
		if code, _, stderr := checkConfig(t, y, nil); code != exitOK {
			t.Errorf("%q: exit %d: %s", y, code, stderr)
		}
	}
}

// TestUnknownKeySuggestsNearest: a misspelt key names the nearest valid
// one; a key in the wrong section names where it belongs; anything else
// lists the section's keys.
func TestUnknownKeySuggestsNearest(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"lisen: x\n", "lisen: unknown key; did you mean listen?"},
		{"limits:\n  subscribe_rte: 5/s\n", "limits.subscribe_rte: unknown key; did you mean limits.subscribe_rate?"},
		{"ws:\n  keepalive: 5s\n", "did you mean ws.keep_alive?"},
		{"subscribe_rate: 5/s\n", "subscribe_rate: unknown key here; did you mean limits.subscribe_rate?"},
		{"log:\n  colour: red\n", "log.colour: unknown key; the keys of log are format, level"},
		{"bridges:\n  redis:\n    urll: redis://x\n", "did you mean bridges.redis.url?"},
	} {
		code, _, stderr := checkConfig(t, tc.yaml, nil)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, want %d with %q: %s", tc.yaml, code, exitUsage, tc.want, stderr)
		}
	}
}

// TestMisspelledEnvIsAnError: a FRAISEQL_* variable meant for the node but
// naming no key fails like an unknown file key; the example clients' and
// tools' own variables pass.
func TestMisspelledEnvIsAnError(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"FRAISEQL_LIMITS_SUBSCRIBE_RAET=5/s", "did you mean FRAISEQL_LIMITS_SUBSCRIBE_RATE (limits.subscribe_rate)?"},
		{"FRAISEQL_LISTN=127.0.0.1:1", "did you mean FRAISEQL_LISTEN (listen)?"},
		{"FRAISEQL_NATS_URI=nats://x", "did you mean FRAISEQL_NATS_URL (nats.url)?"},
		{"FRAISEQL_LIMITS_WHATEVER=1", "FRAISEQL_LIMITS_WHATEVER is not a configuration variable"},
		{"FRAISEQL_LIMITS_TENANTS=x", "limits.tenants is a list or mapping, set in the configuration file only"},
	} {
		code, _, stderr := checkConfig(t, "", []string{tc.env})
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q: %s", tc.env, code, exitUsage, tc.want, stderr)
		}
	}
	foreign := []string{"FRAISEQL_URL=ws://x", "FRAISEQL_TOKEN=t", "FRAISEQL_TOKEN_SECRET=s", "FRAISEQL_CURSOR=c",
		"FRAISEQL_TEST_LOG=1", "FRAISEQL_TEST_INGEST=interest", "FRAISEQL_STORM_SPEC=x", "FRAISEQL_STORM_CLIENTS=1",
		"FRAISEQL_LOADGEN_NODE_BIN=x", "FRAISEQL_WRITEFLOOR_READER=x"}
	if code, _, stderr := checkConfig(t, "", foreign); code != exitOK {
		t.Errorf("other tools' variables refused: exit %d: %s", code, stderr)
	}
}

// TestConfigCheckTakesServeFlags: config check takes serve's flags and shows
// their effect, and resolves defaults (auth mode, clock skew, the bridges').
func TestConfigCheckTakesServeFlags(t *testing.T) {
	code, stdout, stderr := checkConfig(t, "", nil, "--listen", "127.0.0.1:9999", "--ops-listen", "off", "--log-level", "debug")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"listen: 127.0.0.1:9999", "ops_listen: \"off\"", "level: debug", "mode: none", "clock_skew: 30s",
		"url: redis://127.0.0.1:6379/0", "schema: fraiseql", "store_dir: "} {
		if !strings.Contains(stdout, w) {
			t.Errorf("effective configuration lacks %q:\n%s", w, stdout)
		}
	}
	secret := filepath.Join(t.TempDir(), "s")
	os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	code, stdout, stderr = checkConfig(t, "auth:\n  hs256_secret_file: "+secret+"\n", nil)
	if code != exitOK || !strings.Contains(stdout, "mode: jwt") {
		t.Errorf("with a key, auth.mode is not shown as jwt: exit %d %s\n%s", code, stderr, stdout)
	}
	if code, _, stderr := checkConfig(t, "", nil, "--schema", "/nonexistent.graphql"); code != exitUsage || !strings.Contains(stderr, "schema") {
		t.Errorf("--schema of a missing file: exit %d: %s", code, stderr)
	}
	if code, _, _ := checkConfig(t, "", nil, "extra"); code != exitUsage {
		t.Errorf("config check with an argument: exit %d, want %d", code, exitUsage)
	}
}
