package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// querier asks DNS for the A records of a fully qualified name. A name that
// does not exist (NXDOMAIN) or has no A records yields no addresses and no
// error; anything else that keeps it from answering is an error.
type querier interface {
	query(ctx context.Context, name string) ([]netip.Addr, error)
}

// queryName returns the DNSBL query name of a in zone: the reversed octets
// of an IPv4 address or the 32 reversed nibbles of an IPv6 address, then the
// zone and a final dot. a must already be unmapped and without an IPv6 zone.
func queryName(a netip.Addr, zone string) string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 64+len(zone)+1)
	if a.Is4() {
		o := a.As4()
		for i := 3; i >= 0; i-- {
			b = strconv.AppendUint(b, uint64(o[i]), 10)
			b = append(b, '.')
		}
	} else {
		x := a.As16()
		for i := 15; i >= 0; i-- {
			b = append(b, hex[x[i]&0xf], '.', hex[x[i]>>4], '.')
		}
	}
	b = append(b, zone...)
	b = append(b, '.')
	return string(b)
}

// systemQuerier uses a net.Resolver, by default the system's
// (/etc/resolv.conf).
type systemQuerier struct{ r *net.Resolver }

func (q systemQuerier) query(ctx context.Context, name string) ([]netip.Addr, error) {
	addrs, err := q.r.LookupNetIP(ctx, "ip4", name)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.As(err, &de) && de.IsTimeout {
			return nil, context.DeadlineExceeded
		}
		return nil, err
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, nil
}

// serverQuerier asks one DNS server directly: over UDP, and again over TCP
// when the UDP answer is truncated.
type serverQuerier struct {
	addr     string // host:port
	udp, tcp *dns.Client
}

func newServerQuerier(addr string, timeout time.Duration) *serverQuerier {
	return &serverQuerier{
		addr: addr,
		udp:  &dns.Client{Net: "udp", Timeout: timeout},
		tcp:  &dns.Client{Net: "tcp", Timeout: timeout},
	}
}

func (q *serverQuerier) query(ctx context.Context, name string) ([]netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.RecursionDesired = true
	r, err := q.exchange(ctx, q.udp, m)
	if err == nil && r.Truncated {
		r, err = q.exchange(ctx, q.tcp, m)
	}
	if err != nil {
		return nil, err
	}
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, name) {
		return nil, fmt.Errorf("the server answered another question")
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, nil
	default:
		return nil, fmt.Errorf("the server answered %s", rcodeName(r.Rcode))
	}
	var addrs []netip.Addr
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			if addr, ok := netip.AddrFromSlice(a.A); ok {
				addrs = append(addrs, addr.Unmap())
			}
		}
	}
	return addrs, nil
}

// exchange sends m and waits for the answer until ctx is done; cancelling
// ctx aborts the wait at once (the client itself only honours deadlines).
func (q *serverQuerier) exchange(ctx context.Context, c *dns.Client, m *dns.Msg) (*dns.Msg, error) {
	co, err := c.DialContext(ctx, q.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	defer co.Close()
	stop := context.AfterFunc(ctx, func() { co.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, m, co)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The socket deadline is ctx's, and may fire just before ctx
		// notices: report it the same way.
		if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, context.DeadlineExceeded
		}
		return nil, err
	}
	return r, nil
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "rcode " + strconv.Itoa(rc)
}

// serverAddr turns Options.Server into host:port: "192.0.2.53",
// "192.0.2.53:5353", "2001:db8::53", "[2001:db8::53]:5353", "ns.example" or
// "ns.example:53".
func serverAddr(s string) (string, error) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return netip.AddrPortFrom(a, 53).String(), nil
		}
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.ContainsAny(s, ":[]") {
			return "", fmt.Errorf("dnsbl: DNS server %q: want \"host\" or \"host:port\"", s)
		}
		host, port = s, "53"
	}
	if host == "" {
		return "", fmt.Errorf("dnsbl: DNS server %q has no host", s)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("dnsbl: DNS server %q: bad port %q", s, port)
	}
	return net.JoinHostPort(host, port), nil
}
