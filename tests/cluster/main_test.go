//go:build chaos

package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// bins are the binaries every test starts, built once by TestMain.
var bins struct {
	nats string // nats-server, from the module's nats-server dependency
	node string // fraiseql-node, from this checkout
}

// buildTimeout bounds each go build (a cold cache on a busy machine).
const buildTimeout = 10 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fraiseql-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins.nats = filepath.Join(dir, "nats-server")
	bins.node = filepath.Join(dir, "fraiseql-node")
	for _, b := range []struct{ out, pkg string }{
		{bins.nats, "github.com/nats-io/nats-server/v2"},
		{bins.node, "./cmd/fraiseql-node"},
	} {
		if err := goBuild(b.out, b.pkg); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: goroutine leak:", err)
			return 1
		}
	}
	return code
}

// goBuild builds pkg (a package of this module or of one of its
// dependencies) into out, from the repository root.
func goBuild(out, pkg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", out, pkg)
	cmd.Dir = repoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// goTool is the go command of the toolchain running the tests.
func goTool() string {
	//lint:ignore SA1019 the tests are run by the toolchain that built them, on this machine
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// repoRoot is the repository root, found from this file's path.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
