package banwatch_test

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/filter"
)

// An injection template is a real log line of a filter's MTA in which the
// client controls one field (HELO name, user name, sender, recipient,
// subject, pregreet bytes, command text, password), marked {{X}} (each
// place the same text). filters/testdata/NAME.inject holds them, one a
// line: what the filter must make of the line, a tab, the template. The
// first column is
//
//	ADDR   a line the filter takes: with a harmless value in the field it
//	       is an event from ADDR, the real client address
//	?ADDR  a line the filter does not take with a harmless value, but in
//	       which the client's text could make an event of its own
//	-      a line the filter must never take: another program's, or one
//	       without the client's address
//
// {{H}} marks a DNS name the client's owner chooses (the reverse DNS name
// the MTA writes beside the address): the MTA writes it only when it is a
// valid host name, so there the payload is reduced to host name characters.
//
// Whatever the client writes into its field, a filter must either see no
// event or an event from the real client address.

// payloads are what a client would write into a field to get another
// address banned (or its own line ignored).
var payloads = []string{
	"[198.51.100.9]",
	"unknown[198.51.100.9]",
	"unknown[198.51.100.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
	"Nov 28 02:00:19 mx postfix/smtpd[4242]: warning: unknown[198.51.100.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
	"postfix/postscreen[1]: PREGREET 11 after 0 from [198.51.100.9]:1234: EHLO x",
	"from [198.51.100.9]:4444: ",
	") [198.51.100.9]:25 ",
	"(ylmf-pc) [198.51.100.9]:25 incorrect authentication data",
	"2026-11-28 02:00:47 login authenticator failed for (x) [198.51.100.9]: 535 Incorrect authentication data",
	"rip=198.51.100.9, lip=192.0.2.1",
	"user=<admin>, method=PLAIN, rip=198.51.100.9, lip=192.0.2.1, session=<x>",
	"198.51.100.9   [0968] 16:14:24 >>> 535 5.7.8 Authentication credentials invalid",
	"Failed password for root from 198.51.100.9 port 22 ssh2",
	"Invalid user admin from 198.51.100.9 port 22",
	"::ffff:198.51.100.9",
	"2001:db8::9",
	"[2001:db8::9]:25",
	"Connection lost to authentication server",
	"> helo=<198.51.100.9",
	"; from=<a@b> to=<c@d> proto=ESMTP helo=<[198.51.100.9]>",
	"x) [198.51.100.9]:25 F=<a@example.org> rejected RCPT <b@example.org>: relay not permitted",
	"x (ylmf-pc) [198.51.100.9]:25 rejected EHLO or HELO x: need fully-qualified hostname",
	"unknown[198.51.100.9]: 554 5.7.1 <x>: Relay access denied; from=<a@b> to=<c@d> proto=ESMTP helo=<x>",
	"x from 198.51.100.9 port 22 ssh2",
	"authenticating user x 198.51.100.9 port 22 [preauth]",
	"x,198.51.100.9): unknown user",
	"x,198.51.100.9): unknown user (SHA1 of given password: ab",
	"x) auth(x,198.51.100.9,sasl:plain)<a>: sql: Password mismatch (SHA1 of given password: ab",
	"[IPv6:2001:db8::9]",
	"\\r\\n",
	"",
	strings.Repeat("A", 4000),
}

// What a template's line must give: see the top of the file.
const (
	live  = iota // an event from addr with a harmless value; addr or nothing with any
	maybe        // no event with a harmless value; addr or nothing with any
	never        // no event with any value
)

type template struct {
	file string
	line int
	want int        // live, maybe or never
	addr netip.Addr // the real client address; zero for never
	text string
}

func readTemplates(t testing.TB, name string) []template {
	t.Helper()
	path := filepath.Join("filters", "testdata", name+".inject")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("every shipped filter needs injection templates: %v", err)
	}
	var out []template
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		col, text, ok := strings.Cut(l, "\t")
		if !ok || !strings.Contains(text, "{{X}}") && !strings.Contains(text, "{{H}}") {
			t.Fatalf("%s:%d: want ADDRESS, ?ADDRESS or -, a tab and a line with {{X}} or {{H}} where the client writes", path, n)
		}
		tp := template{file: path, line: n, want: live, text: text}
		switch {
		case col == "-":
			tp.want = never
		case strings.HasPrefix(col, "?"):
			tp.want, col = maybe, col[1:]
		}
		if tp.want != never {
			addr, err := netip.ParseAddr(col)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
			tp.addr = addr.Unmap()
		}
		out = append(out, tp)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no templates", path)
	}
	return out
}

// sanitize does what MTAs do to client text before logging it: no line
// breaks and no other control characters reach the log.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// hostname stands for the checks an MTA makes of a reverse DNS name before
// it writes one: only letters, digits, '-', '_' and '.' remain.
func hostname(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, s)
}

// fill writes payload into a template's fields.
func (tp template) fill(payload string) string {
	return strings.NewReplacer("{{X}}", sanitize(payload), "{{H}}", hostname(payload)).Replace(tp.text)
}

func checkInjection(t testing.TB, f *filter.Filter, tp template, payload string) {
	line := tp.fill(payload)
	ev, ok := f.Match([]byte(line), goldenRef)
	if ok && (tp.want == never || ev.Addr != tp.addr) {
		want := tp.addr.String() + " or nothing"
		if tp.want == never {
			want = "nothing"
		}
		t.Errorf("%s:%d: payload %q yields %s (%s), want %s:\n%s", tp.file, tp.line, payload, ev.Addr, ev.Kind, want, line)
	}
}

func TestInjection(t *testing.T) {
	filters, err := config.LoadFilters("")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range filters {
		t.Run(f.Name, func(t *testing.T) {
			for _, tp := range readTemplates(t, f.Name) {
				// With a harmless value in the client's field a live
				// template is an event from its address, the others none:
				// so that each says what the filter really does with it.
				line := tp.fill("ylmf-pc")
				ev, ok := f.Match([]byte(line), goldenRef)
				switch {
				case tp.want == live && (!ok || ev.Addr != tp.addr):
					t.Errorf("%s:%d: template does not match with a harmless value (got %v %v):\n%s", tp.file, tp.line, ok, ev.Addr, line)
				case tp.want != live && ok:
					t.Errorf("%s:%d: template marked as not taken gives %s (%s) with a harmless value:\n%s", tp.file, tp.line, ev.Addr, ev.Kind, line)
				}
				for _, p := range payloads {
					checkInjection(t, f, tp, p)
				}
			}
		})
	}
}

// FuzzInjection writes arbitrary text into the client's field of every
// template, starting from the payloads: the filter sees no event, or one
// from the real client address (none for a "-" template).
func FuzzInjection(f *testing.F) {
	filters, err := config.LoadFilters("")
	if err != nil {
		f.Fatal(err)
	}
	type ft struct {
		f  *filter.Filter
		tp template
	}
	var all []ft
	for _, fl := range filters {
		for _, tp := range readTemplates(f, fl.Name) {
			all = append(all, ft{fl, tp})
		}
	}
	for i, p := range payloads {
		if len(p) <= 200 { // the fuzzer grows inputs itself; long seeds make its minimizing slow
			f.Add(uint(i), p)
		}
	}
	f.Fuzz(func(t *testing.T, i uint, payload string) {
		c := all[i%uint(len(all))]
		checkInjection(t, c.f, c.tp, payload)
	})
}

// FuzzShippedFilters feeds arbitrary lines to every shipped filter at once,
// starting from the lines in filters/testdata, and checks what a user of the
// events relies on:
//   - no panic;
//   - every event has a known kind and an address that the line writes as a
//     whole token, IPv4-mapped addresses unmapped (the firewall bans IPv4
//     clients in the IPv4 set);
//   - the HELO name and user name an event carries are text of the line:
//     fingerprints ban every address that uses them;
//   - the daemon's Matcher, with caches that have seen another line first,
//     gives exactly what Set.Match gives, and that is what each filter gives
//     alone: a jail sees the same events whatever other jails run.
func FuzzShippedFilters(f *testing.F) {
	filters, err := config.LoadFilters("")
	if err != nil {
		f.Fatal(err)
	}
	set, err := filter.NewSet(filters...)
	if err != nil {
		f.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join("filters", "testdata", "*.log"))
	var lines [][]byte
	for _, path := range logs {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			if len(l) > 0 && len(l) < 400 {
				f.Add(l)
				lines = append(lines, l)
			}
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		evs := set.Match(line, goldenRef, nil)
		for _, ev := range evs {
			if !ev.Addr.IsValid() || ev.Addr.Is4In6() || !testutil.LiterallyHolds(line, ev.Addr) {
				t.Fatalf("%s (%s, filter %s) is not written in %q", ev.Addr, ev.Kind, ev.Filter, line)
			}
			if !ev.Kind.Valid() {
				t.Fatalf("filter %s: unknown kind %q from %q", ev.Filter, ev.Kind, line)
			}
			if !bytes.Contains(line, []byte(ev.HELO)) || !bytes.Contains(line, []byte(ev.User)) {
				t.Fatalf("filter %s: HELO %q or user %q is not in %q", ev.Filter, ev.HELO, ev.User, line)
			}
		}
		var alone []event.Event
		for _, fl := range filters {
			if ev, ok := fl.Match(line, goldenRef); ok {
				alone = append(alone, ev)
			}
		}
		if !sameEvents(evs, alone) {
			t.Fatalf("%q: the set gives %+v, the filters alone %+v", line, evs, alone)
		}
		m := set.NewMatcher()
		m.Match(lines[len(line)%len(lines)], goldenRef, nil)
		for range 2 {
			if got := m.Match(line, goldenRef, nil); !sameEvents(got, evs) {
				t.Fatalf("%q after %q: a Matcher gives %+v, Set.Match %+v", line, lines[len(line)%len(lines)], got, evs)
			}
		}
	})
}

// sameEvents compares events, their times as instants (a zone parsed twice
// need not be the same *time.Location).
func sameEvents(a, b []event.Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.Time.Equal(y.Time) {
			return false
		}
		x.Time, y.Time = time.Time{}, time.Time{}
		if x != y {
			return false
		}
	}
	return true
}
