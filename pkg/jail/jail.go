// Package jail decides when events become bans: a sliding window of
// weighted strikes per address, the ignore list, the addresses already
// banned, and the defences against a rotating botnet (instant and learned
// fingerprints, repeat offenders, subnets, trusted clients). It is pure:
// time comes from the events, so a replay of the same events always gives
// the same decisions.
//
// A strike counts while it is younger than find_time at the time of the
// newest event of its address: at event time t, strikes with time > t -
// find_time count. When the counted weights reach max_strikes, the jail
// decides a ban from the deciding event's time for ban_time (longer for a
// repeat offender), and forgets the address's strikes.
//
// Memory is bounded: at most MaxTracked addresses are tracked at once; a new
// address beyond that drops the one whose last strike is the stalest. A
// tracked address with one strike costs about 57 bytes (a 40-byte slot
// holding its key and the strike, and an index entry), each further strike
// 16 bytes (fewer than max_strikes of them), in tables without pointers
// (see track.go). The fingerprint, trust and subnet tables are bounded the
// same way.
package jail

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/banwatch/banwatch/pkg/event"
)

// Config is what a jail needs from the configuration.
type Config struct {
	Name       string
	MaxStrikes int
	FindTime   time.Duration
	BanTime    time.Duration
	Weights    [event.NumKinds]int // strikes per event kind; 0 does not count
	MaxTracked int                 // 0 means 1,000,000

	Instant  Instant
	Learn    Learn
	Escalate Escalate
	Subnet   Subnet
	// Trust is how long an address that authenticated is trusted: its
	// failed logins and bad HELOs are no strikes then. 0 is off.
	Trust time.Duration
}

// Instant lists what bans on the first event: HELO names and user names
// (compared without case), and event kinds.
type Instant struct {
	HELO   []string
	User   []string
	Events []event.Kind
}

// Learn makes fingerprints of the values that many addresses present in
// failure events: a HELO name or user name seen from Distinct addresses
// within Window is a fingerprint for TTL. Distinct 0 is off.
type Learn struct {
	HELO, User bool
	Distinct   int
	Window     time.Duration
	TTL        time.Duration
}

// Escalate lengthens the bans of repeat offenders: the n-th ban of an
// address lasts ban_time × Factor^(n-1), at most Max. Factor <= 1 is off.
type Escalate struct {
	Factor float64
	Max    time.Duration
}

// Subnet bans a whole prefix when Bans distinct addresses of it were banned
// within Window; IPv6 addresses are counted per V6 prefix from their first
// strike. Bans 0 is off.
type Subnet struct {
	V4, V6 int
	Bans   int
	Window time.Duration
}

// Outcome says what Observe made of an event.
type Outcome uint8

// The outcomes of Observe.
const (
	NoWeight      Outcome = iota // the event's kind does not count in this jail (or it had no time)
	Ignored                      // the address is on the ignore list
	AlreadyBanned                // the address is banned in this jail at the event's time
	Counted                      // a strike was counted; no ban yet
	Banned                       // the event caused bans: see the decisions
	Trusted                      // a failed login or bad HELO of a trusted address
)

var outcomeNames = [...]string{"no_weight", "ignored", "already_banned", "counted", "banned", "trusted"}

func (o Outcome) String() string { return outcomeNames[o] }

// Decision is a ban a jail decided.
type Decision struct {
	Prefix  netip.Prefix // a single address (/32, /128) or a subnet
	Strikes int          // weighted strikes counted (0 for a fingerprint or subnet ban)
	First   time.Time    // time of the oldest counted strike
	Start   time.Time    // time of the deciding event
	End     time.Time    // Start + the ban's length
	Reason  string       // the kinds of the counted strikes, most weighty first; or why it is a fingerprint or subnet ban
	Nth     int          // the address's how-manyth ban (escalation), from 1
}

// Jail tracks one jail's strikes. It is not safe for concurrent use.
type Jail struct {
	cfg    Config
	ignore *Ignore
	find   int64
	max    int
	index  index // key → slot
	slots  slots
	pools  []*pool // blocks of c0, 2·c0, 4·c0... strikes
	c0     int
	head   int32    // stalest slot, -1 when empty
	tail   int32    // freshest
	buf    []strike // the strikes of an address being banned (load)
	lower  []byte   // a value being lower-cased (inLowerSet)

	banned     map[netip.Addr]int64   // single addresses → end of their ban
	bannedNets map[netip.Prefix]int64 // prefixes → end of their ban
	netBits    map[int]int            // prefix lengths in bannedNets, with counts

	instantEvents [event.NumKinds]bool
	instantHELO   map[string]bool
	instantUser   map[string]bool
	learn         *learner
	trust         map[netip.Addr]int64 // address → time of its last authentication
	nth           map[netip.Addr]int   // address → bans it had (escalation)
	subnets       map[netip.Prefix][]subnetBan
}

// New returns an empty jail. ignore may be nil (nothing ignored but what
// the daemon adds).
func New(cfg Config, ignore *Ignore) *Jail {
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = 1_000_000
	}
	cfg.MaxTracked = min(cfg.MaxTracked, 1<<30)
	if cfg.MaxStrikes <= 0 {
		cfg.MaxStrikes = 1
	}
	j := &Jail{
		cfg:         cfg,
		ignore:      ignore,
		find:        int64(cfg.FindTime),
		max:         cfg.MaxTracked,
		index:       newIndex(cfg.MaxTracked),
		slots:       slots{free: -1},
		c0:          min(max(cfg.MaxStrikes-1, 1), maxC0),
		buf:         make([]strike, 0, min(cfg.MaxStrikes, 64)),
		head:        -1,
		tail:        -1,
		banned:      map[netip.Addr]int64{},
		bannedNets:  map[netip.Prefix]int64{},
		netBits:     map[int]int{},
		instantHELO: lowerSet(cfg.Instant.HELO),
		instantUser: lowerSet(cfg.Instant.User),
		trust:       map[netip.Addr]int64{},
		nth:         map[netip.Addr]int{},
		subnets:     map[netip.Prefix][]subnetBan{},
	}
	for _, k := range cfg.Instant.Events {
		if i := k.Index(); i >= 0 {
			j.instantEvents[i] = true
		}
	}
	if cfg.Learn.Distinct > 0 && (cfg.Learn.HELO || cfg.Learn.User) {
		j.learn = newLearner(cfg.Learn)
	}
	return j
}

func lowerSet(vals []string) map[string]bool {
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[strings.ToLower(v)] = true
	}
	return m
}

// inLowerSet reports whether v, lower-cased, is in m, without allocating.
func (j *Jail) inLowerSet(m map[string]bool, v string) bool {
	if v == "" || len(m) == 0 {
		return false
	}
	j.lower = appendLower(j.lower[:0], v)
	return m[string(j.lower)]
}

// appendLower appends strings.ToLower(s) to b.
func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			// As strings.ToLower: each rune mapped (invalid bytes become
			// U+FFFD).
			for _, r := range s[i:] {
				b = utf8.AppendRune(b, unicode.ToLower(r))
			}
			return b
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// Name returns the jail's name.
func (j *Jail) Name() string { return j.cfg.Name }

// Config returns the jail's configuration.
func (j *Jail) Config() Config { return j.cfg }

// Tracked returns how many addresses (or IPv6 subnets) have strikes in
// memory.
func (j *Jail) Tracked() int { return j.index.n }

// Weight returns what an event of kind k counts here.
func (j *Jail) Weight(k event.Kind) int {
	if i := k.Index(); i >= 0 {
		return j.cfg.Weights[i]
	}
	return 0
}

// forgiven reports whether an event of kind k is one a trusted client is
// forgiven: a failed login, a session that ended after one, or a bad HELO
// (mail programs greet with the PC's bare name).
func forgiven(k event.Kind) bool {
	return k == event.AuthFailure || k == event.Disconnect || k == event.BadHELO
}

// Observe counts ev against its address and reports the outcome; on Banned
// it appends the bans it decided to dst (the address, maybe the addresses
// that taught a fingerprint, maybe a subnet) and returns it. An event
// without a time (ev.Time zero) is not counted: NoWeight.
func (j *Jail) Observe(ev *event.Event, dst []Decision) ([]Decision, Outcome) {
	ki := ev.Kind.Index()
	if ki < 0 || ev.Time.IsZero() {
		return dst, NoWeight
	}
	return j.observe(ev, ki, j.cfg.Weights[ki], dst)
}

// AddStrikes counts weight strikes of kind against a at t, as a DNS block
// listing does; the address's window decides as for any event. Ignored,
// trusted and banned addresses get none.
func (j *Jail) AddStrikes(a netip.Addr, t time.Time, kind event.Kind, weight int, dst []Decision) ([]Decision, Outcome) {
	ki := kind.Index()
	if ki < 0 || weight <= 0 || t.IsZero() {
		return dst, NoWeight
	}
	a = a.Unmap()
	if j.cfg.Trust > 0 {
		if at, ok := j.trust[a]; ok && t.UnixNano()-at < int64(j.cfg.Trust) {
			return dst, Trusted
		}
	}
	return j.observe(&event.Event{Time: t, Addr: a, Kind: kind}, ki, weight, dst)
}

func (j *Jail) observe(ev *event.Event, ki, weight int, dst []Decision) ([]Decision, Outcome) {
	a := ev.Addr.Unmap()
	t := ev.Time.UnixNano()
	if ev.Kind == event.AuthSuccess {
		// A banned address cannot log in (the kernel drops it); a replay
		// or a log-only run must not make it trusted either.
		if !j.isBanned(a, t) {
			j.authenticated(a, t, ev)
		}
		return dst, NoWeight
	}
	instant := j.instantEvents[ki] || j.inLowerSet(j.instantHELO, ev.HELO) || j.inLowerSet(j.instantUser, ev.User)
	if weight <= 0 && !instant {
		return dst, NoWeight
	}
	if j.ignore.Contains(a) {
		return dst, Ignored
	}
	if j.isBanned(a, t) {
		return dst, AlreadyBanned
	}
	if j.cfg.Trust > 0 && forgiven(ev.Kind) && !instant {
		if at, ok := j.trust[a]; ok && t-at < int64(j.cfg.Trust) {
			return dst, Trusted
		}
	}
	n := len(dst)
	key := j.key(a)
	switch {
	case instant:
		dst = j.decide(dst, a, nil, 0, ev.Time, instantReason(ki, ev, j))
	default:
		if fp, ok := j.learned(ev, t); ok {
			dst = j.decide(dst, a, nil, 0, ev.Time, fp)
			break
		}
		// Drop strikes that fell out of the window, then add this one.
		i, fresh := j.lookup(keyOf(key))
		sum := j.update(i, fresh, t-j.find, strike{t: t, w: uint16(min(weight, 65535)), kind: uint8(ki)})
		if fp, taught := j.teach(ev, a, t); fp != "" {
			// This event made a fingerprint: ban its address and those
			// that taught it.
			dst = j.decide(dst, a, nil, 0, ev.Time, fp)
			for _, other := range taught {
				if j.key(other) != key && !j.isBanned(other, t) && !j.ignore.Contains(other) {
					dst = j.decide(dst, other, nil, 0, ev.Time, fp)
				}
			}
			break
		}
		if sum < j.cfg.MaxStrikes {
			return dst, Counted
		}
		dst = j.decide(dst, a, j.load(i), sum, ev.Time, "")
	}
	dst = j.subnetCheck(dst, n, t)
	return dst, Banned
}

// key is what strikes are counted under: the address, or for IPv6 with
// subnet tracking its prefix's first address.
func (j *Jail) key(a netip.Addr) netip.Addr {
	if a.Is6() && j.cfg.Subnet.V6 > 0 && j.cfg.Subnet.Bans > 0 {
		return netip.PrefixFrom(a, j.cfg.Subnet.V6).Masked().Addr()
	}
	return a
}

// banPrefix is what a ban of address a covers: for IPv6 with subnet
// tracking its whole prefix, unless that holds an ignored or trusted
// address (then a alone).
func (j *Jail) banPrefix(a netip.Addr) netip.Prefix {
	if a.Is6() && j.cfg.Subnet.V6 > 0 && j.cfg.Subnet.Bans > 0 {
		p := netip.PrefixFrom(a, j.cfg.Subnet.V6).Masked()
		if !j.ignore.Overlaps(p) && !j.trustedIn(p, 0) {
			return p
		}
	}
	return netip.PrefixFrom(a, a.BitLen())
}

func instantReason(ki int, ev *event.Event, j *Jail) string {
	switch {
	case j.instantEvents[ki]:
		return "instant " + string(ev.Kind)
	case j.inLowerSet(j.instantHELO, ev.HELO):
		return "instant helo=" + ev.HELO
	default:
		return "instant user=" + ev.User
	}
}

// decide appends the ban of address a (with its strikes, if any) from at,
// marks it banned, and forgets the strikes counted under its key.
func (j *Jail) decide(dst []Decision, a netip.Addr, strikes []strike, sum int, at time.Time, reason string) []Decision {
	key := j.key(a)
	p := j.banPrefix(a)
	first := at.UnixNano()
	if len(strikes) > 0 {
		var byKind [event.NumKinds]int
		for _, s := range strikes {
			byKind[s.kind] += int(s.w)
			first = min(first, s.t)
		}
		var kinds []int
		for i, w := range byKind {
			if w > 0 {
				kinds = append(kinds, i)
			}
		}
		sort.SliceStable(kinds, func(x, y int) bool { return byKind[kinds[x]] > byKind[kinds[y]] })
		names := make([]string, len(kinds))
		for i, k := range kinds {
			names[i] = string(event.Known[k])
		}
		reason = strings.Join(names, ",")
	}
	j.nth[key]++
	n := j.nth[key]
	if n > 1 && j.cfg.Escalate.Factor > 1 {
		reason += fmt.Sprintf(" (repeat offender: ban %d)", n)
	}
	d := Decision{
		Prefix:  p,
		Strikes: sum,
		First:   time.Unix(0, first).In(at.Location()),
		Start:   at,
		End:     at.Add(j.banLength(n)),
		Reason:  reason,
		Nth:     n,
	}
	j.drop(key)
	j.mark(p, d.End.UnixNano())
	return append(dst, d)
}

// banLength is how long the n-th ban of an address lasts.
func (j *Jail) banLength(n int) time.Duration {
	e := j.cfg.Escalate
	if e.Factor <= 1 || n <= 1 {
		return j.cfg.BanTime
	}
	d := float64(j.cfg.BanTime) * math.Pow(e.Factor, float64(n-1))
	if e.Max > 0 && d > float64(e.Max) {
		return e.Max
	}
	if d > float64(math.MaxInt64/2) {
		return time.Duration(math.MaxInt64 / 2)
	}
	return time.Duration(d)
}

// SetPriorBans tells the jail how many bans an address had before (from
// the store's history), so that its next ban is escalated.
func (j *Jail) SetPriorBans(a netip.Addr, n int) { j.nth[j.key(a.Unmap())] = n }

// Replay counts a strike from the store when the daemon starts, the way
// Observe did when it was first seen, but decides nothing: a threshold
// reached on replay was a ban then, and the store holds it.
func (j *Jail) Replay(ev *event.Event) {
	var buf [4]Decision
	if ds, out := j.Observe(ev, buf[:0]); out == Banned {
		for _, d := range ds {
			j.unmark(d.Prefix)
			j.nth[j.key(d.Prefix.Addr())]--
		}
	}
}

// MarkBanned tells the jail that p is banned until end (a ban restored from
// the store, or made by an admin), so that events from inside p do not count
// until then.
func (j *Jail) MarkBanned(p netip.Prefix, end time.Time) {
	j.mark(p.Masked(), end.UnixNano())
	if p.Bits() == p.Addr().BitLen() {
		j.drop(j.key(p.Addr()))
	}
}

func (j *Jail) mark(p netip.Prefix, end int64) {
	if p.Bits() == p.Addr().BitLen() {
		if end > j.banned[p.Addr()] {
			j.banned[p.Addr()] = end
		}
		return
	}
	if _, ok := j.bannedNets[p]; !ok {
		j.netBits[p.Bits()+boolInt(p.Addr().Is6())*1000]++
	}
	if end > j.bannedNets[p] {
		j.bannedNets[p] = end
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Unmark forgets a ban of p (an admin lifted it).
func (j *Jail) Unmark(p netip.Prefix) { j.unmark(p.Masked()) }

func (j *Jail) unmark(p netip.Prefix) {
	if p.Bits() == p.Addr().BitLen() {
		delete(j.banned, p.Addr())
		return
	}
	if _, ok := j.bannedNets[p]; ok {
		delete(j.bannedNets, p)
		k := p.Bits() + boolInt(p.Addr().Is6())*1000
		if j.netBits[k]--; j.netBits[k] <= 0 {
			delete(j.netBits, k)
		}
	}
}

func (j *Jail) isBanned(a netip.Addr, t int64) bool {
	if end, ok := j.banned[a]; ok {
		if t < end {
			return true
		}
		delete(j.banned, a)
	}
	if len(j.netBits) == 0 {
		return false // no prefix is banned (and a range would cost)
	}
	v6 := boolInt(a.Is6()) * 1000
	for k := range j.netBits {
		if k/1000*1000 != v6 {
			continue
		}
		p := netip.PrefixFrom(a, k-v6).Masked()
		if end, ok := j.bannedNets[p]; ok && t < end {
			return true
		}
	}
	return false
}

// Sweep forgets what can no longer matter at now: tracked addresses whose
// newest strike is older than find_time, expired ban marks, stale trust
// and fingerprint state. It returns how many addresses it dropped. The
// daemon calls it now and then.
func (j *Jail) Sweep(now time.Time) int {
	t := now.UnixNano()
	cut := t - j.find
	n := 0
	// The recency list is in order of last update, which is nearly the
	// order of strike time; walk from the stalest while they are stale.
	for j.head >= 0 && j.last(j.head) <= cut {
		j.dropSlot(j.head)
		n++
	}
	for a, end := range j.banned {
		if end <= t {
			delete(j.banned, a)
		}
	}
	for p, end := range j.bannedNets {
		if end <= t {
			j.unmark(p)
		}
	}
	for a, at := range j.trust {
		if t-at >= int64(j.cfg.Trust) {
			delete(j.trust, a)
		}
	}
	for p, bans := range j.subnets {
		if len(pruneSubnet(bans, t-int64(j.cfg.Subnet.Window))) == 0 {
			delete(j.subnets, p)
		}
	}
	if j.learn != nil {
		j.learn.sweep(t)
	}
	return n
}
