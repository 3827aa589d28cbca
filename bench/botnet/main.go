// Command botnet writes a synthetic Postfix log of a mail server under a
// rotating botnet, mixed with the server's legitimate traffic, so that the
// postfix jail's botnet defences can be measured by replaying it with
// `banctl test --jail postfix` (see docs/botnets.md).
//
// The botnet follows the PushDo/Cutwail pattern: a few thousand infected
// hosts (-addrs) take turns so that the server sees about one botnet
// connection a second for -hours, and each host comes back a few times a
// day (1 + Poisson(4) visits a day) for a short visit of a few connections
// (about 6) at its own pace (20 s to 15 min apart). Most connections try
// one AUTH LOGIN with a user name from a small shared list (admin, info,
// test, sales...); on port 25 a quarter try to send spam instead and are
// rejected for their HELO name (ylmf-pc and other non-FQDN names) or for
// relaying; 30% of the hosts talk before the greeting on port 25, which
// postscreen logs as PREGREET. IPv4 hosts sit in a few hundred /24s of
// 198.18.0.0/15, several to a /24 as on residential ISPs; IPv6 hosts (15%)
// take a new address in their /64 for every connection.
//
// The legitimate traffic is customers who log in to send mail (from home,
// some from a /24 they share with bots, some from a phone on a mobile
// carrier's pool) and sometimes mistype a password, keep a device with an
// old password that retries for a while, or set up a new phone with the
// bare mailbox name; and servers delivering mail on port 25. It starts
// -history days before the botnet, so that the replay has seen the
// customers log in, as a daemon that has been running for a while has.
//
// The same flags give the same log, byte for byte:
//
//	go run ./bench/botnet -seed 1 > /tmp/botnet.log
//	go run ./cmd/banctl test --jail postfix --json /tmp/botnet.log > /tmp/bans.jsonl
//	go run ./bench/botnet -seed 1 -check /tmp/bans.jsonl
//
// With -check, it writes no log: it reads the JSON Lines output of `banctl
// test --jail --json` for the log the same flags make, splits the events
// with strikes that got through from those a ban stopped, for the botnet
// and for the legitimate clients apart, and reports the legitimate clients
// (customers and servers) whose sessions a ban would have blocked.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	var o options
	flag.Uint64Var(&o.seed, "seed", 1, "random seed: the same flags give the same log")
	flag.IntVar(&o.addrs, "addrs", 3000, "botnet hosts (15% IPv6, each rotating in its /64)")
	flag.Float64Var(&o.hours, "hours", 24, "hours of botnet attack (about one connection a second)")
	flag.IntVar(&o.history, "history", 1, "days of legitimate traffic only before the attack, so that trust has seen the customers")
	flag.IntVar(&o.customers, "customers", 80, "customers who log in to send mail")
	flag.IntVar(&o.servers, "servers", 40, "mail servers that deliver to us")
	check := flag.String("check", "", "read `FILE` (banctl test --jail --json output for this log) and report the legitimate clients it bans; write no log")
	flag.Parse()
	if o.addrs < 1 || o.hours <= 0 || o.history < 0 || o.customers < 0 || o.servers < 0 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	w := generate(o)
	if *check != "" {
		if err := w.check(*check, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "botnet:", err)
			os.Exit(1)
		}
		return
	}
	if err := w.write(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "botnet:", err)
		os.Exit(1)
	}
}

// options shape the log.
type options struct {
	seed      uint64
	addrs     int
	hours     float64
	history   int
	customers int
	servers   int
}

// attack is when the botnet arrives; the log starts -history days before.
// Syslog timestamps carry no year: banctl takes it from the file's
// modification time.
var attack = time.Date(2026, time.November, 20, 0, 0, 0, 0, time.Local)

// The shared user names the botnet guesses; some with our domain.
var botUsers = []string{"admin", "info", "test", "sales", "support", "office",
	"contact", "webmaster", "postmaster", "user", "mail", "marketing"}

// Customers' first names; the first three mailboxes are the office's shared
// ones, which the botnet guesses too.
var names = []string{"info", "sales", "admin", "alice", "bob", "carol", "dave",
	"erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "nia",
	"oscar", "peggy", "rupert", "sybil", "trent", "victor", "walter"}

// line is one log line at its time; seq keeps the order of lines with the
// same time.
type line struct {
	t   int64
	seq int32
	s   string
}

// legit is one session of a legitimate client.
type legit struct {
	who      string
	customer bool
	addr     netip.Addr
	t        time.Time
}

// bot is one infected host.
type bot struct {
	v4       netip.Addr   // its address, if IPv4
	v6       netip.Prefix // its /64, if IPv6
	helo     string
	pregreet bool          // talks before the greeting on port 25
	pace     time.Duration // between its connections in a visit
}

// world holds the generated log.
type world struct {
	o      options
	rng    *rand.Rand
	start  time.Time // the log's first line
	end    time.Time // the end of the attack and of the log
	lines  []line
	seq    int32
	legit  []legit
	passed map[netip.Addr]bool // postscreen's cache of clients that passed
}

func generate(o options) *world {
	w := &world{o: o, rng: rand.New(rand.NewPCG(o.seed, 0x626f746e6574)),
		passed: map[netip.Addr]bool{}}
	w.start = attack.AddDate(0, 0, -o.history)
	w.end = attack.Add(time.Duration(o.hours * float64(time.Hour)))
	bots := w.makeBots()
	w.botnet(bots)
	w.customers(bots)
	w.servers()
	slices.SortFunc(w.lines, func(a, b line) int {
		if a.t != b.t {
			if a.t < b.t {
				return -1
			}
			return 1
		}
		return int(a.seq - b.seq)
	})
	return w
}

func (w *world) write(out io.Writer) error {
	bw := bufio.NewWriterSize(out, 1<<16)
	for _, l := range w.lines {
		bw.WriteString(l.s)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// emit adds a line from program prog (with its pid) at t.
func (w *world) emit(t time.Time, prog string, pid int, format string, args ...any) {
	w.seq++
	s := t.Format(time.Stamp) + " mx " + prog + "[" + fmt.Sprint(pid) + "]: " + fmt.Sprintf(format, args...)
	w.lines = append(w.lines, line{t: t.UnixNano(), seq: w.seq, s: s})
}

// pid returns the process id of a Postfix service at t: a few processes
// of each service run at once, and new ones replace them every few
// minutes, so ids grow through the day as on a busy server.
func (w *world) pid(service string, t time.Time) int {
	k := 0
	for _, c := range service {
		k = k*31 + int(c)
	}
	epoch := int(t.Sub(w.start) / (5 * time.Minute))
	return 1000 + (epoch*97+k%89+w.rng.IntN(6))%31000
}

// postscreenPid is postscreen's process: one for all connections.
const postscreenPid = 812

// qid returns a Postfix queue id.
func (w *world) qid() string { return fmt.Sprintf("%010X", w.rng.Uint64()>>24) }

func (w *world) sport() int { return 1024 + w.rng.IntN(64000) }

func (w *world) chance(p float64) bool { return w.rng.Float64() < p }

func (w *world) after(t time.Time, lo, hi float64) time.Time {
	return t.Add(time.Duration((lo + (hi-lo)*w.rng.Float64()) * float64(time.Second)))
}

// makeBots places the botnet: 85% IPv4 in up to 448 /24s of 198.18.0.0 to
// 198.19.191.255, about 6 to a /24 and a fifth of them crowded into a few
// hot /24s; 15% IPv6, one /64 each.
func (w *world) makeBots() []*bot {
	n := w.o.addrs
	v4 := n * 85 / 100
	nets := min(448, max(8, v4/5))
	hot := max(1, nets/12)
	perm := w.rng.Perm(448)[:nets]
	prefixes := make([]netip.Prefix, nets)
	for i, p := range perm {
		prefixes[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(p/256), byte(p % 256), 0}), 24)
	}
	used := map[netip.Addr]bool{}
	bots := make([]*bot, n)
	for i := range bots {
		b := &bot{pace: time.Duration(20 * math.Pow(45, w.rng.Float64()) * float64(time.Second))}
		if i < v4 {
			for {
				k := w.rng.IntN(nets)
				if w.chance(0.2) {
					k = w.rng.IntN(hot)
				}
				a := prefixes[k].Addr().As4()
				a[3] = byte(1 + w.rng.IntN(254))
				if addr := netip.AddrFrom4(a); !used[addr] {
					used[addr], b.v4 = true, addr
					break
				}
			}
		} else {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			a[4] = 0xb0 | byte(w.rng.IntN(16))
			for j := 5; j < 8; j++ {
				a[j] = byte(w.rng.IntN(256))
			}
			b.v6 = netip.PrefixFrom(netip.AddrFrom16(a), 64)
		}
		switch r := w.rng.Float64(); {
		case r < 0.5:
			b.helo = "ylmf-pc"
		case r < 0.65:
			b.helo = "User"
		case r < 0.9:
			const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			h := []byte("WIN-")
			for range 11 {
				h = append(h, abc[w.rng.IntN(len(abc))])
			}
			b.helo = string(h)
		default:
			b.helo = "" // an address literal, [its address]
		}
		b.pregreet = w.chance(0.3)
		bots[i] = b
	}
	return bots
}

// addr returns the address a bot connects from: for IPv6 a new one in its
// /64 every time.
func (w *world) addr(b *bot) netip.Addr {
	if b.v4.IsValid() {
		return b.v4
	}
	a := b.v6.Addr().As16()
	x := w.rng.Uint64()
	for j := 8; j < 16; j++ {
		a[j] = byte(x >> (8 * (15 - j)))
	}
	return netip.AddrFrom16(a)
}

func poisson(rng *rand.Rand, mean float64) int {
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// botnet schedules the botnet's visits and writes their sessions: every
// host makes 1 + Poisson(4 a day) visits at random times, of 1 +
// Geometric connections at its pace; the connections, in order, are then
// spread evenly over the log, about one a second.
func (w *world) botnet(bots []*bot) {
	type conn struct {
		t float64 // seconds from the start, before spreading
		b *bot
	}
	span := w.o.hours * 3600
	visitsMean := 4 * w.o.hours / 24
	perVisit := span / (float64(len(bots)) * (1 + visitsMean)) // connections a visit, on average
	var conns []conn
	for _, b := range bots {
		for range 1 + poisson(w.rng, visitsMean) {
			t := w.rng.Float64() * span
			n := 1
			for w.rng.Float64() > 1/perVisit {
				n++
			}
			for range n {
				conns = append(conns, conn{t, b})
				t += b.pace.Seconds() * (0.7 + 0.6*w.rng.Float64())
			}
		}
	}
	slices.SortStableFunc(conns, func(a, b conn) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return 0
	})
	step := span / float64(len(conns))
	for i, c := range conns {
		t := attack.Add(time.Duration((float64(i) + w.rng.Float64()) * step * float64(time.Second)))
		w.botSession(c.b, t)
	}
}

func (w *world) botUser() string {
	u := botUsers[w.rng.IntN(len(botUsers))]
	if w.chance(0.3) {
		u += "@example.com"
	}
	return u
}

func (w *world) spammer() string {
	return fmt.Sprintf("%s%d@example.%s", []string{"info", "news", "promo", "office"}[w.rng.IntN(4)], w.rng.IntN(1000), []string{"org", "net"}[w.rng.IntN(2)])
}

func (w *world) recipient() string {
	return names[3+w.rng.IntN(len(names)-3)] + "@example.com"
}

// botSession writes one botnet connection: 75% to port 25 through
// postscreen, 25% to submission; on port 25 a quarter try to send spam.
func (w *world) botSession(b *bot, t time.Time) {
	a := w.addr(b)
	helo := b.helo
	if helo == "" {
		helo = "[" + a.String() + "]"
	}
	if w.chance(0.25) {
		p := w.pid("submission/smtpd", t)
		prog := "postfix/submission/smtpd"
		w.emit(t, prog, p, "connect from unknown[%s]", a)
		w.emit(w.after(t, 0.2, 0.6), prog, p, "Anonymous TLS connection established from unknown[%s]: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)", a)
		t = w.after(t, 2, 20)
		w.emit(t, prog, p, "warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=%s", a, w.botUser())
		w.emit(w.after(t, 0, 0.5), prog, p, "disconnect from unknown[%s] ehlo=2 starttls=1 auth=0/1 quit=1 commands=4/5", a)
		return
	}
	ps, sp := postscreenPid, w.sport()
	w.emit(t, "postfix/postscreen", ps, "CONNECT from [%s]:%d to [192.0.2.1]:25", a, sp)
	spam := w.chance(0.25)
	if b.pregreet {
		greet := "EHLO " + helo
		w.emit(w.after(t, 0, 0.3), "postfix/postscreen", ps, "PREGREET %d after %.2f from [%s]:%d: %s\\r\\n", len(greet)+2, w.rng.Float64()*0.3, a, sp, greet)
		end := w.after(t, 6, 7)
		if spam {
			end = w.after(end, 1, 3)
			w.emit(end, "postfix/postscreen", ps, "NOQUEUE: reject: RCPT from [%s]:%d: 550 5.5.1 Protocol error; from=<%s>, to=<%s>, proto=ESMTP, helo=<%s>", a, sp, w.spammer(), w.recipient(), helo)
		}
		w.emit(w.after(end, 0, 0.5), "postfix/postscreen", ps, "DISCONNECT [%s]:%d", a, sp)
		return
	}
	t = w.postscreenPass(a, ps, sp, t)
	p := w.pid("smtpd", t)
	w.emit(w.after(t, 0, 0.05), "postfix/smtpd", p, "connect from unknown[%s]", a)
	t = w.after(t, 1, 20)
	if spam {
		if b.helo == "" {
			to := w.spammer()
			w.emit(t, "postfix/smtpd", p, "NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 <%s>: Relay access denied; from=<%s> to=<%s> proto=ESMTP helo=<%s>", a, to, w.spammer(), to, helo)
		} else {
			w.emit(t, "postfix/smtpd", p, "NOQUEUE: reject: RCPT from unknown[%s]: 504 5.5.2 <%s>: Helo command rejected: need fully-qualified hostname; from=<%s> to=<%s> proto=ESMTP helo=<%s>", a, helo, w.spammer(), w.recipient(), helo)
		}
		w.emit(w.after(t, 0, 1), "postfix/smtpd", p, "disconnect from unknown[%s] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4", a)
		return
	}
	w.emit(t, "postfix/smtpd", p, "warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=%s", a, w.botUser())
	t = w.after(t, 0, 0.5)
	if w.chance(0.5) {
		w.emit(t, "postfix/smtpd", p, "disconnect from unknown[%s] ehlo=1 auth=0/1 quit=1 commands=2/3", a)
	} else {
		w.emit(t, "postfix/smtpd", p, "lost connection after AUTH from unknown[%s]", a)
		w.emit(t, "postfix/smtpd", p, "disconnect from unknown[%s] ehlo=1 auth=0/1 commands=1/2", a)
	}
}

// customer is someone who logs in to send mail.
type customer struct {
	user   string
	home   netip.Addr
	phone  bool   // also sends from a phone on the mobile carrier's pool
	method string // PLAIN or LOGIN
}

// customers writes the customers' days: 2 to 12 sessions a day each
// between 7:00 and 23:00, from home or from a phone; 8% of sessions start
// with a mistyped password. On each day of the attack, 7% of customers
// have a device at home with an old password that retries every 2 to 5
// minutes for half an hour to two hours before they fix it, and 5% set up
// a new phone with the bare mailbox name (no @example.com), fail twice,
// then get it right. The history days before the attack are ordinary days
// without these episodes: they stand for the weeks a daemon has already
// seen the customers log in.
//
// The office's three shared mailboxes (info, sales, admin) log in from the
// office's one address; of the other customers a quarter live on the
// botnet's residential ISP, in a /24 with bots, half on another ISP
// (198.19.192.0/18), a fifth on IPv6; 40% also send from a phone on a
// mobile carrier's pool of addresses (203.0.113.0/24).
func (w *world) customers(bots []*bot) {
	used := map[netip.Addr]bool{}
	var v4 []*bot
	for _, b := range bots {
		if b.v4.IsValid() {
			used[b.v4] = true
			v4 = append(v4, b)
		}
	}
	office := netip.AddrFrom4([4]byte{198, 51, 100, 10})
	free := func(gen func() netip.Addr) netip.Addr {
		for {
			if a := gen(); !used[a] {
				used[a] = true
				return a
			}
		}
	}
	for i := range w.o.customers {
		c := &customer{method: []string{"PLAIN", "LOGIN"}[w.rng.IntN(2)], phone: w.chance(0.4)}
		if i < len(names) {
			c.user = names[i] + "@example.com"
		} else {
			k := i - len(names)
			c.user = fmt.Sprintf("%s%d@example.com", names[3+k%(len(names)-3)], 1+k/(len(names)-3))
		}
		switch r := w.rng.Float64(); {
		case i < 3:
			c.home = office
		case r < 0.25 && len(v4) > 0:
			c.home = free(func() netip.Addr {
				a := v4[w.rng.IntN(len(v4))].v4.As4()
				a[3] = byte(1 + w.rng.IntN(254))
				return netip.AddrFrom4(a)
			})
		case r < 0.8:
			c.home = free(func() netip.Addr {
				return netip.AddrFrom4([4]byte{198, 19, byte(192 + w.rng.IntN(64)), byte(1 + w.rng.IntN(254))})
			})
		default:
			var a [16]byte
			a[0], a[1], a[2], a[3], a[4] = 0x20, 0x01, 0x0d, 0xb8, 0xc0
			for j := 5; j < 16; j++ {
				a[j] = byte(w.rng.IntN(256))
			}
			c.home = netip.AddrFrom16(a)
		}
		w.customerDays(c)
	}
}

func (w *world) mobile() netip.Addr {
	return netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + w.rng.IntN(254))})
}

func (w *world) customerDays(c *customer) {
	for base := w.start; base.Before(w.end); base = base.AddDate(0, 0, 1) {
		dayTime := func() time.Time { return w.after(base, 7*3600, 23*3600) }
		for range 2 + w.rng.IntN(11) {
			a := c.home
			if c.phone && w.chance(0.3) {
				a = w.mobile()
			}
			w.customerSession(c, a, dayTime(), c.user, w.chance(0.08), true)
		}
		if !base.Before(attack) && w.chance(0.07) { // a device with an old password, at home
			t := dayTime()
			end := w.after(t, 1800, 7200)
			for ; t.Before(end); t = w.after(t, 120, 300) {
				w.customerSession(c, c.home, t, c.user, true, false)
			}
			w.customerSession(c, c.home, t, c.user, false, true)
		}
		if !base.Before(attack) && w.chance(0.05) { // a new phone set up with the bare mailbox name
			t, a := dayTime(), w.mobile()
			bare, _, _ := strings.Cut(c.user, "@")
			for range 2 {
				w.customerSession(c, a, t, bare, true, false)
				t = w.after(t, 30, 120)
			}
			w.customerSession(c, a, t, c.user, false, true)
		}
	}
}

// customerSession writes one session of a customer: a failed login first
// if fail, then a successful one that sends a message if ok.
func (w *world) customerSession(c *customer, a netip.Addr, t time.Time, user string, fail, ok bool) {
	if !t.Before(w.end) {
		return
	}
	w.legit = append(w.legit, legit{who: c.user, customer: true, addr: a, t: t})
	svc := "submission/smtpd"
	if w.chance(0.2) {
		svc = "smtps/smtpd"
	}
	prog, p := "postfix/"+svc, w.pid(svc, t)
	w.emit(t, prog, p, "connect from unknown[%s]", a)
	t = w.after(t, 0.1, 0.4)
	w.emit(t, prog, p, "Anonymous TLS connection established from unknown[%s]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256", a)
	auths, ehlo, cmds := 0, 2, 3 // cmds: EHLO, STARTTLS, EHLO
	if svc == "smtps/smtpd" {
		ehlo, cmds = 1, 1
	}
	if fail {
		t = w.after(t, 2, 4)
		w.emit(t, prog, p, "warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=%s", a, user)
		auths++
		if !ok {
			t = w.after(t, 0, 1)
			starttls := " starttls=1"
			if svc == "smtps/smtpd" {
				starttls = ""
			}
			w.emit(t, prog, p, "disconnect from unknown[%s] ehlo=%d%s auth=0/1 quit=1 commands=%d/%d", a, ehlo, starttls, cmds+1, cmds+2)
			return
		}
		t = w.after(t, 5, 20) // the customer types it again
	}
	q := w.qid()
	t = w.after(t, 0.2, 1)
	w.emit(t, prog, p, "%s: client=unknown[%s], sasl_method=%s, sasl_username=%s", q, a, c.method, user)
	w.emit(w.after(t, 0, 0.1), "postfix/cleanup", w.pid("cleanup", t), "%s: message-id=<%x@example.com>", q, w.rng.Uint64())
	t = w.after(t, 0.2, 2)
	w.emit(t, "postfix/qmgr", 700, "%s: from=<%s>, size=%d, nrcpt=1 (queue active)", q, user, 800+w.rng.IntN(200000))
	starttls := " starttls=1"
	if svc == "smtps/smtpd" {
		starttls = ""
	}
	authField := "auth=1"
	if auths > 0 {
		authField = "auth=1/2"
	}
	w.emit(w.after(t, 0, 0.2), prog, p, "disconnect from unknown[%s] ehlo=%d%s %s mail=1 rcpt=1 data=1 quit=1 commands=%d", a, ehlo, starttls, authField, cmds+5+auths)
	t = w.after(t, 0.3, 2)
	dom := []string{"example.org", "example.net"}[w.rng.IntN(2)]
	w.emit(t, "postfix/smtp", w.pid("smtp", t), "%s: to=<%s@%s>, relay=mx.%s[192.0.2.%d]:25, delay=%.1f, delays=0.1/0/0.3/0.4, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as %s)", q, names[3+w.rng.IntN(len(names)-3)], dom, dom, 200+w.rng.IntN(50), 0.8+w.rng.Float64(), w.qid())
	w.emit(w.after(t, 0, 0.1), "postfix/qmgr", 700, "%s: removed", q)
}

// servers writes deliveries from other mail servers on port 25: a fifth of
// them send every few minutes, the rest a few times a day; 3% of messages
// are for a mailbox that does not exist.
func (w *world) servers() {
	for i := range w.o.servers {
		name := fmt.Sprintf("mail%d.example.net", i+1)
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i%240)})
		gap := 3600 * (0.5 + 4*w.rng.Float64())
		if i%5 == 0 {
			gap = 120 + 300*w.rng.Float64()
		}
		for t := w.after(w.start, 0, gap); t.Before(w.end); t = w.after(t, gap/2, gap*3/2) {
			w.delivery(name, a, t)
		}
	}
}

func (w *world) delivery(name string, a netip.Addr, t time.Time) {
	w.legit = append(w.legit, legit{who: name, addr: a, t: t})
	ps, sp := postscreenPid, w.sport()
	w.emit(t, "postfix/postscreen", ps, "CONNECT from [%s]:%d to [192.0.2.1]:25", a, sp)
	t = w.postscreenPass(a, ps, sp, t)
	p := w.pid("smtpd", t)
	w.emit(w.after(t, 0, 0.05), "postfix/smtpd", p, "connect from %s[%s]", name, a)
	t = w.after(t, 0.1, 0.3)
	w.emit(t, "postfix/smtpd", p, "Anonymous TLS connection established from %s[%s]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256", name, a)
	from := fmt.Sprintf("bounces+%d@%s", w.rng.IntN(100000), name)
	t = w.after(t, 0.1, 0.5)
	if w.chance(0.03) {
		to := fmt.Sprintf("%s%d@example.com", names[3+w.rng.IntN(len(names)-3)], 1+w.rng.IntN(99))
		w.emit(t, "postfix/smtpd", p, "NOQUEUE: reject: RCPT from %s[%s]: 550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table; from=<%s> to=<%s> proto=ESMTP helo=<%s>", name, a, to, from, to, name)
		w.emit(w.after(t, 0, 0.3), "postfix/smtpd", p, "disconnect from %s[%s] ehlo=2 starttls=1 mail=1 rcpt=0/1 quit=1 commands=5/6", name, a)
		return
	}
	q := w.qid()
	w.emit(t, "postfix/smtpd", p, "%s: client=%s[%s]", q, name, a)
	w.emit(w.after(t, 0, 0.1), "postfix/cleanup", w.pid("cleanup", t), "%s: message-id=<%x@%s>", q, w.rng.Uint64(), name)
	t = w.after(t, 0.2, 1)
	w.emit(t, "postfix/qmgr", 700, "%s: from=<%s>, size=%d, nrcpt=1 (queue active)", q, from, 2000+w.rng.IntN(100000))
	w.emit(w.after(t, 0, 0.2), "postfix/smtpd", p, "disconnect from %s[%s] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7", name, a)
	t = w.after(t, 0.1, 0.5)
	to := w.recipient()
	w.emit(t, "postfix/lmtp", w.pid("lmtp", t), "%s: to=<%s>, relay=mx[private/dovecot-lmtp], delay=%.1f, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <%s> Saved)", q, to, 0.2+w.rng.Float64(), to)
	w.emit(w.after(t, 0, 0.1), "postfix/qmgr", 700, "%s: removed", q)
}

// record is a line of `banctl test --jail --json`: a match or a ban.
type record struct {
	Type   string    `json:"type"`
	IP     string    `json:"ip"`
	Event  string    `json:"event"`
	Prefix string    `json:"prefix"`
	Time   time.Time `json:"time"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
	p      netip.Prefix
}

// check reads the output of `banctl test --jail --json` for this log from
// file. It replays the bans in the order banctl decided them to sort every
// event with strikes into stopped (its address was banned already) or not,
// for the botnet and for the legitimate clients apart; and it reports the
// legitimate clients whose sessions fell in a ban: a customer or server
// "banned" had at least one session blocked.
func (w *world) check(file string, out io.Writer) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	legitAddr := map[netip.Addr]bool{}
	for _, s := range w.legit {
		legitAddr[s.addr] = true
	}
	var bans []record
	singles := map[netip.Addr]time.Time{}
	nets := map[netip.Prefix]time.Time{}
	bits := map[int]bool{}
	banned := func(a netip.Addr, t time.Time) bool {
		if end, ok := singles[a]; ok && t.Before(end) {
			return true
		}
		for b := range bits {
			if b <= a.BitLen() {
				if end, ok := nets[netip.PrefixFrom(a, b).Masked()]; ok && t.Before(end) {
					return true
				}
			}
		}
		return false
	}
	var botThrough, botStopped, legitThrough, legitStopped int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s: %v", file, err)
		}
		if r.Type != "ban" && r.Type != "match" {
			continue
		}
		// banctl took the year from the log file's date; move the times
		// to this log's year.
		shift := attack.Year() - r.Time.In(time.Local).Year()
		r.Time, r.Until = r.Time.AddDate(shift, 0, 0), r.Until.AddDate(shift, 0, 0)
		if r.Type == "match" {
			a, err := netip.ParseAddr(r.IP)
			if err != nil || r.Event == "auth_success" {
				continue // auth_success counts no strike
			}
			stopped := banned(a.Unmap(), r.Time)
			switch {
			case legitAddr[a] && stopped:
				legitStopped++
			case legitAddr[a]:
				legitThrough++
			case stopped:
				botStopped++
			default:
				botThrough++
			}
			continue
		}
		if r.p, err = netip.ParsePrefix(r.Prefix); err != nil {
			return fmt.Errorf("%s: %v", file, err)
		}
		if r.p.IsSingleIP() {
			if r.Until.After(singles[r.p.Addr()]) {
				singles[r.p.Addr()] = r.Until
			}
		} else {
			bits[r.p.Bits()] = true
			if r.Until.After(nets[r.p]) {
				nets[r.p] = r.Until
			}
		}
		bans = append(bans, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Fprintf(out, "botnet events with strikes: %d got through, %d stopped by a ban\n", botThrough, botStopped)
	fmt.Fprintf(out, "legitimate clients' events with strikes: %d not stopped (got through or forgiven as trusted), %d stopped by a ban\n", legitThrough, legitStopped)
	type hit struct {
		sessions, blocked int
		first             *legit
		why               *record
	}
	hits := map[string]*hit{}
	var order []string
	customers, servers := map[string]bool{}, map[string]bool{}
	for i := range w.legit {
		s := &w.legit[i]
		if s.customer {
			customers[s.who] = true
		} else {
			servers[s.who] = true
		}
		h := hits[s.who]
		if h == nil {
			h = &hit{}
			hits[s.who] = h
			order = append(order, s.who)
		}
		h.sessions++
		for j := range bans {
			b := &bans[j]
			if b.p.Contains(s.addr) && !s.t.Before(b.Time) && s.t.Before(b.Until) {
				h.blocked++
				if h.first == nil || s.t.Before(h.first.t) {
					h.first, h.why = s, b
				}
				break
			}
		}
	}
	nc, ns, bc, bs := 0, 0, 0, 0
	for _, who := range order {
		h := hits[who]
		if h.blocked == 0 {
			continue
		}
		if customers[who] {
			nc++
			bc += h.blocked
		} else {
			ns++
			bs += h.blocked
		}
		fmt.Fprintf(out, "blocked: %s from %s at %s: %d of %d sessions (ban of %s at %s: %s)\n", who, h.first.addr,
			h.first.t.Format(time.Stamp), h.blocked, h.sessions, h.why.Prefix, h.why.Time.In(time.Local).Format(time.Stamp), h.why.Reason)
	}
	fmt.Fprintf(out, "customers banned: %d of %d (%d sessions blocked); servers banned: %d of %d (%d sessions blocked)\n",
		nc, len(customers), bc, ns, len(servers), bs)
	return nil
}

// postscreenPass logs postscreen letting a through: at once when it passed
// before (PASS OLD), after the greet wait when new (PASS NEW). It returns
// the time of the pass.
func (w *world) postscreenPass(a netip.Addr, ps, sp int, t time.Time) time.Time {
	if w.passed[a] {
		t = w.after(t, 0, 0.01)
		w.emit(t, "postfix/postscreen", ps, "PASS OLD [%s]:%d", a, sp)
		return t
	}
	t = w.after(t, 6, 6.1)
	w.emit(t, "postfix/postscreen", ps, "PASS NEW [%s]:%d", a, sp)
	w.passed[a] = true
	return t
}
