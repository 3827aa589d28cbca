// Package loggen writes realistic, deterministic mail logs for benchmarks:
// benign traffic mixed with a botnet's attacks from many addresses, in the
// log format of Postfix (syslog), Exim (its main log) or IceWarp (its SMTP
// log). The same Options give the same log, byte for byte.
//
// Attack sessions use only the Attackers addresses (IPv4 from 11.0.0.0 up,
// IPv6 in 2001:db8::/96); benign clients, remote servers and the server
// itself use other addresses, so every address a filter reports for an attack
// is one of the botnet's.
package loggen

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net/netip"
	"time"
)

// MaxAttackers is the most attacking addresses Options can ask for.
const MaxAttackers = 1 << 26

// MTAs lists the log formats Write knows, by the names it takes.
var MTAs = []string{"postfix", "exim", "icewarp"}

// Options shape a generated log.
type Options struct {
	Lines       int       // lines to write
	AttackShare float64   // share of lines written by attack sessions, 0..1
	Attackers   int       // distinct attacking addresses (IPv4 and IPv6), at most MaxAttackers
	Seed        int64     // same seed, same log
	Start       time.Time // time of the first line (default 2026-11-28 00:00 UTC); its location is the log's
	RFC3339     bool      // Postfix: RFC 3339 timestamps instead of classic syslog ones

	// V6Share is the share of the attacking addresses that are IPv6, 0..1.
	// Zero means the default, 0.1; a negative value means none.
	V6Share float64
	// Sweep picks the attacker of each attack session in a seeded random
	// order that uses every one of the Attackers addresses once before any
	// comes back, so that a log with at least Attackers attack sessions
	// holds exactly Attackers attacking addresses. Without it each session
	// picks an attacker at random, with repeats, as the first versions did.
	// It keeps 4 bytes per attacker.
	Sweep bool
	// PID writes Exim's process id after its timestamp ("[4242] "), as
	// log_selector +pid does. Only Exim uses it.
	PID bool

	// onAttack, if set, is called with the address of each attack session
	// (tests).
	onAttack func(netip.Addr)
}

// Write writes a log of the named MTA (one of MTAs) to w.
func Write(w io.Writer, mta string, o Options) error {
	switch mta {
	case "postfix":
		return Postfix(w, o)
	case "exim":
		return Exim(w, o)
	case "icewarp":
		return IceWarp(w, o)
	}
	return fmt.Errorf("loggen: unknown MTA %q (want postfix, exim or icewarp)", mta)
}

// gen is the state the generators share.
type gen struct {
	o       Options
	bw      *bufio.Writer
	rng     *rand.Rand
	t       time.Time
	written int
	v6ppm   int64    // IPv6 share of attackers, in millionths
	sweep   *sweeper // nil without Options.Sweep
}

func newGen(w io.Writer, o Options) (*gen, error) {
	switch {
	case o.Attackers > MaxAttackers:
		return nil, fmt.Errorf("loggen: %d attackers, at most %d", o.Attackers, MaxAttackers)
	case o.V6Share > 1 || math.IsNaN(o.V6Share):
		return nil, fmt.Errorf("loggen: IPv6 share %v is not within 0..1", o.V6Share)
	case o.AttackShare < 0 || o.AttackShare > 1 || math.IsNaN(o.AttackShare):
		return nil, fmt.Errorf("loggen: attack share %v is not within 0..1", o.AttackShare)
	}
	g := &gen{
		o:   o,
		bw:  bufio.NewWriterSize(w, 1<<16),
		rng: rand.New(rand.NewSource(o.Seed)),
		t:   o.Start,
	}
	if g.t.IsZero() {
		g.t = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	}
	switch {
	case o.V6Share == 0:
		g.v6ppm = 100000
	case o.V6Share > 0:
		g.v6ppm = int64(math.Round(o.V6Share * 1e6))
	}
	if o.Sweep {
		// Its own source: the rest of the log draws the same numbers as
		// without Sweep.
		g.sweep = newSweeper(max(o.Attackers, 1), rand.New(rand.NewSource(o.Seed^0x5eed5eed)))
	}
	return g, nil
}

// step moves the clock on for the next line and reports whether one may be
// written.
func (g *gen) step() bool {
	if g.written >= g.o.Lines {
		return false
	}
	g.t = g.t.Add(time.Duration(g.rng.Intn(20)) * time.Millisecond)
	return true
}

// attacker picks the address of an attack session.
func (g *gen) attacker() netip.Addr {
	var i int
	if g.sweep != nil {
		i = g.sweep.next()
	} else {
		i = g.rng.Intn(max(g.o.Attackers, 1))
	}
	a := attackerAddr(i, g.v6ppm)
	if g.o.onAttack != nil {
		g.o.onAttack(a)
	}
	return a
}

// attackerAddr is attacker number i when v6ppm millionths of them are IPv6:
// i is IPv6 when (i+1)·share passes an integer (for 0.1: i%10 == 9). Both
// families use i itself, so distinct numbers give distinct addresses: IPv4
// 11.0.0.0 + i, IPv6 2001:db8:: + i.
func attackerAddr(i int, v6ppm int64) netip.Addr {
	if (int64(i)+1)*v6ppm/1e6 > int64(i)*v6ppm/1e6 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		b[12], b[13], b[14], b[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{byte(11 + i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
}

// benignPeer picks a legitimate client or server: one of 5,000, named
// mailN.example.net, IPv4 in 203.0.0.0/19 and, with v6, one in ten IPv6 in
// 2001:db8:be::/48.
func (g *gen) benignPeer(v6 bool) (name string, addr netip.Addr) {
	i := g.rng.Intn(5000)
	name = fmt.Sprintf("mail%d.example.net", i)
	if v6 && i%10 == 5 {
		var b [16]byte
		b[0], b[1], b[2], b[3], b[5] = 0x20, 0x01, 0x0d, 0xb8, 0xbe
		b[14], b[15] = byte(i>>8), byte(i)
		return name, netip.AddrFrom16(b)
	}
	return name, netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})
}

// sweeper hands out 0..n-1 in a random order, each once per round: an
// incremental Fisher-Yates shuffle.
type sweeper struct {
	perm []int32
	k    int
	r    *rand.Rand
}

func newSweeper(n int, r *rand.Rand) *sweeper {
	s := &sweeper{perm: make([]int32, n), r: r}
	for i := range s.perm {
		s.perm[i] = int32(i)
	}
	return s
}

func (s *sweeper) next() int {
	if s.k == len(s.perm) {
		s.k = 0
	}
	j := s.k + s.r.Intn(len(s.perm)-s.k)
	s.perm[s.k], s.perm[j] = s.perm[j], s.perm[s.k]
	s.k++
	return int(s.perm[s.k-1])
}

// run writes sessions until the log has o.Lines lines, attack sessions while
// their lines are fewer than o.AttackShare of the log, benign ones
// otherwise.
func (g *gen) run(attack, benign func()) error {
	attackLines := 0
	for g.written < g.o.Lines {
		if float64(attackLines) < g.o.AttackShare*float64(g.written+1) {
			before := g.written
			attack()
			attackLines += g.written - before
			continue
		}
		benign()
	}
	return g.bw.Flush()
}

// base62 writes n in base 62 with width digits, as Exim writes message ids.
func base62(b []byte, n int64, width int) []byte {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	start := len(b)
	for i := 0; i < width; i++ {
		b = append(b, 0)
	}
	for i := len(b) - 1; i >= start; i-- {
		b[i] = digits[n%62]
		n /= 62
	}
	return b
}
