package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/node"
)

func TestTrustedProxiesFromFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "node.yaml")
	os.WriteFile(file, []byte("trusted_proxies: [10.0.0.0/8, 192.0.2.7]\nproxy_protocol: required\n"), 0o600)
	cfg, err := loadConfig(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := cfg.edgeConfig()
	if err != nil || len(nc.TrustedProxies) != 2 || nc.TrustedProxies[1].String() != "192.0.2.7/32" || nc.ProxyProtocol != node.ProxyProtocolRequired {
		t.Fatalf("from the file: %+v, %v", nc, err)
	}
	cfg, err = loadConfig(file, []string{"FRAISEQL_TRUSTED_PROXIES=172.28.0.0/16, fd00::/8", "FRAISEQL_FORWARDED_HEADER=none"})
	if err != nil {
		t.Fatal(err)
	}
	if nc, err = cfg.edgeConfig(); err != nil || len(nc.TrustedProxies) != 2 || nc.TrustedProxies[0].String() != "172.28.0.0/16" || nc.ForwardedHeader != node.ForwardedNone {
		t.Fatalf("from the environment: %+v, %v", nc, err)
	}
}

func TestInvalidProxyConfigNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"bad CIDR", "trusted_proxies: [10.0.0/8]\n", nil, `trusted_proxies: "10.0.0/8" is not a CIDR`},
		{"bad CIDR from env", "", []string{"FRAISEQL_TRUSTED_PROXIES=10.0.0.0/8,lb.internal"}, `trusted_proxies: "lb.internal"`},
		{"unknown mode", "proxy_protocol: v2\n", nil, `proxy_protocol: "v2" is not off, optional or required`},
		{"required without proxies", "proxy_protocol: required\n", nil, "proxy_protocol: \"required\" needs trusted_proxies"},
		{"unknown header", "forwarded_header: x-real-ip\n", nil, "forwarded_header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			os.WriteFile(file, []byte(tc.yaml), 0o600)
			var stdout, stderr bytes.Buffer
			env := append([]string{"FRAISEQL_DATA_DIR=" + dir}, tc.env...)
			if code := run(context.Background(), []string{"config", "check", "--config", file}, env, nil, &stdout, &stderr); code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("error does not say %q: %s", tc.want, stderr.String())
			}
		})
	}
}

// TestDescriptorCheck: the soft limit is raised to the hard one, and a
// warning names the settings when it stays below max_conns +
// max_pending_conns + headroom (limit-1 warns; limit and limit+1 do not).
func TestDescriptorCheck(t *testing.T) {
	l := limits.Config{MaxConns: 1000, MaxPendingConns: 100}.WithDefaults()
	need := uint64(1000 + 100 + descriptorHeadroom)
	check := func(l limits.Config, cur, hard uint64, setErr error) (logs string, setTo uint64) {
		var b bytes.Buffer
		log := slog.New(slog.NewTextHandler(&b, nil))
		checkNOFILE(l, log,
			func() (uint64, uint64, error) { return cur, hard, nil },
			func(c, _ uint64) error {
				if setErr == nil {
					setTo = c
				}
				return setErr
			})
		return b.String(), setTo
	}
	for _, tc := range []struct {
		name      string
		cur, hard uint64
		warn      bool
	}{
		{"hard limit-1", 256, need - 1, true},
		{"hard at limit", 256, need, false},
		{"hard limit+1", 256, need + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs, setTo := check(l, tc.cur, tc.hard, nil)
			if setTo != tc.hard {
				t.Fatalf("soft limit raised to %d, want the hard limit %d", setTo, tc.hard)
			}
			warned := strings.Contains(logs, "level=WARN")
			if warned != tc.warn {
				t.Fatalf("warned %v, want %v:\n%s", warned, tc.warn, logs)
			}
			if tc.warn && !strings.Contains(logs, "limits.max_conns (1000) + limits.max_pending_conns (100)") {
				t.Fatalf("the warning does not name the settings:\n%s", logs)
			}
		})
	}
	if logs, _ := check(l, 256, 1<<20, errors.New("operation not permitted")); !strings.Contains(logs, "cannot raise") || !strings.Contains(logs, "file descriptor limit (RLIMIT_NOFILE) 256 is below") {
		t.Fatalf("a failed raise must warn and check the soft limit:\n%s", logs)
	}
	unlimited := limits.Config{MaxConns: -1}.WithDefaults()
	if logs, _ := check(unlimited, 1<<20, 1<<20, nil); !strings.Contains(logs, "level=WARN") {
		t.Fatalf("unlimited max_conns must warn (descriptors are unbounded):\n%s", logs)
	}
}

// TestDescriptorLimitIsRaised checks the real system call path: after
// checkDescriptors the soft limit equals the hard one.
func TestDescriptorLimitIsRaised(t *testing.T) {
	checkDescriptors(limits.Config{}, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	cur, hard, err := getNOFILE()
	if err != nil {
		t.Fatal(err)
	}
	if cur != hard {
		t.Fatalf("soft limit %d, hard %d", cur, hard)
	}
}
