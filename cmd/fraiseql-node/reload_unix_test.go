//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSIGHUPReloadsSchema: SIGHUP loads the schema file again; a
// subscription the new file makes invalid ends with SCHEMA_CHANGED, one it
// leaves unchanged continues; a file that does not load changes nothing.
func TestSIGHUPReloadsSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "schema.graphql")
	if err := os.WriteFile(path, []byte(demoSchema), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, _, _, _ := startServeArgs(t, []string{"--schema", path}, []string{"FRAISEQL_DATA_DIR=" + t.TempDir()})
	ends := subscribeForTest(t, addr, `subscription { messageAdded(room: "r1") { id createdAt } }`)
	stays := subscribeForTest(t, addr, `subscription { orderUpdated(id: "o1") { id } }`)

	write := func(sdl string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(sdl), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// A file that does not load first: nothing changes, so the
	// subscription the next file makes invalid is still there for it.
	write("type Subscription { broken: NoSuchType }")
	write(strings.Replace(demoSchema, "  createdAt: String\n", "", 1))
	m := ends.next()
	if string(m["type"]) != `"error"` || !strings.Contains(string(m["payload"]), `"SCHEMA_CHANGED"`) {
		t.Fatalf("the invalidated subscription got %s %s, want error SCHEMA_CHANGED", m["type"], m["payload"])
	}
	if m := ends.next(); string(m["type"]) != `"complete"` {
		t.Fatalf("after the error: %s, want complete", m["type"])
	}
	select {
	case m := <-stays.msgs:
		t.Fatalf("the unchanged subscription got %s %s", m["type"], m["payload"])
	default:
	}
}
