package logonly

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
)

func TestBackend(t *testing.T) {
	var buf bytes.Buffer
	b := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := context.Background()
	entries := []firewall.Entry{
		{Jail: "sshd", Prefix: netip.MustParsePrefix("192.0.2.1/32"), Expires: time.Now().Add(time.Hour)},
		{Jail: "sshd", Prefix: netip.MustParsePrefix("2001:db8::/64"), Expires: time.Now().Add(time.Hour)},
		{Jail: "web", Prefix: netip.MustParsePrefix("198.51.100.0/24")},
		{Jail: "web", Prefix: netip.MustParsePrefix("203.0.113.9/32")},
	}
	for _, tc := range []struct {
		name string
		call func() error
		want []string
	}{
		{"setup", func() error { return b.Setup(ctx, []firewall.Jail{{Name: "sshd"}, {Name: "web"}}) }, []string{"jails=\"[sshd web]\""}},
		{"add", func() error { return b.Add(ctx, entries) }, []string{"entries=4", "sshd:192.0.2.1/32", "level=DEBUG", "203.0.113.9/32"}},
		{"remove", func() error { return b.Remove(ctx, entries[:1]) }, []string{"firewall remove", "entries=1"}},
		{"reconcile", func() error { return b.Reconcile(ctx, nil) }, []string{"firewall reconcile", "entries=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf.Reset()
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
	if ok, err := b.Check(ctx); !ok || err != nil {
		t.Errorf("Check = %v, %v; want true, nil", ok, err)
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}
