package notify

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
)

// Payload is the JSON body of a POST. Text is the message chat tools
// show; the other fields are for programs.
type Payload struct {
	Text  string    `json:"text"`
	Event string    `json:"event"` // "ban", "unban" or "digest"
	Host  string    `json:"host"`
	Time  time.Time `json:"time"` // when it was made
	// For "ban" and "unban": how many, per jail, and the first MaxItems
	// (the others are counted in Omitted).
	Count   int            `json:"count,omitempty"`
	Jails   map[string]int `json:"jails,omitempty"`
	Bans    []Item         `json:"bans,omitempty"`
	Omitted int            `json:"omitted,omitempty"`
	// For "digest".
	Digest *Digest `json:"digest,omitempty"`
}

// Item is one ban made or lifted.
type Item struct {
	IP      string    `json:"ip"`     // "203.0.113.7", or a subnet's CIDR
	Prefix  string    `json:"prefix"` // "203.0.113.7/32"
	Jail    string    `json:"jail"`
	Origin  string    `json:"origin,omitempty"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	Strikes int       `json:"strikes"`
	Reason  string    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`
}

// Digest is a digest's content: what happened between Since and Until.
type Digest struct {
	Since   time.Time      `json:"since"`
	Until   time.Time      `json:"until"`
	Bans    map[string]int `json:"bans"`   // bans made, per jail
	Unbans  map[string]int `json:"unbans"` // bans lifted by an admin, per jail
	Expired int            `json:"expired"`
	// Active holds the active bans per jail now, and ActiveTotal their
	// sum; both are absent when the store could not count them.
	Active      map[string]int `json:"active,omitempty"`
	ActiveTotal *int           `json:"active_total,omitempty"`
	// TopNetworks are the /24s (IPv4) and /64s (IPv6) with the most bans,
	// two or more, at most five.
	TopNetworks []NetworkCount `json:"top_networks"`
}

// NetworkCount is a network's bans in a digest.
type NetworkCount struct {
	Network string `json:"network"`
	Bans    int    `json:"bans"`
}

func itemOf(ev *Event) Item {
	return Item{IP: ban.IP(ev.Prefix), Prefix: ev.Prefix.String(), Jail: ev.Jail, Origin: ev.Origin,
		Since: ev.Start.UTC(), Until: ev.Until.UTC(), Strikes: ev.Strikes, Reason: ev.Reason, By: ev.By}
}

// eventPayload writes a group of bans or unbans as one message.
func (n *Notifier) eventPayload(kind string, g *group, t time.Time) *Payload {
	p := &Payload{Event: kind, Host: n.host, Time: t.UTC(), Count: g.count, Jails: g.jails, Bans: g.items,
		Omitted: g.count - len(g.items)}
	var b strings.Builder
	b.WriteString("banwatch " + n.host + ": ")
	verb := "banned"
	if kind == config.NotifyUnban {
		verb = "unbanned"
	}
	b.WriteString(verb + " ")
	if g.count == 1 {
		it := &g.items[0]
		b.WriteString(it.IP + " in " + it.Jail)
		if kind == config.NotifyBan {
			b.WriteString(" for " + config.FormatDuration(it.Until.Sub(it.Since).Round(time.Second)))
			switch {
			case it.Strikes > 0 && it.Reason != "":
				fmt.Fprintf(&b, " (%s: %s)", plural(it.Strikes, "strike"), defang(it.Reason))
			case it.Reason != "":
				b.WriteString(" (" + defang(it.Reason) + ")")
			}
		} else if it.By != "" {
			b.WriteString(" by " + defang(it.By))
		}
		p.Text = b.String()
		return p
	}
	b.WriteString(thousands(g.count) + " addresses")
	jails := make([]string, 0, len(g.jails))
	for j := range g.jails {
		jails = append(jails, j)
	}
	sort.Slice(jails, func(a, c int) bool {
		if g.jails[jails[a]] != g.jails[jails[c]] {
			return g.jails[jails[a]] > g.jails[jails[c]]
		}
		return jails[a] < jails[c]
	})
	by := ""
	if kind == config.NotifyUnban && !g.mixed && g.by != "" {
		by = " by " + defang(g.by)
	}
	if len(jails) == 1 {
		b.WriteString(" in " + jails[0] + by)
	} else {
		b.WriteString(by + ":")
		for i, j := range jails {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(" " + thousands(g.jails[j]) + " in " + j)
		}
	}
	b.WriteString(" (e.g. ")
	for i := range min(3, len(g.items)) {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(g.items[i].IP)
	}
	b.WriteString(")")
	p.Text = b.String()
	return p
}

// digestPayload writes a digest period's counts as a message; active is
// nil when unknown.
func (n *Notifier) digestPayload(c *counts, active map[string]int, t time.Time) *Payload {
	d := &Digest{Since: c.since.UTC(), Until: t.UTC(), Bans: c.bans, Unbans: c.unbans, Expired: c.expired,
		Active: active, TopNetworks: []NetworkCount{}}
	if active != nil {
		total := 0
		for _, v := range active {
			total += v
		}
		d.ActiveTotal = &total
	}
	nets := make([]netip.Prefix, 0, len(c.networks))
	for p, v := range c.networks {
		if v >= 2 {
			nets = append(nets, p)
		}
	}
	sort.Slice(nets, func(a, b int) bool {
		if c.networks[nets[a]] != c.networks[nets[b]] {
			return c.networks[nets[a]] > c.networks[nets[b]]
		}
		return nets[a].String() < nets[b].String()
	})
	for _, p := range nets[:min(5, len(nets))] {
		d.TopNetworks = append(d.TopNetworks, NetworkCount{Network: p.String(), Bans: c.networks[p]})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "banwatch %s: digest since %s: %s", n.host, c.since.Format("2006-01-02 15:04 MST"), plural(sum(c.bans), "ban"))
	if len(c.bans) > 0 {
		b.WriteString(" (" + perJail(c.bans) + ")")
	}
	b.WriteString(", " + plural(sum(c.unbans), "unban") + ", " + thousands(c.expired) + " expired; ")
	if d.ActiveTotal != nil {
		b.WriteString(thousands(*d.ActiveTotal) + " active")
	} else {
		b.WriteString("active unknown")
	}
	if len(d.TopNetworks) > 0 {
		b.WriteString(". Most banned networks: ")
		for i, nc := range d.TopNetworks {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(nc.Network + " (" + thousands(nc.Bans) + ")")
		}
	}
	return &Payload{Text: b.String(), Event: config.NotifyDigest, Host: n.host, Time: t.UTC(), Digest: d}
}

func sum(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

// perJail writes counts per jail, most first: "postfix 1,200, sshd 34".
func perJail(m map[string]int) string {
	jails := make([]string, 0, len(m))
	for j := range m {
		jails = append(jails, j)
	}
	sort.Slice(jails, func(a, b int) bool {
		if m[jails[a]] != m[jails[b]] {
			return m[jails[a]] > m[jails[b]]
		}
		return jails[a] < jails[b]
	})
	parts := make([]string, len(jails))
	for i, j := range jails {
		parts[i] = j + " " + thousands(m[j])
	}
	return strings.Join(parts, ", ")
}

// plural writes "1 strike", "5 strikes", "1,234 bans".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return thousands(n) + " " + word + "s"
}

// thousands writes n with commas: 1234567 as "1,234,567".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// defang makes text that may come from a client (a HELO or user name in a
// ban's reason) harmless in a chat message: control characters become
// blanks; the characters of Slack's links and escapes (< > &), Markdown
// links and code ([ ] `) become "?"; an "@" that starts a word (a
// mention: @channel, @room, @all) becomes "(at)"; and it is cut at 200
// characters. The JSON fields keep the text as it was.
func defang(s string) string {
	var b strings.Builder
	prev := ' '
	n := 0
	for _, r := range s {
		if n == 200 {
			b.WriteString("…")
			break
		}
		n++
		switch {
		case r == utf8.RuneError || unicode.IsControl(r):
			b.WriteByte(' ')
		case strings.ContainsRune("<>&[]`", r):
			b.WriteByte('?')
		case r == '@' && !(unicode.IsLetter(prev) || unicode.IsDigit(prev) || strings.ContainsRune("._-+", prev)):
			b.WriteString("(at)")
		default:
			b.WriteRune(r)
		}
		prev = r
	}
	return b.String()
}
