// Package webtest writes a week of ban history whose numbers are known in
// advance into a store: an attack wave over several jails, bans of single
// addresses and of subnets, how each ended, their evidence, and strikes of
// several kinds. The history page's store tests, its browser test and its
// benchmark read it.
//
// The addresses are from the ranges set aside for documentation and
// testing (TEST-NETs, 198.18.0.0/15, 100.64.0.0/10, 10.0.0.0/8,
// 2001:db8::/32): a screenshot of the page names nobody.
package webtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/store"
)

// Version names what Write writes: a database written by another version
// holds another history.
const Version = 2

// Evil is attacker's text: a script element and a fake address. It is in
// the newest ban's evidence and in the reason of one ban.
const Evil = `<script>alert(1)</script> from [1.2.3.4]`

// The addresses and prefixes that lead the top lists.
var (
	TopAddr = netip.MustParseAddr("198.18.7.23")
	Top24   = netip.MustParsePrefix("198.18.7.0/24")
	Top64   = netip.MustParsePrefix("2001:db8:40:1::/64")
	Hot16   = netip.MustParsePrefix("198.18.0.0/16")
)

// Spec says what history to write.
type Spec struct {
	// Now is where the history ends: its bans begin in the 166 hours
	// before Now's hour and in that hour up to Now, so that they are all
	// on the page's 7-day charts for an hour after Now.
	Now time.Time
	// Bans and Strikes are how many of each to write; Bans at least 100.
	Bans, Strikes int
	// Evidence is the number of log lines kept with each ban (at least
	// 1); the newest ban has 3 whatever it says.
	Evidence int
	// Seed makes the history: the same Spec writes the same one.
	Seed uint64
	// Progress, when set, is told how many bans are written so far.
	Progress func(done int)
}

// History is what Write wrote, counted as the page shows it.
type History struct {
	Spec
	Hours  map[time.Time]map[string]int // bans per UTC hour and jail
	Jails  map[string]int               // bans per jail
	Events map[time.Time]map[string]int // strikes per UTC hour and kind
	Kinds  map[string]int               // strikes per kind
	// Active counts the bans active at Now per jail; Ended all bans per
	// ending ("active", ban.EndExpired, ban.EndUnbanned, ban.EndReplaced).
	Active map[string]int
	Ended  map[string]int
	// Addrs counts the bans per address or prefix as banned (ban.IP),
	// Nets24 and Nets64 per /24 and /64 they fall in, Fingerprints per
	// fingerprint as store.Top names them.
	Addrs, Nets24, Nets64, Fingerprints map[string]int
	// Newest is the last ban written, the first of the history; its
	// evidence holds Evil.
	Newest ban.Ban
}

// jailSpec is how a jail's bans look.
type jailSpec struct {
	name    string
	weight  float64 // share of the bans outside the wave
	banTime time.Duration
	reasons []weighted // "" is a subnet ban
}

type weighted struct {
	v string
	w float64
}

// learned is the learned fingerprint's first reason, and the later ones'
// (the jails learn names in lower case).
const learned = "fingerprint helo=win-clj1b0gq6jp"

var jails = []jailSpec{
	{"postfix", 0.55, 12 * time.Hour, []weighted{{"auth_failure", 45}, {"auth_failure,bad_helo", 10}, {"pregreet", 5},
		{"instant helo=ylmf-pc", 18}, {learned, 10}, {"instant user=admin", 4}, {"instant pregreet", 5}, {"", 3}}},
	{"dovecot", 0.2, 6 * time.Hour, []weighted{{"auth_failure", 95}, {"", 5}}},
	{"sshd", 0.14, time.Hour, []weighted{{"auth_failure", 100}}},
	{"exim", 0.09, 12 * time.Hour, []weighted{{"auth_failure,rejected", 60}, {"instant helo=ylmf-pc", 40}}},
	{"manual", 0.02, 7 * 24 * time.Hour, []weighted{{"banctl: spam run", 100}}},
}

// kinds are the strikes' kinds and their shares.
var kinds = []weighted{{string(event.AuthFailure), 45}, {string(event.BadHELO), 15}, {string(event.Pregreet), 10},
	{string(event.ProtocolError), 8}, {string(event.Rejected), 10}, {string(event.Disconnect), 8}, {string(event.RelayDenied), 4}}

// hours is the number of hours the history spans: Now's and the 166
// before.
const hours = 167

// weights is the bans' (and strikes') share of each hour, oldest first: a
// steady background with a daily rhythm, a botnet's wave on the fifth day
// that fades over the next, and a smaller one on the last.
func weights(now time.Time) []float64 {
	w := make([]float64, hours)
	for i := range w {
		local := float64((i + now.Hour() + 1) % 24)
		v := 1 + 0.35*math.Sin(2*math.Pi*(local-9)/24)
		v += wave(float64(i), 100, 10, 14)
		v += wave(float64(i), 150, 4, 6)
		w[i] = v
	}
	// The current hour only as far as Now.
	w[hours-1] *= float64(now.Sub(now.Truncate(time.Hour))) / float64(time.Hour)
	return w
}

// wave is an attack's strength at hour i: a quick rise to peak at hour
// top, then a decay with half-life h.
func wave(i, top, peak, h float64) float64 {
	switch {
	case i < top-4:
		return 0
	case i < top:
		return peak * (i - (top - 4)) / 4
	}
	return peak * math.Pow(0.5, (i-top)/h)
}

// spread divides n among the weights, by largest remainder.
func spread(n int, w []float64) []int {
	sum := 0.0
	for _, v := range w {
		sum += v
	}
	out := make([]int, len(w))
	type rem struct {
		i int
		r float64
	}
	rems := make([]rem, len(w))
	left := n
	for i, v := range w {
		x := float64(n) * v / sum
		out[i] = int(x)
		left -= out[i]
		rems[i] = rem{i, x - float64(out[i])}
	}
	slices.SortStableFunc(rems, func(a, b rem) int {
		switch {
		case a.r > b.r:
			return -1
		case a.r < b.r:
			return 1
		}
		return 0
	})
	for k := 0; k < left; k++ {
		out[rems[k%len(rems)].i]++
	}
	return out
}

// gen draws the history's parts.
type gen struct {
	r     *rand.Rand
	pool  []netip.Prefix // IPv4 /16s, hottest first
	cum16 []float64      // their cumulative Zipf weights
	pool6 []netip.Prefix // IPv6 /64s, hottest first
	cum64 []float64
	topP  float64 // the share of bans of TopAddr
}

func pick(r *rand.Rand, ws []weighted) string {
	sum := 0.0
	for _, w := range ws {
		sum += w.w
	}
	x := r.Float64() * sum
	for _, w := range ws {
		if x < w.w {
			return w.v
		}
		x -= w.w
	}
	return ws[len(ws)-1].v
}

// zipf returns cumulative weights 1/(rank+1) for n items.
func zipf(n int) []float64 {
	out := make([]float64, n)
	sum := 0.0
	for i := range out {
		sum += 1 / float64(i+1)
		out[i] = sum
	}
	return out
}

func pickCum(r *rand.Rand, cum []float64) int {
	i, _ := slices.BinarySearch(cum, r.Float64()*cum[len(cum)-1])
	return min(i, len(cum)-1)
}

func newGen(spec Spec) *gen {
	g := &gen{r: rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))}
	g.pool = append(g.pool, Hot16, netip.MustParsePrefix("198.19.0.0/16"))
	for b := 64; b < 128; b++ {
		g.pool = append(g.pool, netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(b), 0, 0}), 16))
	}
	for b := range 256 {
		g.pool = append(g.pool, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(b), 0, 0}), 16))
	}
	g.cum16 = zipf(len(g.pool))
	for i := range 64 {
		a := Top64.Addr().As16()
		a[5] += byte(i) // 2001:db8:40:1::, 2001:db8:41:1::, ...
		g.pool6 = append(g.pool6, netip.PrefixFrom(netip.AddrFrom16(a), 64))
	}
	g.cum64 = zipf(len(g.pool6))
	g.topP = max(25/float64(spec.Bans), 0.005)
	return g
}

// prefix draws what a ban of jail j bans; subnet says it is a subnet ban.
func (g *gen) prefix(subnet bool) netip.Prefix {
	r := g.r
	switch x := r.Float64(); {
	case subnet && x < 0.8:
		p := g.pool[pickCum(r, g.cum16)].Addr().As4()
		p[2] = byte(r.IntN(256))
		return netip.PrefixFrom(netip.AddrFrom4(p), 24)
	case subnet:
		return g.pool6[pickCum(r, g.cum64)]
	case x < g.topP:
		return ban.PrefixOf(TopAddr)
	case x < g.topP+0.01:
		a := Top24.Addr().As4()
		a[3] = byte(1 + r.IntN(254))
		return ban.PrefixOf(netip.AddrFrom4(a))
	case x < g.topP+0.01+0.14:
		a := g.pool6[pickCum(r, g.cum64)].Addr().As16()
		for i := 8; i < 16; i++ {
			a[i] = byte(r.IntN(256))
		}
		return ban.PrefixOf(netip.AddrFrom16(a))
	}
	a := g.pool[pickCum(r, g.cum16)].Addr().As4()
	a[2], a[3] = byte(r.IntN(256)), byte(1+r.IntN(254))
	return ban.PrefixOf(netip.AddrFrom4(a))
}

// line is a log line of a ban's evidence.
func line(b *ban.Ban, t time.Time, pid int) string {
	stamp := t.UTC().Format(time.Stamp)
	ip := b.Prefix.Addr().String()
	switch {
	case b.Jail == "dovecot":
		return fmt.Sprintf("%s mx1 dovecot: auth: passwd-file(info,%s): unknown user (SHA1 of given password: 7c4a8d)", stamp, ip)
	case b.Jail == "sshd":
		return fmt.Sprintf("%s mx1 sshd[%d]: Failed password for invalid user admin from %s port %d ssh2", stamp, pid, ip, 40000+pid%20000)
	case b.Jail == "exim":
		return fmt.Sprintf("%s mx1 exim[%d]: dovecot_login authenticator failed for (User) [%s]: 535 Incorrect authentication data (set_id=info)", stamp, pid, ip)
	case strings.Contains(b.Reason, "helo=ylmf-pc"):
		return fmt.Sprintf("%s mx1 postfix/smtpd[%d]: NOQUEUE: reject: RCPT from unknown[%s]: 504 5.5.2 <ylmf-pc>: Helo command rejected: need fully-qualified hostname; proto=ESMTP helo=<ylmf-pc>", stamp, pid, ip)
	case strings.Contains(b.Reason, "pregreet"):
		return fmt.Sprintf("%s mx1 postfix/postscreen[%d]: PREGREET 11 after 0.08 from [%s]:%d: EHLO ylmf-pc\\r\\n", stamp, pid, ip, 40000+pid%20000)
	}
	return fmt.Sprintf("%s mx1 postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", stamp, pid, ip)
}

// Write writes the history spec says into st, which should hold no bans
// of its own in the week before spec.Now, and returns its numbers.
func Write(ctx context.Context, st *store.Store, spec Spec) (*History, error) {
	if spec.Bans < 100 {
		return nil, errors.New("webtest: want at least 100 bans")
	}
	spec.Now = spec.Now.UTC()
	spec.Evidence = max(spec.Evidence, 1)
	h := &History{Spec: spec, Hours: map[time.Time]map[string]int{}, Jails: map[string]int{}, Events: map[time.Time]map[string]int{},
		Kinds: map[string]int{}, Active: map[string]int{}, Ended: map[string]int{}, Addrs: map[string]int{}, Nets24: map[string]int{},
		Nets64: map[string]int{}, Fingerprints: map[string]int{}}
	g := newGen(spec)
	r := g.r
	first := spec.Now.Truncate(time.Hour).Add(-(hours - 1) * time.Hour)
	w := weights(spec.Now)
	perHour := spread(spec.Bans, w)

	// The bans, oldest first, and how each ends: as Commit will end them
	// (a newer active ban of the same prefix in the same jail replaces
	// the active one, or finds it expired) and as Expire then does.
	type key struct {
		p    netip.Prefix
		jail string
	}
	var bans []*ban.Ban
	active := map[key]*ban.Ban{}
	learnedSeen := false
	repeats := 0
	for i, n := range perHour {
		hourStart := first.Add(time.Duration(i) * time.Hour)
		span := time.Hour
		if i == hours-1 {
			span = max(spec.Now.Sub(hourStart), 1)
		}
		starts := make([]time.Duration, n)
		for k := range starts {
			starts[k] = time.Duration(r.Int64N(int64(span)))
		}
		slices.Sort(starts)
		waveHour := w[i] > 3
		for _, off := range starts {
			jw := make([]weighted, len(jails))
			for k, j := range jails {
				jw[k] = weighted{j.name, j.weight}
				if waveHour && j.name == "postfix" {
					jw[k].w *= 4 // the wave is a botnet at the MTA
				}
			}
			name := pick(r, jw)
			js := jails[slices.IndexFunc(jails, func(j jailSpec) bool { return j.name == name })]
			reason := pick(r, js.reasons)
			if waveHour && name == "postfix" && r.Float64() < 0.4 {
				reason = "instant helo=ylmf-pc"
			}
			b := &ban.Ban{Jail: name, Origin: ban.OriginJail, Start: hourStart.Add(off), Strikes: 5, Reason: reason}
			b.Prefix = g.prefix(reason == "")
			if reason == "" {
				b.Reason = fmt.Sprintf("subnet: 3 addresses of %s banned", b.Prefix)
			}
			if name == "manual" {
				b.Origin, b.Strikes = ban.OriginManual, 0
			}
			if reason == learned && !learnedSeen {
				b.Reason, learnedSeen = learned+" learned from 5 addresses", true
			}
			b.End = b.Start.Add(js.banTime)
			if b.Prefix == ban.PrefixOf(TopAddr) && b.Origin == ban.OriginJail {
				// A repeat offender's escalated ban (not a fingerprint's:
				// the fingerprints' counts stay those of their reasons).
				repeats++
				b.Reason = fmt.Sprintf("auth_failure (repeat offender: ban %d)", repeats)
				b.End = b.Start.Add(7 * 24 * time.Hour)
			}
			if b.Origin == ban.OriginJail {
				b.FirstEvent, b.LastEvent = b.Start.Add(-2*time.Minute), b.Start
			}
			bans = append(bans, b)
		}
	}
	// One reason from an attacker's HELO, and the newest ban's evidence.
	bans[len(bans)/3].Reason = "instant helo=" + Evil
	newest := bans[len(bans)-1]
	for _, b := range bans {
		k := key{b.Prefix, b.Jail}
		if prev := active[k]; prev != nil {
			if !prev.End.After(b.Start) {
				prev.Ended, prev.EndedAt = ban.EndExpired, prev.End
			} else {
				prev.Ended, prev.EndedAt = ban.EndReplaced, b.Start
			}
			delete(active, k)
		}
		if b != newest && r.Float64() < 0.02 {
			// Lifted by an admin, within its time and before Now.
			at := b.Start.Add(time.Duration(r.Int64N(int64(b.End.Sub(b.Start)))))
			if at.Before(spec.Now) {
				b.Ended, b.EndedAt, b.EndedBy = ban.EndUnbanned, at, "uid 0"
				continue
			}
		}
		active[k] = b
	}
	// Commit does not know the simulated endings of the bans it will end
	// itself; the bans go in as they were made, with only the unbans set.
	written := make([]ban.Ban, len(bans))
	for i, b := range bans {
		written[i] = *b
		if b.Ended == ban.EndExpired || b.Ended == ban.EndReplaced {
			written[i].Ended, written[i].EndedAt = ban.EndActive, time.Time{}
		}
		pid := 1000 + r.IntN(60000)
		for k := 0; k < spec.Evidence && b.Origin == ban.OriginJail; k++ {
			written[i].Evidence = append(written[i].Evidence, line(b, b.Start.Add(time.Duration(k-spec.Evidence)*time.Second), pid))
		}
	}
	nw := &written[len(written)-1]
	nw.Evidence = []string{
		line(nw, nw.Start.Add(-2*time.Second), 4242),
		fmt.Sprintf("%s mx1 postfix/smtpd[4242]: warning: unknown[%s]: SASL PLAIN authentication failed: %s",
			nw.Start.Add(-time.Second).Format(time.Stamp), nw.Prefix.Addr(), Evil),
		line(nw, nw.Start, 4242),
	}
	for _, b := range bans {
		if b.Ended == ban.EndActive && !b.End.After(spec.Now) {
			b.Ended, b.EndedAt = ban.EndExpired, b.End
		}
	}

	const batch = 10000
	for start := 0; start < len(written); start += batch {
		part := written[start:min(start+batch, len(written))]
		ptrs := make([]*ban.Ban, len(part))
		for i := range part {
			ptrs[i] = &part[i]
		}
		if err := st.Commit(ctx, store.Batch{Bans: ptrs}); err != nil {
			return nil, fmt.Errorf("webtest: %w", err)
		}
		if spec.Progress != nil {
			spec.Progress(start + len(part))
		}
	}
	if _, err := st.Expire(ctx, spec.Now); err != nil {
		return nil, fmt.Errorf("webtest: %w", err)
	}

	for _, b := range bans {
		hour := b.Start.Truncate(time.Hour)
		if h.Hours[hour] == nil {
			h.Hours[hour] = map[string]int{}
		}
		h.Hours[hour][b.Jail]++
		h.Jails[b.Jail]++
		how := b.Ended
		if how == ban.EndActive {
			how = "active"
			h.Active[b.Jail]++
		}
		h.Ended[how]++
		h.Addrs[ban.IP(b.Prefix)]++
		if b.Prefix.Addr().Is4() {
			n, _ := b.Prefix.Addr().Prefix(24)
			h.Nets24[n.String()]++
		} else {
			n, _ := b.Prefix.Addr().Prefix(64)
			h.Nets64[n.String()]++
		}
		if fp, ok := fingerprint(b.Reason); ok {
			h.Fingerprints[fp]++
		}
	}
	// Commit set the ID on the written copy; the ending is the
	// simulation's.
	h.Newest = written[len(written)-1]
	h.Newest.Ended, h.Newest.EndedAt = newest.Ended, newest.EndedAt

	// The strikes: each of its own address, so that none counts towards a
	// ban when a daemon replays them.
	var strikes []ban.Strike
	for i, n := range spread(spec.Strikes, w) {
		hourStart := first.Add(time.Duration(i) * time.Hour)
		span := time.Hour
		if i == hours-1 {
			span = max(spec.Now.Sub(hourStart), 1)
		}
		for range n {
			a := netip.MustParseAddr("2001:db8:ffff::").As16()
			id := len(strikes) + 1
			a[12], a[13], a[14], a[15] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
			addr := netip.AddrFrom16(a)
			t := hourStart.Add(time.Duration(r.Int64N(int64(span))))
			kind := pick(r, kinds)
			strikes = append(strikes, ban.Strike{Jail: "postfix", Addr: addr, Time: t, Kind: event.Kind(kind), Weight: 1,
				Line: fmt.Sprintf("%s mx1 postfix/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", t.Format(time.Stamp), 1000+id%60000, addr)})
			hour := t.Truncate(time.Hour)
			if h.Events[hour] == nil {
				h.Events[hour] = map[string]int{}
			}
			h.Events[hour][kind]++
			h.Kinds[kind]++
		}
	}
	for start := 0; start < len(strikes); start += batch {
		if err := st.Commit(ctx, store.Batch{Strikes: strikes[start:min(start+batch, len(strikes))]}); err != nil {
			return nil, fmt.Errorf("webtest: %w", err)
		}
	}
	return h, nil
}

// fingerprint names a ban's fingerprint as store.Top does, from its reason.
func fingerprint(reason string) (string, bool) {
	if !strings.HasPrefix(reason, "instant ") && !strings.HasPrefix(reason, "fingerprint ") {
		return "", false
	}
	if i := strings.Index(reason, " learned from "); i >= 0 && strings.HasPrefix(reason, "fingerprint ") {
		reason = reason[:i]
	}
	return reason, true
}

// Top returns the largest count of m and its key (the smallest key of
// equal counts).
func Top(m map[string]int) store.KeyCount {
	var best store.KeyCount
	for k, n := range m {
		if n > best.N || n == best.N && k < best.Key {
			best = store.KeyCount{Key: k, N: n}
		}
	}
	return best
}

// Total is the sum of m's counts.
func Total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
