package banwatch_test

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/filter"
)

// An injection template is a real log line of a filter's MTA in which the
// client controls one field (HELO name, user name, sender, recipient,
// pregreet bytes, command text), marked {{X}} (each place the same text). filters/testdata/NAME.inject
// holds them, one a line: the real client address, a tab, the template.
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
	"\\r\\n",
	"",
	strings.Repeat("A", 4000),
}

type template struct {
	file string
	line int
	addr netip.Addr
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
		ip, text, ok := strings.Cut(l, "\t")
		addr, err := netip.ParseAddr(ip)
		if !ok || err != nil || !strings.Contains(text, "{{X}}") {
			t.Fatalf("%s:%d: want ADDRESS<tab>LINE with {{X}} where the client writes", path, n)
		}
		out = append(out, template{path, n, addr.Unmap(), text})
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

func checkInjection(t testing.TB, f *filter.Filter, tp template, payload string) {
	line := strings.ReplaceAll(tp.text, "{{X}}", sanitize(payload))
	ev, ok := f.Match([]byte(line), goldenRef)
	if ok && ev.Addr != tp.addr {
		t.Errorf("%s:%d: payload %q yields %s (%s), want %s or nothing:\n%s", tp.file, tp.line, payload, ev.Addr, ev.Kind, tp.addr, line)
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
				// The template must be live: with a harmless value in the
				// client's field it is an event from its address.
				line := strings.ReplaceAll(tp.text, "{{X}}", "ylmf-pc")
				if ev, ok := f.Match([]byte(line), goldenRef); !ok || ev.Addr != tp.addr {
					t.Errorf("%s:%d: template does not match with a harmless value (got %v %v):\n%s", tp.file, tp.line, ok, ev.Addr, line)
				}
				for _, p := range payloads {
					checkInjection(t, f, tp, p)
				}
			}
		})
	}
}

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
// starting from the lines in filters/testdata: no panic, and no address that
// the line does not literally hold.
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
	for _, path := range logs {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			if len(l) > 0 && len(l) < 400 {
				f.Add(l)
			}
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, ev := range set.Match(line, goldenRef, nil) {
			if !ev.Addr.IsValid() || !testutil.LiterallyHolds(line, ev.Addr) {
				t.Fatalf("%s (%s, filter %s) is not written in %q", ev.Addr, ev.Kind, ev.Filter, line)
			}
		}
	})
}
