package jail

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/event"
)

// Bounds of the tables the botnet features keep.
const (
	maxValues  = 200_000 // HELO and user values watched for learning
	maxLegit   = 200_000 // values seen with a successful login
	maxTrusted = 200_000 // addresses that authenticated
)

// authenticated records a successful login: the address is trusted, and
// its HELO and user names are legitimate values never learned as
// fingerprints.
func (j *Jail) authenticated(a netip.Addr, t int64, ev *event.Event) {
	if j.cfg.Trust > 0 {
		if len(j.trust) >= maxTrusted {
			j.evictTrust(t)
		}
		j.trust[a] = t
	}
	if j.learn != nil {
		j.learn.legitimate(ev, t)
	}
}

func (j *Jail) evictTrust(t int64) {
	for a, at := range j.trust {
		if t-at >= int64(j.cfg.Trust) || len(j.trust) >= maxTrusted {
			delete(j.trust, a)
		}
		if len(j.trust) < maxTrusted*9/10 {
			return
		}
	}
}

// trustedIn reports whether a trusted address lies in p (at t; 0: any
// still in the table).
func (j *Jail) trustedIn(p netip.Prefix, t int64) bool {
	for a, at := range j.trust {
		if p.Contains(a) && (t == 0 || t-at < int64(j.cfg.Trust)) {
			return true
		}
	}
	return false
}

// Trusts reports whether a is trusted at t (tests, status).
func (j *Jail) Trusts(a netip.Addr, t int64) bool {
	at, ok := j.trust[a.Unmap()]
	return ok && t-at < int64(j.cfg.Trust)
}

// subnetBan is one address ban counted towards its subnet.
type subnetBan struct {
	addr netip.Addr
	t    int64 // when it was decided
	end  int64
}

func pruneSubnet(bans []subnetBan, cut int64) []subnetBan {
	k := 0
	for _, b := range bans {
		if b.t > cut {
			bans[k] = b
			k++
		}
	}
	return bans[:k]
}

// subnetCheck counts the single-address bans decided since dst[from:]
// towards their subnets, and appends the ban of a subnet that reached the
// threshold: for the longest of its addresses' bans, never over an
// ignored, trusted or own address.
func (j *Jail) subnetCheck(dst []Decision, from int, t int64) []Decision {
	s := j.cfg.Subnet
	if s.Bans <= 0 {
		return dst
	}
	for i := from; i < len(dst); i++ {
		d := dst[i]
		a := d.Prefix.Addr()
		if !d.Prefix.IsSingleIP() || !a.Is4() || s.V4 <= 0 {
			continue // IPv6 is counted per subnet from the first strike
		}
		p := netip.PrefixFrom(a, s.V4).Masked()
		if _, ok := j.bannedNets[p]; ok {
			continue
		}
		bans := pruneSubnet(j.subnets[p], t-int64(s.Window))
		seen := false
		for _, b := range bans {
			seen = seen || b.addr == a
		}
		if !seen {
			bans = append(bans, subnetBan{addr: a, t: t, end: d.End.UnixNano()})
		}
		j.subnets[p] = bans
		if len(bans) < s.Bans || j.ignore.Overlaps(p) || j.trustedIn(p, t) {
			continue
		}
		end := d.End
		for _, b := range bans {
			if b.end > end.UnixNano() {
				end = time.Unix(0, b.end).In(d.End.Location())
			}
		}
		delete(j.subnets, p)
		j.mark(p, end.UnixNano())
		dst = append(dst, Decision{Prefix: p, Start: d.Start, First: d.Start, End: end,
			Reason: fmt.Sprintf("subnet: %d addresses of %s banned", len(bans), p), Nth: 1})
	}
	return dst
}

// learner watches the HELO and user names of failure events.
type learner struct {
	cfg     Learn
	window  int64
	ttl     int64
	states  map[string]*valueState // "helo=x" / "user=x"
	learned map[string]int64       // fingerprint → until
	legit   map[string]int64       // values seen with a successful login → when
	kb      []byte                 // the key being looked up (see key)
	// Sweeps of a full table: refused values since the last, its time,
	// and how many there were (for tests).
	refused int
	sweptAt int64
	sweeps  int
}

type valueState struct {
	addrs []netip.Addr // distinct addresses, at most Distinct
	times []int64
}

func newLearner(cfg Learn) *learner {
	return &learner{cfg: cfg, window: int64(cfg.Window), ttl: int64(cfg.TTL),
		states: map[string]*valueState{}, learned: map[string]int64{}, legit: map[string]int64{}}
}

// learnable reports whether an event of kind k is a failure whose values
// may be learned or recognised: a failed login, a bad HELO, talking out of
// turn. Policy rejections (an unknown recipient, a DNSBL listing) are not:
// legitimate mail servers sharing a HELO name meet those too.
func learnable(k event.Kind) bool {
	switch k {
	case event.AuthFailure, event.Disconnect, event.BadHELO, event.Pregreet, event.ProtocolError:
		return true
	}
	return false
}

// learnValue is a learnable value of an event: its field ("helo=",
// "user=") and the value as the event has it.
type learnValue struct{ field, value string }

// values returns the learnable values of an event.
func (l *learner) values(ev *event.Event) (vs [2]learnValue, n int) {
	if ev.Kind != event.AuthSuccess && !learnable(ev.Kind) {
		return vs, 0
	}
	if l.cfg.HELO && ev.HELO != "" {
		vs[n] = learnValue{"helo=", ev.HELO}
		n++
	}
	if l.cfg.User && ev.User != "" {
		vs[n] = learnValue{"user=", ev.User}
		n++
	}
	return vs, n
}

// key returns v's key ("helo=" or "user=" and the lower-cased value) in
// l.kb, valid until the next call: looking a key up allocates nothing
// (m[string(k)]), only storing one does.
func (l *learner) key(v learnValue) []byte {
	l.kb = appendLower(append(l.kb[:0], v.field...), v.value)
	return l.kb
}

func (l *learner) legitimate(ev *event.Event, t int64) {
	vs, nv := l.values(ev)
	for _, v := range vs[:nv] {
		k := string(l.key(v))
		if len(l.legit) >= maxLegit {
			for v := range l.legit {
				delete(l.legit, v)
				if len(l.legit) < maxLegit*9/10 {
					break
				}
			}
		}
		l.legit[k] = t
		delete(l.states, k)
		delete(l.learned, k)
	}
}

func (l *learner) sweep(t int64) {
	l.sweeps++
	l.refused, l.sweptAt = 0, t
	for k, until := range l.learned {
		if until <= t {
			delete(l.learned, k)
		}
	}
	for k, st := range l.states {
		if len(st.times) == 0 || t-st.times[len(st.times)-1] >= l.window {
			delete(l.states, k)
		}
	}
}

// learned reports whether ev presents a fingerprint in force at t.
func (j *Jail) learned(ev *event.Event, t int64) (string, bool) {
	if j.learn == nil {
		return "", false
	}
	vs, nv := j.learn.values(ev)
	for _, v := range vs[:nv] {
		k := j.learn.key(v)
		if until, ok := j.learn.learned[string(k)]; ok && t < until {
			return "fingerprint " + string(k), true
		}
	}
	return "", false
}

// teach counts ev's values from a; when one reaches Distinct addresses
// within the window it becomes a fingerprint, and teach returns its reason
// and the addresses that taught it.
func (j *Jail) teach(ev *event.Event, a netip.Addr, t int64) (string, []netip.Addr) {
	l := j.learn
	if l == nil {
		return "", nil
	}
	vs, nv := l.values(ev)
	for _, v := range vs[:nv] {
		k := l.key(v)
		if _, ok := l.legit[string(k)]; ok {
			continue
		}
		st := l.states[string(k)]
		if st == nil {
			if len(l.states) >= maxValues {
				// Full: a sweep makes room if values have gone stale. It
				// walks the whole table, so it runs only after
				// maxValues/16 refused values or 1/16 of the window since
				// the last: a flood of fresh distinct values (the
				// attacker's to choose) costs each event O(1) amortized.
				l.refused++
				if l.refused >= maxValues/16 || t-l.sweptAt >= l.window/16 {
					l.sweep(t)
				}
				if len(l.states) >= maxValues {
					continue // a flood of distinct values: watch the ones we have
				}
			}
			st = &valueState{}
			l.states[string(k)] = st
		}
		// Keep the distinct addresses seen within the window.
		n := 0
		// Distinct means distinct keys: an IPv6 host changing address
		// within its /64 is one client.
		for i := range st.addrs {
			if t-st.times[i] < l.window && j.key(st.addrs[i]) != j.key(a) {
				st.addrs[n], st.times[n] = st.addrs[i], st.times[i]
				n++
			}
		}
		st.addrs, st.times = append(st.addrs[:n], a), append(st.times[:n], t)
		if len(st.addrs) >= l.cfg.Distinct {
			ks := string(k)
			l.learned[ks] = t + l.ttl
			taught := append([]netip.Addr(nil), st.addrs...)
			delete(l.states, ks)
			return fmt.Sprintf("fingerprint %s learned from %d addresses", ks, len(taught)), taught
		}
	}
	return "", nil
}

// Fingerprint is a learned value in force.
type Fingerprint struct {
	Value string // "helo=ylmf-pc", "user=admin"
	Until int64  // unix nanoseconds
}

// Fingerprints lists the learned fingerprints in force at t.
func (j *Jail) Fingerprints(t int64) []Fingerprint {
	if j.learn == nil {
		return nil
	}
	var out []Fingerprint
	for k, until := range j.learn.learned {
		if until > t {
			out = append(out, Fingerprint{Value: k, Until: until})
		}
	}
	return out
}

// Forget drops a learned fingerprint ("helo=x", "user=x", or just the
// value, which forgets both) and keeps it from being learned again: an
// admin said it is legitimate. It reports whether one was in force.
func (j *Jail) Forget(value string, t int64) bool {
	if j.learn == nil {
		return false
	}
	value = strings.ToLower(value)
	keys := []string{value}
	if !strings.HasPrefix(value, "helo=") && !strings.HasPrefix(value, "user=") {
		keys = []string{"helo=" + value, "user=" + value}
	}
	found := false
	for _, k := range keys {
		if _, ok := j.learn.learned[k]; ok {
			found = true
		}
		delete(j.learn.learned, k)
		delete(j.learn.states, k)
		j.learn.legit[k] = t
	}
	return found
}

// LearnFingerprint installs a fingerprint (restored from the store) until the given
// time.
func (j *Jail) LearnFingerprint(value string, until int64) {
	if j.learn != nil {
		j.learn.learned[strings.ToLower(value)] = until
	}
}
