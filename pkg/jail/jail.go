// Package jail decides when events become bans: a sliding window of
// weighted strikes per address, the ignore list, and the addresses already
// banned. It is pure: time comes from the events, so a replay of the same
// events always gives the same decisions.
//
// A strike counts while it is younger than find_time at the time of the
// newest event of its address: at event time t, strikes with time > t -
// find_time count. When the counted weights reach max_strikes, the jail
// decides a ban from the deciding event's time for ban_time, and forgets
// the address's strikes.
//
// Memory is bounded: at most MaxTracked addresses are tracked at once; a new
// address beyond that drops the one whose last strike is the stalest. Each
// tracked address costs a map entry, a slot and its strikes (16 bytes each,
// fewer than max_strikes of them).
package jail

import (
	"net/netip"
	"sort"
	"strings"
	"time"

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
}

// Outcome says what Observe made of an event.
type Outcome uint8

// The outcomes of Observe.
const (
	NoWeight      Outcome = iota // the event's kind does not count in this jail (or it had no time)
	Ignored                      // the address is on the ignore list
	AlreadyBanned                // the address is banned in this jail at the event's time
	Counted                      // a strike was counted; no ban yet
	Banned                       // the strike reached max_strikes: see the Decision
)

var outcomeNames = [...]string{"no_weight", "ignored", "already_banned", "counted", "banned"}

func (o Outcome) String() string { return outcomeNames[o] }

// Decision is a ban a jail decided.
type Decision struct {
	Addr    netip.Addr
	Strikes int       // weighted strikes counted, >= max_strikes
	First   time.Time // time of the oldest counted strike
	Start   time.Time // time of the deciding strike
	End     time.Time // Start + ban_time
	Reason  string    // the kinds of the counted strikes, most weighty first, joined by ","
}

type strike struct {
	t    int64 // unix nanoseconds
	w    uint16
	kind uint8
}

type track struct {
	addr       netip.Addr
	prev, next int32 // recency list: head is the stalest
	last       int64 // time of the newest strike
	s          []strike
}

type bannedPrefix struct {
	p   netip.Prefix
	end int64
}

// Jail tracks one jail's strikes. It is not safe for concurrent use.
type Jail struct {
	cfg      Config
	ignore   *Ignore
	find     int64
	max      int
	index    map[netip.Addr]int32
	slots    []track
	free     []int32
	head     int32 // stalest, -1 when empty
	tail     int32 // freshest
	banned   map[netip.Addr]int64
	prefixes []bannedPrefix
}

// New returns an empty jail. ignore may be nil (nothing ignored but what
// the daemon adds).
func New(cfg Config, ignore *Ignore) *Jail {
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = 1_000_000
	}
	if cfg.MaxStrikes <= 0 {
		cfg.MaxStrikes = 1
	}
	return &Jail{
		cfg:    cfg,
		ignore: ignore,
		find:   int64(cfg.FindTime),
		max:    cfg.MaxTracked,
		index:  map[netip.Addr]int32{},
		head:   -1,
		tail:   -1,
		banned: map[netip.Addr]int64{},
	}
}

// Name returns the jail's name.
func (j *Jail) Name() string { return j.cfg.Name }

// Config returns the jail's configuration.
func (j *Jail) Config() Config { return j.cfg }

// Tracked returns how many addresses have strikes in memory.
func (j *Jail) Tracked() int { return len(j.index) }

// Weight returns what an event of kind k counts here.
func (j *Jail) Weight(k event.Kind) int {
	if i := k.Index(); i >= 0 {
		return j.cfg.Weights[i]
	}
	return 0
}

// Observe counts ev against its address and reports the outcome; on Banned
// it fills d. An event without a time (ev.Time zero) is not counted:
// NoWeight.
func (j *Jail) Observe(ev *event.Event, d *Decision) Outcome {
	ki := ev.Kind.Index()
	if ki < 0 || j.cfg.Weights[ki] <= 0 || ev.Time.IsZero() {
		return NoWeight
	}
	a := ev.Addr.Unmap()
	if j.ignore.Contains(a) {
		return Ignored
	}
	t := ev.Time.UnixNano()
	if j.isBanned(a, t) {
		return AlreadyBanned
	}
	tr := j.lookup(a, t)
	// Drop strikes that fell out of the window, then add this one.
	cut := t - j.find
	k := 0
	for _, s := range tr.s {
		if s.t > cut {
			tr.s[k] = s
			k++
		}
	}
	tr.s = append(tr.s[:k], strike{t: t, w: uint16(min(j.cfg.Weights[ki], 65535)), kind: uint8(ki)})
	if t > tr.last {
		tr.last = t
	}
	sum := 0
	for _, s := range tr.s {
		sum += int(s.w)
	}
	if sum < j.cfg.MaxStrikes {
		return Counted
	}
	if d != nil {
		*d = j.decide(a, tr, sum, ev.Time)
	}
	j.drop(a)
	j.banned[a] = ev.Time.Add(j.cfg.BanTime).UnixNano()
	return Banned
}

// Replay counts a strike from the store when the daemon starts, the way
// Observe did when it was first seen, but decides nothing: a threshold
// reached on replay was a ban then, and the store holds it.
func (j *Jail) Replay(ev *event.Event) {
	if j.Observe(ev, nil) == Banned {
		delete(j.banned, ev.Addr.Unmap())
	}
}

// MarkBanned tells the jail that p is banned until end (a ban restored from
// the store, or made by an admin), so that events from inside p do not count
// until then.
func (j *Jail) MarkBanned(p netip.Prefix, end time.Time) {
	p = p.Masked()
	if p.Bits() == p.Addr().BitLen() {
		j.banned[p.Addr()] = end.UnixNano()
		j.drop(p.Addr())
		return
	}
	for i := range j.prefixes {
		if j.prefixes[i].p == p {
			j.prefixes[i].end = end.UnixNano()
			return
		}
	}
	j.prefixes = append(j.prefixes, bannedPrefix{p: p, end: end.UnixNano()})
}

// Unmark forgets a ban of p (an admin lifted it).
func (j *Jail) Unmark(p netip.Prefix) {
	p = p.Masked()
	if p.Bits() == p.Addr().BitLen() {
		delete(j.banned, p.Addr())
		return
	}
	for i := range j.prefixes {
		if j.prefixes[i].p == p {
			j.prefixes = append(j.prefixes[:i], j.prefixes[i+1:]...)
			return
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
	for _, bp := range j.prefixes {
		if t < bp.end && bp.p.Contains(a) {
			return true
		}
	}
	return false
}

// Sweep forgets what can no longer matter at now: tracked addresses whose
// newest strike is older than find_time, and expired ban marks. It returns
// how many addresses it dropped. The daemon calls it now and then.
func (j *Jail) Sweep(now time.Time) int {
	cut := now.UnixNano() - j.find
	n := 0
	// The recency list is in order of last update, which is nearly the
	// order of strike time; walk from the stalest while they are stale.
	for j.head >= 0 && j.slots[j.head].last <= cut {
		j.drop(j.slots[j.head].addr)
		n++
	}
	t := now.UnixNano()
	for a, end := range j.banned {
		if end <= t {
			delete(j.banned, a)
		}
	}
	k := 0
	for _, bp := range j.prefixes {
		if bp.end > t {
			j.prefixes[k] = bp
			k++
		}
	}
	j.prefixes = j.prefixes[:k]
	return n
}

func (j *Jail) decide(a netip.Addr, tr *track, sum int, at time.Time) Decision {
	var byKind [event.NumKinds]int
	first := tr.s[0].t
	for _, s := range tr.s {
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
	return Decision{
		Addr:    a,
		Strikes: sum,
		First:   time.Unix(0, first).In(at.Location()),
		Start:   at,
		End:     at.Add(j.cfg.BanTime),
		Reason:  strings.Join(names, ","),
	}
}

// lookup returns a's track, making one (and evicting the stalest when the
// jail is full) if needed, and moves it to the fresh end of the list.
func (j *Jail) lookup(a netip.Addr, t int64) *track {
	if i, ok := j.index[a]; ok {
		j.unlink(i)
		j.pushBack(i)
		return &j.slots[i]
	}
	if len(j.index) >= j.max && j.head >= 0 {
		j.drop(j.slots[j.head].addr)
	}
	var i int32
	if n := len(j.free); n > 0 {
		i = j.free[n-1]
		j.free = j.free[:n-1]
	} else {
		j.slots = append(j.slots, track{})
		i = int32(len(j.slots) - 1)
	}
	j.slots[i] = track{addr: a, last: t, s: j.slots[i].s[:0]}
	j.index[a] = i
	j.pushBack(i)
	return &j.slots[i]
}

// drop forgets a's strikes.
func (j *Jail) drop(a netip.Addr) {
	i, ok := j.index[a]
	if !ok {
		return
	}
	j.unlink(i)
	delete(j.index, a)
	j.slots[i].s = j.slots[i].s[:0]
	j.free = append(j.free, i)
}

func (j *Jail) unlink(i int32) {
	tr := &j.slots[i]
	if tr.prev >= 0 {
		j.slots[tr.prev].next = tr.next
	} else {
		j.head = tr.next
	}
	if tr.next >= 0 {
		j.slots[tr.next].prev = tr.prev
	} else {
		j.tail = tr.prev
	}
	tr.prev, tr.next = -1, -1
}

func (j *Jail) pushBack(i int32) {
	tr := &j.slots[i]
	tr.prev, tr.next = j.tail, -1
	if j.tail >= 0 {
		j.slots[j.tail].next = i
	} else {
		j.head = i
	}
	j.tail = i
}
