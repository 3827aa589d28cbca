package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/jail"
)

// jailReplay runs a log's events through a jail, as the daemon would, with
// the log's own timestamps: the bans it makes, and how many of the
// attacker's attempts would have got through.
type jailReplay struct {
	name    string
	j       *jail.Jail
	bans    []jail.Decision
	through int // failure events of addresses not yet banned: they happened
	stopped int // events of addresses already banned: the kernel would have dropped them
	trusted int
	buf     []jail.Decision
}

func newJailReplay(jc *config.Jail, ignore []netip.Prefix) *jailReplay {
	return &jailReplay{name: jc.Name, j: jail.New(jc.JailConfig(), jail.NewIgnore(ignore...))}
}

// observe feeds one event and returns the bans it caused.
func (r *jailReplay) observe(ev *event.Event) []jail.Decision {
	ds, out := r.j.Observe(ev, r.buf[:0])
	r.buf = ds
	switch out {
	case jail.Counted, jail.Banned:
		r.through++
	case jail.AlreadyBanned:
		r.stopped++
	case jail.Trusted:
		r.trusted++
	}
	r.bans = append(r.bans, ds...)
	return ds
}

// appendJSON writes a ban as the daemon's banctl list does, with "type":"ban".
func (r *jailReplay) appendJSON(b []byte, d *jail.Decision) []byte {
	v, _ := json.Marshal(struct {
		Type    string    `json:"type"`
		IP      string    `json:"ip"`
		Prefix  string    `json:"prefix"`
		Jail    string    `json:"jail"`
		Time    time.Time `json:"time"`
		Until   time.Time `json:"until"`
		Strikes int       `json:"strikes"`
		Reason  string    `json:"reason"`
		Nth     int       `json:"nth"`
	}{"ban", ban.IP(d.Prefix), d.Prefix.String(), r.name, d.Start.UTC(), d.End.UTC(), d.Strikes, d.Reason, d.Nth})
	return append(b, v...)
}

// counts sums the bans up: single addresses, prefixes, and by kind of reason.
func (r *jailReplay) counts() (singles, prefixes int, byReason map[string]int) {
	byReason = map[string]int{}
	for _, d := range r.bans {
		if d.Prefix.IsSingleIP() {
			singles++
		} else {
			prefixes++
		}
		kind, _, _ := strings.Cut(d.Reason, " ")
		kind = strings.TrimSuffix(kind, ":")
		if strings.Contains(kind, "_") || strings.Contains(kind, ",") {
			kind = "strikes"
		}
		byReason[kind]++
	}
	return singles, prefixes, byReason
}

func (r *jailReplay) appendSummary(b []byte) []byte {
	singles, prefixes, byReason := r.counts()
	b = fmt.Appendf(b, `,"jail":%q,"bans":%d,"address_bans":%d,"prefix_bans":%d,"attempts_through":%d,"attempts_stopped":%d,"trusted":%d,"bans_by":{`,
		r.name, len(r.bans), singles, prefixes, r.through, r.stopped, r.trusted)
	for i, k := range sortedKeys(byReason) {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(byReason[k]), 10)
	}
	return append(b, '}')
}

func (r *jailReplay) writeSummary(w io.Writer, top int) {
	singles, prefixes, byReason := r.counts()
	fmt.Fprintf(w, "\njail %s: %d bans (%d addresses, %d prefixes)\n", r.name, len(r.bans), singles, prefixes)
	for _, k := range sortedKeys(byReason) {
		fmt.Fprintf(w, "  %-12s %d\n", k, byReason[k])
	}
	fmt.Fprintf(w, "attempts that got through (before their ban): %d; stopped by a ban already in place: %d; trusted clients' failures forgiven: %d\n",
		r.through, r.stopped, r.trusted)
	bans := append([]jail.Decision(nil), r.bans...)
	sort.SliceStable(bans, func(a, b int) bool { return bans[a].Start.Before(bans[b].Start) })
	if len(bans) > top {
		fmt.Fprintf(w, "first %d bans:\n", top)
		bans = bans[:top]
	}
	for _, d := range bans {
		fmt.Fprintf(w, "  %s  %-18s until %s  %s\n", d.Start.Format(time.DateTime), d.Prefix, d.End.Format(time.DateTime), d.Reason)
	}
}
