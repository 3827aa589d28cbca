package testutil

import (
	"net/netip"
	"testing"
)

func TestLiterallyHolds(t *testing.T) {
	tests := []struct {
		line, addr string
		want       bool
	}{
		{"unknown[192.0.2.1]: x", "192.0.2.1", true},
		{"rip=::ffff:192.0.2.1, lip=", "192.0.2.1", true},
		{"from [2001:DB8::1]:25", "2001:db8::1", true},
		{"ab192.0.2.1", "192.0.2.1", true},
		{"192.0.2.10", "192.0.2.1", false},
		{"1192.0.2.1", "192.0.2.1", false},
		{"[2001:db8::1]:25", "2001:db8::1", true},
		{"2001:db8::10", "2001:db8::1", false},
		{"address 192.0.2.1.", "192.0.2.1", true},
		{"to address 198.51.100.55: Name", "198.51.100.55", true},
		{"192.0.2.7", "192.0.2.1", false},
		{"nothing here", "192.0.2.1", false},
	}
	for _, tt := range tests {
		if got := LiterallyHolds([]byte(tt.line), netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("LiterallyHolds(%q, %s) = %v", tt.line, tt.addr, got)
		}
	}
}
