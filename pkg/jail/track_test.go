package jail

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/event"
)

// check verifies the tracking tables of j: the recency list, the index,
// the slots and blocks in use or free, and that every tracked address is
// below max_strikes.
func check(t *testing.T, j *Jail) {
	t.Helper()
	live := map[int32]bool{}
	prev := int32(-1)
	for i := j.head; i >= 0; i = j.slots.at(i).next {
		tr := j.slots.at(i)
		if live[i] || tr.prev != prev {
			t.Fatalf("recency list broken at slot %d", i)
		}
		live[i] = true
		if got := j.locate(tr.key, j.index.hash(tr.key)); got != i {
			t.Fatalf("slot %d: its key finds slot %d", i, got)
		}
		sum, n := int(tr.w), 1
		if tr.blk >= 0 {
			if int(tr.pool) >= len(j.pools) || tr.blk >= j.pools[tr.pool].n {
				t.Fatalf("slot %d: block %d of pool %d was never made", i, tr.blk, tr.pool)
			}
			bs, used := j.pools[tr.pool].block(tr.blk)
			if *used < 1 || int(*used) > j.pools[tr.pool].c {
				t.Fatalf("slot %d: block %d of pool %d holds %d strikes", i, tr.blk, tr.pool, *used)
			}
			for _, s := range bs {
				sum += int(s.w)
			}
			n += len(bs)
		}
		if sum >= j.cfg.MaxStrikes {
			t.Fatalf("slot %d: %d strikes weigh %d, max_strikes %d", i, n, sum, j.cfg.MaxStrikes)
		}
		prev = i
	}
	if prev != j.tail || len(live) != j.Tracked() || j.index.n != j.Tracked() {
		t.Fatalf("list of %d ends at %d (tail %d), tracked %d", len(live), prev, j.tail, j.Tracked())
	}
	entries := 0
	for _, e := range j.index.e {
		if e != 0 {
			entries++
			if !live[int32(uint32(e))-1] {
				t.Fatalf("index entry %x names a free slot", e)
			}
		}
	}
	if entries != j.index.n {
		t.Fatalf("index holds %d entries, counts %d", entries, j.index.n)
	}
	free := 0
	for i := j.slots.free; i >= 0; i = j.slots.at(i).next {
		if live[i] {
			t.Fatalf("slot %d is both tracked and free", i)
		}
		free++
	}
	if free+len(live) != int(j.slots.n) || int(j.slots.n) > j.max {
		t.Fatalf("%d slots made, %d free, %d tracked, cap %d", j.slots.n, free, len(live), j.max)
	}
	for k, p := range j.pools {
		used := 0
		for i := range live {
			if tr := j.slots.at(i); tr.blk >= 0 && int(tr.pool) == k {
				used++
			}
		}
		for b := p.free; b >= 0; b = p.used[b>>p.shift][b&(1<<p.shift-1)] {
			used++
		}
		if used != int(p.n) || int(p.n) > j.max {
			t.Fatalf("pool %d: %d blocks made, %d in use or free, cap %d", k, p.n, used, j.max)
		}
	}
}

// TestCapRotatingBotnet runs a rotating botnet (IPv4 and IPv6, each
// address back a few times, out of order) against jails with a small cap:
// the jail never tracks more than the cap, nor makes more slots or blocks
// (check) than the cap needs.
func TestCapRotatingBotnet(t *testing.T) {
	const limit = 1000
	many := cfg()
	many.MaxStrikes = 40 // strikes in blocks of several pools
	many.Weights = weights(nil)
	for _, c := range []struct {
		name string
		cfg  Config
	}{{"max_strikes_5", cfg()}, {"postfix", botnet()}, {"max_strikes_40", many}} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.MaxTracked = limit
			j := New(c.cfg, nil)
			r := rand.New(rand.NewPCG(1, 2))
			kinds := []event.Kind{event.AuthFailure, event.AuthFailure, event.BadHELO, event.Disconnect, event.Rejected}
			for i := 0; i < 60_000; i++ {
				// Bot b strikes at rounds b, b+1 and b+2 (of 1000
				// events): 3000 bots alive at once, three times the cap.
				b := i/3 + r.IntN(1000) - 500
				ev := event.Event{Time: t0.Add(time.Duration(i)*time.Millisecond - time.Duration(r.IntN(100))*time.Millisecond),
					Addr: botnetAddr(max(b, 0)), Kind: kinds[r.IntN(len(kinds))]}
				j.Observe(&ev, nil)
				if j.Tracked() > limit {
					t.Fatalf("event %d: tracked %d > cap %d", i, j.Tracked(), limit)
				}
				if i%5000 == 0 {
					check(t, j)
				}
			}
			check(t, j)
			if j.Tracked() != limit {
				t.Errorf("tracked %d, want the cap %d", j.Tracked(), limit)
			}
			if len(j.index.e) > 2048 {
				t.Errorf("index of %d entries for a cap of %d", len(j.index.e), limit)
			}
			if n := j.Sweep(t0.Add(time.Hour)); n != limit || j.Tracked() != 0 {
				t.Errorf("swept %d, %d left", n, j.Tracked())
			}
			check(t, j)
		})
	}
}

// TestIndexGrowsAndShrinks tracks more addresses than the index starts
// with, then forgets them in an order unrelated to their hashes: every
// address is found until it is forgotten.
func TestIndexGrowsAndShrinks(t *testing.T) {
	c := cfg()
	c.MaxTracked = 2 * presize // the index grows
	j := New(c, nil)
	const n = 100_000
	for i := 0; i < n; i++ {
		ev := event.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Addr: botnetAddr(i), Kind: event.AuthFailure}
		j.Observe(&ev, nil)
	}
	check(t, j)
	if j.Tracked() != n {
		t.Fatalf("tracked %d", j.Tracked())
	}
	// Ban every third address (a fourth strike of weight 2 makes 5).
	for i := 0; i < n; i += 3 {
		for k := 0; k < 2; k++ {
			ev := event.Event{Time: t0.Add(time.Duration(n+i) * time.Millisecond), Addr: botnetAddr(i), Kind: event.BadHELO}
			if _, out := j.Observe(&ev, nil); out != []Outcome{Counted, Banned}[k] {
				t.Fatalf("address %d strike %d: %v", i, k, out)
			}
		}
	}
	check(t, j)
	if want := n - (n+2)/3; j.Tracked() != want {
		t.Fatalf("tracked %d, want %d", j.Tracked(), want)
	}
	// The first half's window ran out.
	if got := j.Sweep(t0.Add(10*time.Minute + (n/2-1)*time.Millisecond)); got != n/2-(n/2+2)/3 {
		t.Errorf("swept %d", got)
	}
	check(t, j)
	for i := 0; i < n; i++ {
		k := keyOf(j.key(botnetAddr(i)))
		found := j.locate(k, j.index.hash(k)) >= 0
		if want := i%3 != 0 && i >= n/2; found != want {
			t.Fatalf("address %d tracked: %v", i, found)
		}
	}
}

func TestAppendLower(t *testing.T) {
	for _, s := range []string{"", "ylmf-pc", "YLMF-PC", "DESKTOP-4F2K9", "Ärger", "ÄDMIN", "İstanbul", "\u212aelvin",
		"ẞ", "bad\xffutf8", "\xc3", "MiXeD \u00c9t\u00c9 ok", strings.Repeat("A", 300)} {
		if got := string(appendLower([]byte("x="), s)); got != "x="+strings.ToLower(s) {
			t.Errorf("appendLower(%q) = %q, want %q", s, got, "x="+strings.ToLower(s))
		}
	}
}

func TestKeyOf(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"192.0.2.1", "::ffff:192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"2001:db8::1", "2001:db8::1", true},
		{"2001:db8::1", "2001:db8::2", false},
		{"0.0.0.0", "::", false},
		{"fe80::1%eth0", "fe80::1", true}, // tracked without the zone
	} {
		if got := keyOf(netip.MustParseAddr(c.a)) == keyOf(netip.MustParseAddr(c.b)); got != c.same {
			t.Errorf("keyOf(%s) == keyOf(%s): %v", c.a, c.b, got)
		}
	}
}
