package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/dnsbl"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/jail"
)

// maxLooked bounds the addresses a jail remembers having asked the DNSBLs
// about; beyond it the memory starts afresh (the resolver's cache still
// answers the recent ones).
const maxLooked = 200_000

// dnsblHit is a DNSBL listing of an address, for the processor.
type dnsblHit struct {
	jr   *jailRun
	addr netip.Addr
	t    time.Time // the time of the event that asked
	res  dnsbl.Result
}

// newResolver makes the jail's DNSBL resolver, or nil when it has none.
func newResolver(jc *config.Jail, g *generation) (*dnsbl.Resolver, error) {
	if len(jc.DNSBL) == 0 || jc.DNSBLWeight <= 0 {
		return nil, nil
	}
	var lists []dnsbl.List
	for _, s := range jc.DNSBL {
		l, err := dnsbl.ParseList(s)
		if err != nil {
			return nil, fmt.Errorf("daemon: jail %q: %w", jc.Name, err)
		}
		lists = append(lists, l)
	}
	r, err := dnsbl.New(dnsbl.Options{Lists: lists, Server: jc.DNSServer}, g.log.With("jail", jc.Name, "component", "dnsbl"))
	if err != nil {
		return nil, fmt.Errorf("daemon: jail %q: %w", jc.Name, err)
	}
	return r, nil
}

// askDNSBL asks the jail's block lists about a once (processor only); a
// listing comes back to the processor on g.dnsblHits.
func (g *generation) askDNSBL(ctx context.Context, jr *jailRun, a netip.Addr, t time.Time) {
	if jr.resolver == nil {
		return
	}
	if _, seen := jr.looked[a]; seen {
		return
	}
	if len(jr.looked) >= maxLooked {
		clear(jr.looked)
	}
	jr.looked[a] = struct{}{}
	jr.resolver.Lookup(a, func(res dnsbl.Result) {
		if len(res.Listed) == 0 {
			return
		}
		select {
		case g.dnsblHits <- dnsblHit{jr: jr, addr: a, t: t, res: res}:
		case <-ctx.Done():
		}
	})
}

// applyDNSBL adds a listed address's strikes (processor only).
func (g *generation) applyDNSBL(h dnsblHit, b *batch) {
	jr := h.jr
	var out jail.Outcome
	g.decisions, out = jr.jail.AddStrikes(h.addr, h.t, event.RBLReject, jr.cfg.DNSBLWeight, g.decisions[:0])
	if out != jail.Counted && out != jail.Banned {
		return
	}
	var lists []string
	for _, a := range h.res.Listed {
		lists = append(lists, a.List+"="+a.Code.String())
	}
	line := fmt.Sprintf("dnsbl: %s listed by %s", h.addr, strings.Join(lists, ", "))
	jr.strikes.Add(1)
	b.strikes = append(b.strikes, ban.Strike{Jail: jr.cfg.Name, Addr: h.addr, Time: h.t, Kind: event.RBLReject,
		Weight: jr.cfg.DNSBLWeight, Line: line})
	g.addBans(jr, b)
}

// addBans turns the processor's decisions into bans of the batch.
func (g *generation) addBans(jr *jailRun, b *batch) {
	if len(g.decisions) == 0 {
		return
	}
	t := time.Now()
	for _, d := range g.decisions {
		b.decided = append(b.decided, t)
		jr.bans.Add(1)
		b.bans = append(b.bans, &ban.Ban{
			Prefix: d.Prefix, Jail: jr.cfg.Name, Origin: ban.OriginJail,
			Start: d.Start, End: d.End, Strikes: d.Strikes, Reason: d.Reason,
			FirstEvent: d.First, LastEvent: d.Start,
		})
	}
}
