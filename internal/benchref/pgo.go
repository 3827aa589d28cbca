package benchref

import (
	"os"
	"path/filepath"
)

// ReleaseProfile is the CPU profile, relative to the module's root, that
// release builds of banctl and banwatchd are optimised with (go build
// -pgo; make pgo takes it anew). go build, go run and go test do not read
// it by themselves: a cold build with it takes several times as long.
const ReleaseProfile = "cmd/release.pgo"

// BuildFlags returns the go build flags of a release build in the module
// rooted at dir: -pgo with ReleaseProfile, or none if the file is missing.
// The benchmarks build with them, to measure what make build installs.
func BuildFlags(dir string) []string {
	p := filepath.Join(dir, ReleaseProfile)
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	return []string{"-pgo=" + p}
}
