package testutil

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSServer is a DNS server on loopback for tests: it answers A queries
// from a map of names, NXDOMAIN for the rest, and counts queries.
type DNSServer struct {
	Addr string // "127.0.0.1:port"

	mu      sync.Mutex
	answers map[string]string // fully qualified name (lower case) → an IPv4 address
	queries map[string]int
}

// NewDNSServer starts a server answering with answers (name → address,
// names without the final dot) until the test ends.
func NewDNSServer(t testing.TB, answers map[string]string) *DNSServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &DNSServer{Addr: pc.LocalAddr().String(), answers: map[string]string{}, queries: map[string]int{}}
	for n, a := range answers {
		s.answers[dns.Fqdn(strings.ToLower(n))] = a
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return s
}

func (s *DNSServer) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if len(r.Question) == 1 {
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		s.mu.Lock()
		s.queries[name]++
		a, ok := s.answers[name]
		s.mu.Unlock()
		switch {
		case ok && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.ParseIP(a).To4()})
		case !ok:
			m.Rcode = dns.RcodeNameError
		}
	}
	w.WriteMsg(m)
}

// Queries returns how many queries asked for name (without the final dot).
func (s *DNSServer) Queries(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[dns.Fqdn(strings.ToLower(name))]
}
