package loggen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/filter"
	"github.com/banwatch/banwatch/pkg/offline"
)

func generate(t *testing.T, mta string, o Options) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, mta, o); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPostfixUnchanged pins the Postfix log of the options that existed
// before V6Share, Sweep and PID: pkg/offline's benchmarks and
// docs/benchmarks.md measure these bytes. The sums are those of the first
// version of the generator.
func TestPostfixUnchanged(t *testing.T) {
	tests := []struct {
		o    Options
		long bool
		sum  string
	}{
		{Options{Lines: 20000, AttackShare: 0.2, Attackers: 1000, Seed: 7}, false, "47599dd50727b194e76b76a001454acd6f1e9ce9cb454d0ff8d1b0f1411840a5"},
		{Options{Lines: 20000, AttackShare: 0.2, Attackers: 1000, Seed: 7, V6Share: 0.1}, false, "47599dd50727b194e76b76a001454acd6f1e9ce9cb454d0ff8d1b0f1411840a5"},
		{Options{Lines: 20000, AttackShare: 0.3, Attackers: 50000, Seed: 1, RFC3339: true}, false, "28ee210175682940f0c6feb41e7cc6d756893c8cefe4178b8154d0ed84a9a950"},
		{Options{Lines: 500000, AttackShare: 0.2, Attackers: 50000, Seed: 1}, true, "02c64b0be8b4191fa3abff2c728b1e773afa0ec1fbe4430db37024e7df86cad7"},
	}
	for _, tt := range tests {
		if tt.long && (testing.Short() || raceEnabled) {
			continue
		}
		h := sha256.New()
		if err := Postfix(h, tt.o); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != tt.sum {
			t.Errorf("%+v: sha256 %s, want %s", tt.o, got, tt.sum)
		}
	}
}

func TestPostfixAttackShare(t *testing.T) {
	o := Options{Lines: 20000, AttackShare: 0.2, Attackers: 1000, Seed: 7}
	lines := strings.Split(strings.TrimSuffix(string(generate(t, "postfix", o)), "\n"), "\n")
	attack := 0
	for _, l := range lines {
		if strings.Contains(l, "unknown[") || strings.Contains(l, "PREGREET") || strings.Contains(l, "[11.") {
			attack++
		}
	}
	if share := float64(attack) / float64(len(lines)); share < 0.15 || share > 0.25 {
		t.Errorf("attack lines are %.1f%% of the log, want about 20%%", 100*share)
	}
}

func TestDeterministicBySeed(t *testing.T) {
	for _, mta := range MTAs {
		for _, o := range []Options{
			{Lines: 5000, AttackShare: 0.3, Attackers: 500, Seed: 7},
			{Lines: 5000, AttackShare: 0.3, Attackers: 500, Seed: 7, V6Share: 0.5, Sweep: true, PID: true},
		} {
			a, b := generate(t, mta, o), generate(t, mta, o)
			if !bytes.Equal(a, b) {
				t.Errorf("%s %+v: the same seed gave two logs", mta, o)
			}
			o.Seed++
			if bytes.Equal(a, generate(t, mta, o)) {
				t.Errorf("%s %+v: two seeds gave the same log", mta, o)
			}
		}
	}
}

func TestLineCount(t *testing.T) {
	for _, mta := range MTAs {
		for _, n := range []int{0, 1, 2, 7, 3001} {
			for _, share := range []float64{0, 0.2, 1} {
				log := generate(t, mta, Options{Lines: n, AttackShare: share, Attackers: 100, Seed: 1})
				if got := bytes.Count(log, []byte("\n")); got != n || (n > 0 && log[len(log)-1] != '\n') {
					t.Errorf("%s, %d lines, attack share %v: wrote %d lines", mta, n, share, got)
				}
			}
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Lines: 1, Attackers: MaxAttackers + 1},
		{Lines: 1, V6Share: 1.5},
		{Lines: 1, AttackShare: -0.1},
	} {
		for _, mta := range MTAs {
			if err := Write(&bytes.Buffer{}, mta, o); err == nil {
				t.Errorf("%s %+v: no error", mta, o)
			}
		}
	}
	if err := Write(&bytes.Buffer{}, "sendmail", Options{}); err == nil {
		t.Error("an unknown MTA gave no error")
	}
}

// TestAttackerAddrDistinct checks that attacker numbers 0..n-1 are n
// distinct addresses, with the asked share of IPv6 ones, up to millions.
func TestAttackerAddrDistinct(t *testing.T) {
	n := 3_000_000
	if testing.Short() || raceEnabled {
		n = 200_000
	}
	for _, share := range []float64{0.1, 0.25, 1, -1} {
		g, err := newGen(&bytes.Buffer{}, Options{V6Share: share})
		if err != nil {
			t.Fatal(err)
		}
		keys := make([][16]byte, n)
		v6 := 0
		for i := range keys {
			a := attackerAddr(i, g.v6ppm)
			if a.Is6() {
				v6++
			}
			keys[i] = a.As16()
		}
		slices.SortFunc(keys, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
		for i := 1; i < len(keys); i++ {
			if keys[i] == keys[i-1] {
				t.Fatalf("share %v: %v twice", share, netip.AddrFrom16(keys[i]).Unmap())
			}
		}
		if want := int(int64(n) * g.v6ppm / 1e6); v6 != want {
			t.Errorf("share %v: %d of %d addresses are IPv6, want %d", share, v6, n, want)
		}
	}
}

// TestSweepReachesEveryAttacker checks that with Sweep a log with enough
// attack sessions holds exactly Attackers attacking addresses.
func TestSweepReachesEveryAttacker(t *testing.T) {
	for _, mta := range MTAs {
		used := map[netip.Addr]bool{}
		sessions := 0
		o := Options{Lines: 30000, AttackShare: 0.5, Attackers: 1500, V6Share: 0.25, Seed: 5, Sweep: true,
			onAttack: func(a netip.Addr) { used[a] = true; sessions++ }}
		generate(t, mta, o)
		if sessions < o.Attackers {
			t.Fatalf("%s: only %d attack sessions for %d attackers; make the log longer", mta, sessions, o.Attackers)
		}
		v6 := 0
		for a := range used {
			if a.Is6() {
				v6++
			}
		}
		if len(used) != o.Attackers || v6 != o.Attackers/4 {
			t.Errorf("%s: %d attack sessions came from %d addresses (%d IPv6), want %d (%d)", mta, sessions, len(used), v6, o.Attackers, o.Attackers/4)
		}
	}
	n := 3_000_000
	if testing.Short() || raceEnabled {
		n = 100_000
	}
	g, err := newGen(&bytes.Buffer{}, Options{Attackers: n, Sweep: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, n)
	for range n {
		i := g.sweep.next()
		if seen[i] {
			t.Fatalf("attacker %d came back before all %d were used", i, n)
		}
		seen[i] = true
	}
}

// TestFiltersFindOnlyAttackers runs each MTA's shipped filter over its log,
// as `banctl test --filter MTA` does: it must find the attacks, each kind
// the generator writes, only at the attackers' addresses, and logins only at
// legitimate ones.
func TestFiltersFindOnlyAttackers(t *testing.T) {
	kinds := map[string][]event.Kind{
		"postfix": {event.Pregreet, event.AuthFailure, event.Disconnect, event.BadHELO, event.RelayDenied},
		"exim": {event.AuthFailure, event.Pregreet, event.ProtocolError, event.BadHELO, event.RelayDenied,
			event.Rejected, event.RBLReject, event.AuthSuccess},
		"icewarp": {event.AuthFailure, event.BadHELO, event.ProtocolError, event.Rejected, event.AuthSuccess},
	}
	ref := time.Date(2026, 11, 28, 23, 59, 59, 0, time.UTC)
	for _, mta := range MTAs {
		t.Run(mta, func(t *testing.T) {
			used := map[netip.Addr]bool{}
			var last netip.Addr
			o := Options{Lines: 20000, AttackShare: 0.3, Attackers: 1000, V6Share: 0.3, Seed: 3,
				onAttack: func(a netip.Addr) { used[a] = true; last = a }}
			log := generate(t, mta, o)
			// The shipped filter, as config.FindFilter("", mta) compiles it.
			data, err := banwatch.Defaults.ReadFile("filters/" + mta + ".toml")
			if err != nil {
				t.Fatal(err)
			}
			f, err := filter.Compile(mta, "embedded:filters/"+mta+".toml", data)
			if err != nil {
				t.Fatal(err)
			}
			set, err := filter.NewSet(f)
			if err != nil {
				t.Fatal(err)
			}
			reported := map[netip.Addr]bool{}
			bad := 0
			rep, err := offline.Run(context.Background(), set, []offline.Input{{Name: mta + ".log", R: bytes.NewReader(log), Ref: ref}}, func(m *offline.Match) {
				if m.Kind == event.AuthSuccess {
					if used[m.Addr] && bad < 5 {
						bad++
						t.Errorf("line %d: a login from attacker %v", m.Line, m.Addr)
					}
					return
				}
				reported[m.Addr] = true
				if !used[m.Addr] && bad < 5 {
					bad++
					t.Errorf("line %d: %s from %v, which attacked nobody", m.Line, m.Kind, m.Addr)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Lines != o.Lines || rep.Matched == 0 || rep.Unparsable != 0 {
				t.Errorf("read %d of %d lines, matched %d, %d without a time", rep.Lines, o.Lines, rep.Matched, rep.Unparsable)
			}
			for _, k := range kinds[mta] {
				if rep.ByEvent[k] == 0 {
					t.Errorf("no %s event; found %v", k, rep.ByEvent)
				}
			}
			missed := 0
			for a := range used {
				if !reported[a] && a != last { // the last session may be cut short
					missed++
				}
			}
			if missed > 0 {
				t.Errorf("%d of %d attackers were never reported", missed, len(used))
			}
		})
	}
}
