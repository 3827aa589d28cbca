package banwatch_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/event"

	_ "time/tzdata" // corpusZone, on machines without a zone database
)

// corpusDir is where fail2ban's labelled test logs are: beside the checkout
// in ../shared, or wherever BANWATCH_CORPUS says. They are read at test time
// and never copied into this repository.
func corpusDir() string {
	if d := os.Getenv("BANWATCH_CORPUS"); d != "" {
		return d
	}
	return filepath.Join("..", "shared", "corpus", "fail2ban")
}

// conformance names, per filter of ours, the corpus files it answers for,
// the share of attack lines it must find, and the attack lines it leaves out
// on purpose (a substring of the line, and why).
var conformance = []struct {
	filter  string
	files   []string
	minRate float64
	skip    map[string]string
}{
	{filter: "postfix", files: []string{"postfix.log"}, minRate: 0.95},
	{filter: "exim", files: []string{"exim.log", "exim-spam.log"}, minRate: 0.95, skip: map[string]string{
		"closed by DROP in ACL":                    "Exim writes it after the 'rejected ...' line of the same refusal, which counts; both would strike twice",
		"sender verify fail for <":                 "Exim writes it before the 'rejected RCPT ...: Sender verify failed' line, which counts",
		"no host name found for IP address ":       "no reverse DNS is no misbehaviour: home and mobile submission users have none",
		"SA: Action: flagged as Spam but accepted": "the message was accepted",
		"dropped by 'connect' ACL: ":               "not a line Exim writes: a site's own log_message",
	}},
	{filter: "dovecot", files: []string{"dovecot.log"}, minRate: 0.95, skip: map[string]string{
		"(given password: ": "Dovecot 2.4 with auth_verbose_passwords: client text stands on both sides of the address",
	}},
	{filter: "sshd", files: []string{"sshd.log"}, minRate: 0.95, skip: map[string]string{
		"from 192.030.0.6":                                     "a leading-zero octet is no valid address",
		"from example.com":                                     "a host name, not an address: never resolved",
		"ROOT LOGIN REFUSED FROM":                              "sshd writes it with the 'Failed ... for root' line of the same attempt, which counts",
		"for illegal user kernelitshell":                       "repeats 'Failed keyboard-interactive/pam for invalid user', which counts",
		"pam_unix(sshd:auth)":                                  "repeats 'Failed password', which counts",
		"Disconnected from 192.0.2.4 port":                     "always follows 'Received disconnect', which counts",
		"Disconnected from authenticating user root 192.0.2.6": "always follows 'Received disconnect' (its twin with user admin is labelled benign)",
		"[sshd]":                             "'[sshd]:' is no syslog tag the header parser reads",
		"<38>1 ":                             "RFC 5424 syslog headers are not read yet",
		"refused connect from":               "TCP wrappers refused the host already: sshd never saw it",
		"ssh1: ruser":                        "SSH1 rhosts: client text follows the address, so the line cannot be read safely",
		"ROOT from 194.117.26.70 port 12345": "no 'port N ssh2' tail: a user name could imitate the line",
		"ROOT from aaaa:bbbb:cccc:1234::1:1 port 12345":   "no 'port N ssh2' tail: a user name could imitate the line",
		"14:34:11 belka sshd[31603]: Failed password":     "no port and no 'ssh2' tail: a user name could imitate the line",
		"Disconnecting: Too many authentication failures": "no address in the line",
		"Read from socket failed":                         "no address in the line",
		"kex_exchange_identification":                     "no address in the line",
		"Unable to negotiate a key exchange method":       "no address in the line",
		"fatal: no matching mac found":                    "no address in the line",
		"Connection closed by 192.0.2.15 port 35352":      "without [preauth] it may be a logged-in user's session ending (OpenSSH 7.2 to 7.5)",
		"Accepted password for known":                     "a login that succeeded is never a strike",
		// Not skipped but missed on purpose: sshd.log's "Failed password for
		// invalid user test from 127.0.0.1 port 58946 ssh2: from 10.10.1.2
		// port 55555 ssh2". fail2ban takes the first address; OpenSSH writes
		// nothing after "ssh2" on a failed password, so all before the last
		// " from " is the user name and the client is 10.10.1.2.
	}},
}

// labelled is one corpus line with every label fail2ban gives it.
type labelled struct {
	file     string
	lineNo   int
	text     string
	positive bool     // matched in at least one mode
	hosts    []string // the expected address of each positive label
	times    []string // the expected time of each positive label, if given
	negative bool     // labelled "match": false without a mode constraint
}

// corpusRef is the "now" of fail2ban's tests, which read syslog lines as
// being of 2004 and 2005.
var corpusRef = time.Date(2005, 8, 20, 0, 0, 0, 0, time.UTC)

// TestConformance measures our filters against fail2ban's labelled logs: the
// share of attack lines each finds with the right address, and every benign
// line it wrongly matches (there must be none).
func TestConformance(t *testing.T) {
	dir := corpusDir()
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no labelled corpus at %s (set BANWATCH_CORPUS): %v", dir, err)
	}
	for _, c := range conformance {
		t.Run(c.filter, func(t *testing.T) {
			f, err := config.FindFilter("", c.filter)
			if err != nil {
				t.Fatal(err)
			}
			var lines []*labelled
			for _, name := range c.files {
				ls, err := readCorpus(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				lines = append(lines, ls...)
			}
			var pos, hit, neg, wrongTime int
			var missed []string
			for _, l := range lines {
				ev, ok := f.Match([]byte(l.text), corpusRef)
				// fail2ban labels only failures; a login that succeeded is
				// never a strike for us, whatever the corpus says of its line.
				ok = ok && ev.Kind != event.AuthSuccess
				switch {
				case l.positive:
					pos++
					if why, skipped := skipReason(c.skip, l.text); skipped {
						t.Logf("left out on purpose (%s): %s:%d: %s", why, l.file, l.lineNo, l.text)
						if ok {
							t.Errorf("%s:%d is listed as left out but matches; update the list", l.file, l.lineNo)
						}
						continue
					}
					if ok && contains(l.hosts, ev.Addr) {
						hit++
						// TAI64N labels are absolute; fail2ban's expected
						// wall-clock times for them depend on its tests' zone.
						if !strings.HasPrefix(l.text, "@") && !timeAgrees(l.times, ev.Time, zoned.MatchString(l.text)) {
							wrongTime++
							t.Errorf("%s:%d: time %s, corpus says %v: %s", l.file, l.lineNo, ev.Time, l.times, l.text)
						}
						continue
					}
					got := "nothing"
					if ok {
						got = ev.Addr.String()
					}
					missed = append(missed, fmt.Sprintf("%s:%d: want %v, got %s: %s", l.file, l.lineNo, l.hosts, got, l.text))
				case l.negative:
					neg++
					if ok {
						t.Errorf("%s:%d: benign line matched (%s %s, rule %d): %s", l.file, l.lineNo, ev.Kind, ev.Addr, ev.Rule+1, l.text)
					}
				}
			}
			nskip := len(skipped(c.skip, lines))
			counted := pos - nskip
			rate := float64(hit) / float64(max(counted, 1))
			t.Logf("%s: %d/%d attack lines found with the right address (%.1f%%); %d more left out on purpose; %d benign lines checked",
				c.filter, hit, counted, 100*rate, nskip, neg)
			for _, m := range missed {
				t.Logf("missed: %s", m)
			}
			if rate < c.minRate {
				t.Errorf("%s finds %.1f%% of the corpus's attack lines, want at least %.0f%%", c.filter, 100*rate, 100*c.minRate)
			}
		})
	}
}

func skipReason(skip map[string]string, line string) (string, bool) {
	for sub, why := range skip {
		if strings.Contains(line, sub) {
			return why, true
		}
	}
	return "", false
}

func skipped(skip map[string]string, lines []*labelled) []*labelled {
	var out []*labelled
	for _, l := range lines {
		if _, ok := skipReason(skip, l.text); ok && l.positive {
			out = append(out, l)
		}
	}
	return out
}

func contains(hosts []string, a netip.Addr) bool {
	for _, h := range hosts {
		if want, err := netip.ParseAddr(h); err == nil && want.Unmap() == a {
			return true
		}
	}
	return false
}

// zoned matches lines whose timestamp carries its zone.
var zoned = regexp.MustCompile(`^\S*\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d) `)

// corpusZone is the zone of fail2ban's tests: it writes the expected time of
// a line with a zone as wall-clock time there.
var corpusZone = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return loc
}()

// timeAgrees compares wall-clock fields: fail2ban writes local times without
// a zone, and lax ones ("2005-03-7T02:09:33"); a time with a zone in the
// line it gives in its tests' zone.
func timeAgrees(want []string, got time.Time, zonedLine bool) bool {
	if len(want) == 0 {
		return true
	}
	if zonedLine {
		got = got.In(corpusZone)
	}
	for _, w := range want {
		var y, mo, d, h, mi, s int
		if _, err := fmt.Sscanf(w[:min(len(w), 19)], "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &s); err != nil {
			return true // a form we do not read: do not judge
		}
		g := got
		if !zonedLine {
			g = got.UTC()
		}
		if g.Year() == y && int(g.Month()) == mo && g.Day() == d && g.Hour() == h && g.Minute() == mi && g.Second() == s {
			return true
		}
	}
	return false
}

// readCorpus reads a fail2ban test log: "# failJSON: {...}" labels the next
// line that is not a comment. The same text may be labelled several times
// (once per mode); its labels are merged.
func readCorpus(path string) ([]*labelled, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	byText := map[string]*labelled{}
	var order []*labelled
	var pending *struct {
		Match      bool            `json:"match"`
		Host       string          `json:"host"`
		Time       string          `json:"time"`
		Constraint json.RawMessage `json:"constraint"`
	}
	allModes := true
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if i := strings.Index(text, "# filterOptions:"); i >= 0 && strings.HasPrefix(text, "#") {
			allModes = coversAllModes(text[i+len("# filterOptions:"):])
			continue
		}
		if rest, ok := strings.CutPrefix(text, "# failJSON:"); ok {
			pending = nil
			var lab struct {
				Match      bool            `json:"match"`
				Host       string          `json:"host"`
				Time       string          `json:"time"`
				Constraint json.RawMessage `json:"constraint"`
			}
			if err := json.Unmarshal([]byte(rest), &lab); err != nil {
				return nil, fmt.Errorf("%s:%d: %v", path, n, err)
			}
			pending = &lab
			continue
		}
		if strings.HasPrefix(text, "#") || strings.TrimSpace(text) == "" || pending == nil {
			continue
		}
		l := byText[text]
		if l == nil {
			l = &labelled{file: filepath.Base(path), lineNo: n, text: text}
			byText[text] = l
			order = append(order, l)
		}
		if pending.Match {
			l.positive = true
			l.hosts = append(l.hosts, pending.Host)
			if pending.Time != "" {
				l.times = append(l.times, pending.Time)
			}
		} else if len(pending.Constraint) == 0 && allModes {
			l.negative = true
		}
		pending = nil
	}
	for _, l := range order {
		if l.positive {
			l.negative = false // matched in some mode: we may match it
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].lineNo < order[j].lineNo })
	return order, sc.Err()
}

// coversAllModes reports whether a "# filterOptions:" list includes the mode
// that is the union of all others: fail2ban's default ({} or no mode) or
// "aggressive". A "match": false under such options means fail2ban never
// wants the line; under a narrower mode (postfix "errors": "jail for too many
// errors only") it says nothing about what the line is.
func coversAllModes(opts string) bool {
	var list []map[string]any
	if err := json.Unmarshal([]byte(opts), &list); err != nil {
		var one map[string]any
		if err := json.Unmarshal([]byte(opts), &one); err != nil {
			return true
		}
		list = []map[string]any{one}
	}
	for _, o := range list {
		mode, ok := o["mode"]
		if !ok || mode == "aggressive" {
			return true
		}
	}
	return false
}
