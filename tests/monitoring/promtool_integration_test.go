//go:build integration

package monitoring

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// repoPath is path from the repository root.
func repoPath(t *testing.T, path string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", path)
}

// tool finds a Prometheus binary, or fails the test with how to install it.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian's prometheus package (apt-get install -y prometheus; .ci/run does it)", name)
	}
	return p
}

// TestAlertRules runs promtool's syntax check on the alert rules and
// their unit tests (each alert fires where it should and not elsewhere).
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool")
	rules := repoPath(t, "ops/prometheus/rules")
	for _, args := range [][]string{
		{"check", "rules", "fraiseql.rules.yml"},
		{"test", "rules", "fraiseql.rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = rules
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
		t.Logf("promtool %v:\n%s", args, out)
	}
}
