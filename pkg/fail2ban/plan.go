package fail2ban

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
)

// ManualJail is banwatch's jail of bans that cover every port.
const ManualJail = config.ManualJail

// DefaultMap maps the names of fail2ban's shipped mail and ssh jails to
// banwatch's shipped jails. A fail2ban jail named like a running banwatch
// jail goes there without being listed.
var DefaultMap = map[string]string{
	"postfix":      "postfix",
	"postfix-sasl": "postfix",
	"postfix-rbl":  "postfix",
	"postscreen":   "postfix",
	"exim":         "exim",
	"exim-spam":    "exim",
	"dovecot":      "dovecot",
	"sieve":        "dovecot",
	"sshd":         "sshd",
	"ssh":          "sshd", // fail2ban 0.8's name
	"sshd-ddos":    "sshd",
	"icewarp":      "icewarp",
}

// Defaults of Options.
const (
	// DefaultFor is how long a ban whose length fail2ban did not store is
	// taken to last from its time: fail2ban's jails have no default
	// length in the database, and 7 days is banwatch's ban_time.
	DefaultFor = 7 * 24 * time.Hour
	// DefaultPermanentFor is how long a permanent fail2ban ban (bantime
	// -1) lasts in banwatch, whose bans all end: ten years from its time.
	DefaultPermanentFor = 3650 * 24 * time.Hour
)

// Options says how to plan an import.
type Options struct {
	Now time.Time
	// Running holds the banwatch jails that run (the manual jail always
	// does).
	Running map[string]bool
	// Map maps fail2ban jails to banwatch jails (banctl import --jail
	// F2B=BW); it comes before the same name and DefaultMap.
	Map          map[string]string
	DefaultFor   time.Duration // the length of a ban of unknown length; DefaultFor if 0
	PermanentFor time.Duration // the length of a permanent ban; DefaultPermanentFor if 0
}

// Why an entry is left out by the plan.
const (
	SkipExpired   = "expired"
	SkipInvalid   = "invalid"   // the stored value is not an address or prefix
	SkipDuplicate = "duplicate" // banned longer by another fail2ban jail that maps to the same banwatch jail
)

// Entry is one fail2ban ban in the plan: where it goes and until when, or
// why it is left out.
type Entry struct {
	Ban    Ban
	Prefix netip.Prefix // the address or prefix; invalid when Skip is SkipInvalid
	Jail   string       // the banwatch jail
	Until  time.Time
	Reason string // recorded with the ban in banwatch
	Skip   string // "" to import, or SkipExpired, SkipInvalid, SkipDuplicate
	Detail string // more on Skip, for the admin
}

// Target returns the banwatch jail of fail2ban jail f2b and, when it is
// not the obvious one, a note saying why.
func Target(f2b string, o *Options) (jail, note string) {
	if j, ok := o.Map[f2b]; ok {
		return j, ""
	}
	if f2b == ManualJail || o.Running[f2b] {
		return f2b, ""
	}
	if j, ok := DefaultMap[f2b]; ok {
		if o.Running[j] {
			return j, ""
		}
		return ManualJail, fmt.Sprintf("banwatch's jail %s does not run: every port", j)
	}
	return ManualJail, "no banwatch jail of that name: every port"
}

// Plan decides, for each ban, its banwatch jail, its end and its reason,
// or why it is left out: expired at o.Now (or with less than a second
// left), not an address, or banned longer in the same banwatch jail by
// another fail2ban jail. The entries follow the order of bans.
func Plan(bans []Ban, o Options) []Entry {
	if o.DefaultFor <= 0 {
		o.DefaultFor = DefaultFor
	}
	if o.PermanentFor <= 0 {
		o.PermanentFor = DefaultPermanentFor
	}
	out := make([]Entry, len(bans))
	type key struct {
		p    netip.Prefix
		jail string
	}
	best := map[key]int{}
	for i, b := range bans {
		e := &out[i]
		e.Ban = b
		e.Jail, _ = Target(b.Jail, &o)
		p, err := ban.ParsePrefix(b.IP)
		if err != nil {
			e.Skip, e.Detail = SkipInvalid, err.Error()
			continue
		}
		e.Prefix = p
		switch {
		case b.Permanent:
			// From fail2ban's ban time, not from now: an import run
			// again finds the ban already there until the same end.
			e.Until = b.Time.Add(o.PermanentFor)
		case b.Unknown:
			e.Until = b.Time.Add(o.DefaultFor)
		default:
			e.Until = b.Time.Add(b.BanTime)
		}
		if e.Until.Sub(o.Now) < time.Second {
			e.Skip, e.Detail = SkipExpired, "ended "+stamp(e.Until)
			continue
		}
		e.Until = e.Until.Truncate(time.Second)
		e.Reason = reason(b, o)
		k := key{p, e.Jail}
		if j, ok := best[k]; ok {
			keep, drop := &out[j], e
			if e.Until.After(keep.Until) {
				keep, drop = e, keep
				best[k] = i
			}
			drop.Skip, drop.Detail = SkipDuplicate, fmt.Sprintf("banned longer in fail2ban jail %s, also imported into %s", keep.Ban.Jail, keep.Jail)
			continue
		}
		best[k] = i
	}
	return out
}

func stamp(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 MST") }

// reason is the text recorded with an imported ban.
func reason(b Ban, o Options) string {
	times := "once"
	if b.Count > 1 {
		times = fmt.Sprintf("%d times", b.Count)
	}
	s := fmt.Sprintf("imported from fail2ban (jail %s, banned at %s, %s", b.Jail, stamp(b.Time), times)
	switch {
	case b.Permanent:
		s += "; permanent there"
	case b.Unknown:
		s += "; its length unknown, " + days(o.DefaultFor) + " taken"
	}
	return s + ")"
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// Summary counts an import per fail2ban jail.
type Summary struct {
	Fail2banJail string         `json:"fail2ban_jail"`
	Jail         string         `json:"jail"` // the banwatch jail
	Note         string         `json:"note,omitempty"`
	Imported     int            `json:"imported"`
	Skipped      map[string]int `json:"skipped"` // by reason
}

// Summarize counts entries per fail2ban jail, sorted by its name; skip
// gives each entry's final reason to be left out ("" if imported), which
// may come from the daemon rather than the plan.
func Summarize(entries []Entry, o Options, skip func(i int) string) []Summary {
	by := map[string]*Summary{}
	for i := range entries {
		e := &entries[i]
		s, ok := by[e.Ban.Jail]
		if !ok {
			j, note := Target(e.Ban.Jail, &o)
			s = &Summary{Fail2banJail: e.Ban.Jail, Jail: j, Note: note, Skipped: map[string]int{}}
			by[e.Ban.Jail] = s
		}
		if why := skip(i); why != "" {
			s.Skipped[why]++
		} else {
			s.Imported++
		}
	}
	out := make([]Summary, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fail2banJail < out[j].Fail2banJail })
	return out
}
