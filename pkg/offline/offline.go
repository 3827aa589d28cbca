// Package offline runs filters over log files without the daemon. It is the
// engine of `banctl test`: it reads each input with a plain buffered reader,
// matches every line against a filter.Set, reports each match and sums up
// what it found.
package offline

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/filter"
)

// MaxLine is the longest line read whole. Longer lines are skipped and
// counted: no MTA writes them, and syslog daemons cut lines far shorter.
const MaxLine = 64 * 1024

// Input is one log to read.
type Input struct {
	// Name is how the input is named in reports ("-" for standard input).
	Name string
	// R is read to its end.
	R io.Reader
	// Ref is the time the log's lines are known not to be much later than:
	// the file's modification time, or now for standard input. It decides
	// the year of syslog timestamps and the date of times of day, and its
	// location is that of timestamps written without a zone.
	Ref time.Time
}

// Match is one event found in an input, as `banctl test --json` prints it.
type Match struct {
	File string
	Line int
	event.Event
}

// Report sums up a run.
type Report struct {
	Files      int
	Lines      int // lines read
	Skipped    int // lines longer than MaxLine, not matched
	Matched    int // lines that yielded at least one event
	Events     int // events (a line can match several filters)
	Unparsable int // events whose line had no timestamp that could be parsed
	ByEvent    map[event.Kind]int
	ByFilter   map[string]int
	Elapsed    time.Duration

	addrs addrTable

	byKind     [event.NumKinds]int
	lastFilter string
	filterRun  int
}

// AddrStats counts the events of one address.
type AddrStats struct {
	Events int
	// ByKind counts events per kind, indexed by event.Kind.Index.
	ByKind [event.NumKinds]int
}

// ByEvent returns the counts per kind, without the kinds not seen.
func (a *AddrStats) ByEvent() map[event.Kind]int {
	m := map[event.Kind]int{}
	for i, n := range a.ByKind {
		if n > 0 {
			m[event.Known[i]] = n
		}
	}
	return m
}

// Run reads every input and matches its lines against set. It calls onMatch,
// if not nil, for each event in input order. It stops early, returning
// ctx.Err(), when ctx is done, and returns the first read error, naming its
// input.
func Run(ctx context.Context, set *filter.Set, inputs []Input, onMatch func(*Match)) (*Report, error) {
	rep := &Report{
		ByEvent:  map[event.Kind]int{},
		ByFilter: map[string]int{},
	}
	start := time.Now()
	defer func() {
		rep.finish()
		rep.Elapsed = time.Since(start)
	}()
	evs := make([]event.Event, 0, 8)
	m := &Match{}
	matcher := set.NewMatcher()
	for _, in := range inputs {
		rep.Files++
		br := bufio.NewReaderSize(in.R, MaxLine)
		n := 0
		for {
			line, err := br.ReadSlice('\n')
			if err != nil && errors.Is(err, bufio.ErrBufferFull) {
				// An overlong line: skip to its end.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
				n++
				rep.Lines++
				rep.Skipped++
				if err == nil {
					continue
				}
				line = nil
			}
			if len(line) > 0 {
				n++
				rep.Lines++
				for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
					line = line[:len(line)-1]
				}
				evs = matcher.Match(line, in.Ref, evs[:0])
				if len(evs) > 0 {
					rep.Matched++
					for i := range evs {
						rep.count(&evs[i])
						if onMatch != nil {
							m.File, m.Line, m.Event = in.Name, n, evs[i]
							onMatch(m)
						}
					}
				}
				if n&0xffff == 0 && ctx.Err() != nil {
					return rep, ctx.Err()
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return rep, fmt.Errorf("offline: %s: %w", in.Name, err)
			}
		}
	}
	return rep, nil
}

func (r *Report) count(ev *event.Event) {
	r.Events++
	k := ev.Kind.Index()
	r.byKind[k]++
	if r.lastFilter != ev.Filter { // runs of one filter are the rule
		r.flushFilter()
		r.lastFilter = ev.Filter
	}
	r.filterRun++
	if ev.Time.IsZero() {
		r.Unparsable++
	}
	r.addrs.add(ev.Addr, k)
}

// addrRec counts the events of one address in one cache line of 64 bytes:
// counting touches one record per event, at random among all addresses
// seen, so one line is one cache miss.
type addrRec struct {
	key    [16]byte // the address, IPv4 as IPv4-mapped IPv6
	events uint32
	byKind [event.NumKinds]uint32
	state  uint8 // recEmpty, recV4 or recV6
	_      [3]byte
}

// The states of an addrRec.
const (
	recEmpty = iota
	recV4
	recV6
)

func (a *addrRec) addr() netip.Addr {
	ip := netip.AddrFrom16(a.key)
	if a.state == recV4 {
		return ip.Unmap()
	}
	return ip
}

func (a *addrRec) count() AddrCount {
	c := AddrCount{Addr: a.addr(), AddrStats: AddrStats{Events: int(a.events)}}
	for k, n := range a.byKind {
		c.ByKind[k] = int(n)
	}
	return c
}

// addrTable is an open-addressing hash table of addrRec, cheaper than a map
// keyed by netip.Addr, whose hashing dominated counting.
//
// Events are counted in batches of addrBatch: a botnet's addresses spread
// the records over megabytes, so looking one up is a cache miss (and, on a
// virtual machine, often a TLB miss); counting one event at a time took
// 13-18% of `banctl test`'s time on a mixed Postfix log. A batch first loads
// every record it will touch, in a loop whose loads do not depend on each
// other, so the processor has many of those misses in flight at once (6%
// less time in all; sorting a batch into table order did no better).
type addrTable struct {
	recs []addrRec
	n    int

	pend  [addrBatch]pendingAddr
	npend int
	slot  [addrBatch]uint64
	touch uint8 // what the batch's first loop read, kept so that it is done
}

// addrBatch is how many events addrTable.add holds before it counts them.
const addrBatch = 64

// pendingAddr is an event waiting in addrTable to be counted.
type pendingAddr struct {
	key   [16]byte
	state uint8 // recV4 or recV6
	kind  uint8 // the event's kind, as event.Kind.Index
}

// add counts an event of kind k (an event.Kind.Index) from a. Until flush
// runs, the counts may lack the latest events.
func (t *addrTable) add(a netip.Addr, k int) {
	p := &t.pend[t.npend]
	p.key, p.state, p.kind = a.As16(), recV6, uint8(k)
	if a.Is4() {
		p.state = recV4
	}
	t.npend++
	if t.npend == len(t.pend) {
		t.flush()
	}
}

// flush counts the events that add holds.
func (t *addrTable) flush() {
	pend := t.pend[:t.npend]
	t.npend = 0
	for 4*(t.n+len(pend)) > 3*len(t.recs) {
		t.grow()
	}
	mask := uint64(len(t.recs) - 1)
	slot := t.slot[:len(pend)]
	var touch uint8
	for i := range pend {
		slot[i] = keyHash(pend[i].key) & mask
		touch |= t.recs[slot[i]].state
	}
	t.touch = touch
	for i := range pend {
		p := &pend[i]
		a := t.find(slot[i], p.key, p.state)
		if a.events < math.MaxUint32 { // a counter that is full stays full
			a.events++
		}
		if a.byKind[p.kind] < math.MaxUint32 {
			a.byKind[p.kind]++
		}
	}
}

// find returns the record of key, whose probe starts at slot i, adding it
// if new. The table must have room for it.
func (t *addrTable) find(i uint64, key [16]byte, state uint8) *addrRec {
	mask := uint64(len(t.recs) - 1)
	for ; ; i = (i + 1) & mask {
		r := &t.recs[i]
		if r.state == recEmpty {
			r.key, r.state = key, state
			t.n++
			return r
		}
		if r.key == key && r.state == state {
			return r
		}
	}
}

func keyHash(b [16]byte) uint64 {
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	return (lo ^ hi*0x9E3779B97F4A7C15) * 0xBF58476D1CE4E5B9 >> 20
}

func (t *addrTable) grow() {
	old := t.recs
	t.recs = make([]addrRec, max(1024, 2*len(old)))
	mask := uint64(len(t.recs) - 1)
	for i := range old {
		if old[i].state == recEmpty {
			continue
		}
		j := keyHash(old[i].key) & mask
		for t.recs[j].state != recEmpty {
			j = (j + 1) & mask
		}
		t.recs[j] = old[i]
	}
}

func (r *Report) flushFilter() {
	if r.filterRun > 0 {
		r.ByFilter[r.lastFilter] += r.filterRun
		r.filterRun = 0
	}
}

// finish fills the maps that count keeps in cheaper form while it runs.
func (r *Report) finish() {
	r.flushFilter()
	r.addrs.flush()
	for i, n := range r.byKind {
		if n > 0 {
			r.ByEvent[event.Known[i]] = n
		}
	}
}

// AddrCount is an address and its statistics, for TopAddrs.
type AddrCount struct {
	Addr netip.Addr
	AddrStats
}

// Addresses returns how many distinct addresses the events came from.
func (r *Report) Addresses() int { return r.addrs.n }

// TopAddrs returns the n addresses with the most events, most first, ties by
// address.
func (r *Report) TopAddrs(n int) []AddrCount {
	before := func(a, b *AddrCount) bool {
		if a.Events != b.Events {
			return a.Events > b.Events
		}
		return a.Addr.Less(b.Addr)
	}
	// A bounded heap of the best n so far, its worst at the root: a log
	// of a rotating botnet has hundreds of thousands of addresses, and
	// sorting them all for the ten shown would cost more than reading.
	h := make([]AddrCount, 0, max(n, 0))
	down := func(i int) {
		for {
			w, l := i, 2*i+1
			if l < len(h) && before(&h[w], &h[l]) {
				w = l
			}
			if l+1 < len(h) && before(&h[w], &h[l+1]) {
				w = l + 1
			}
			if w == i {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for i := range r.addrs.recs {
		if r.addrs.recs[i].state == recEmpty {
			continue
		}
		a := r.addrs.recs[i].count()
		switch {
		case len(h) < n:
			h = append(h, a)
			for j := len(h) - 1; j > 0 && before(&h[(j-1)/2], &h[j]); j = (j - 1) / 2 {
				h[j], h[(j-1)/2] = h[(j-1)/2], h[j]
			}
		case n > 0 && before(&a, &h[0]):
			h[0] = a
			down(0)
		}
	}
	sort.Slice(h, func(i, j int) bool { return before(&h[i], &h[j]) })
	return h
}

// AppendJSON appends m as one JSON object, without a newline:
//
//	{"type":"match","file":"mail.log","line":12,"time":"2026-11-28T02:00:19Z","ip":"10.99.0.2","event":"auth_failure","filter":"postfix"}
//
// followed by "helo" and "user" when the rule captured them. Times are in
// UTC; a line without a parsable timestamp has "time":null.
func AppendJSON(b []byte, m *Match) []byte {
	b = append(b, `{"type":"match","file":`...)
	b = appendString(b, m.File)
	b = append(b, `,"line":`...)
	b = strconv.AppendInt(b, int64(m.Line), 10)
	b = append(b, `,"time":`...)
	if m.Time.IsZero() {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = m.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `,"ip":"`...)
	b = m.Addr.AppendTo(b)
	b = append(b, `","event":`...)
	b = appendString(b, string(m.Kind))
	b = append(b, `,"filter":`...)
	b = appendString(b, m.Filter)
	if m.HELO != "" {
		b = append(b, `,"helo":`...)
		b = appendString(b, m.HELO)
	}
	if m.User != "" {
		b = append(b, `,"user":`...)
		b = appendString(b, m.User)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// RefFromName returns the end of the day named by a YYYYMMDD date in the
// file's base name (IceWarp names its logs by day), in loc.
func RefFromName(name string, loc *time.Location) (time.Time, bool) {
	base := filepath.Base(name)
	for i := 0; i+8 <= len(base); i++ {
		if i > 0 && isDigit(base[i-1]) {
			continue
		}
		if i+8 < len(base) && isDigit(base[i+8]) {
			continue
		}
		s := base[i : i+8]
		t, err := time.ParseInLocation("20060102", s, loc)
		if err != nil || t.Year() < 1990 {
			continue
		}
		return t.Add(24*time.Hour - time.Second), true
	}
	return time.Time{}, false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
