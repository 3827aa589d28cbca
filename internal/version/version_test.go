package version

import (
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	for _, tt := range []struct{ set, want string }{{"", "banctl dev (commit "}, {"0.1.0", "banctl 0.1.0 (commit "}} {
		Version = tt.set
		if got := Line("banctl"); !strings.HasPrefix(got, tt.want) || !strings.HasSuffix(got, ")") {
			t.Errorf("Version %q: Line = %q, want it to start with %q", tt.set, got, tt.want)
		}
	}
}
