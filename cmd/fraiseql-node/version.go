package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// version and commit are stamped by the Makefile and the Dockerfile:
//
//	go build -ldflags "-X main.version=v0.2.0 -X main.commit=1a2b3c4" ./cmd/fraiseql-node
//
// Unstamped (go install …@v0.2.0, go build in a clone), they come from the
// build information Go records in the binary.
var (
	version = ""
	commit  = ""
)

// versionLine is what `fraiseql-node version` prints:
// "fraiseql-node v0.2.0 (commit 1a2b3c4d5e6f, 2026-11-30T10:00:00Z, go1.26.0)".
func versionLine() string {
	info, _ := debug.ReadBuildInfo()
	return describeVersion(version, commit, info)
}

// describeVersion prefers the stamped values and fills the rest from info
// (nil when the binary has none): the module version go install resolved,
// the VCS revision and time go build recorded, and whether the tree had
// uncommitted changes.
func describeVersion(ver, rev string, info *debug.BuildInfo) string {
	var when, goVer string
	dirty := false
	if info != nil {
		goVer = info.GoVersion
		if ver == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			ver = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if ver == "" {
		ver = "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	var parts []string
	if rev != "" {
		if dirty {
			rev += "-dirty"
		}
		parts = append(parts, "commit "+rev)
	} else {
		parts = append(parts, "commit unknown")
	}
	if when != "" {
		parts = append(parts, when)
	}
	if goVer != "" {
		parts = append(parts, goVer)
	}
	return fmt.Sprintf("fraiseql-node %s (%s)", ver, strings.Join(parts, ", "))
}
