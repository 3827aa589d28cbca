// Package version says which banwatch a binary is: the release it was
// built as (set by the Makefile with -ldflags) and the commit it was built
// from (the Go toolchain's VCS stamp).
package version

import "runtime/debug"

// Version is the release, set at build time with
// -ldflags "-X github.com/banwatch/banwatch/internal/version.Version=0.1.0";
// empty in a plain go build.
var Version = ""

// String is the release, or "dev" when the build did not set one.
func String() string {
	if Version != "" {
		return Version
	}
	return "dev"
}

// Commit is the commit the binary was built from (12 hex digits, with
// "+modified" when the tree had changes), or "unknown" when the build
// carries no VCS stamp (go run, a build outside the repository).
func Commit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+modified"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	return rev[:min(12, len(rev))] + dirty
}

// Line is what --version prints: "banwatchd 0.1.0 (commit 0123456789ab, go1.26.8)".
func Line(program string) string {
	goVersion := "unknown Go"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	return program + " " + String() + " (commit " + Commit() + ", " + goVersion + ")"
}
