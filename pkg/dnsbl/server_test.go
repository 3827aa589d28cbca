package dnsbl

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testServer is a DNS server on 127.0.0.1 (random UDP port) answering A
// queries from a map: names in it get its addresses, names with an rcode get
// that rcode, other names NXDOMAIN. It records the names it is asked and can
// delay or drop its answers.
type testServer struct {
	addr string
	stop chan struct{}

	mu      sync.Mutex
	answers map[string][]string // lower-case fully qualified name → A records
	rcodes  map[string]int      // lower-case fully qualified name → rcode
	seen    []string
	delay   time.Duration
	drop    bool
}

func startServer(t testing.TB) *testServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{
		addr:    pc.LocalAddr().String(),
		stop:    make(chan struct{}),
		answers: map[string][]string{},
		rcodes:  map[string]int{},
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() {
		close(s.stop)
		srv.Shutdown()
	})
	return s
}

// set makes name (without the final dot) answer addrs; no addrs: NOERROR
// without answers (NODATA).
func (s *testServer) set(name string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[dns.Fqdn(strings.ToLower(name))] = addrs
}

// setRcode makes name answer rcode.
func (s *testServer) setRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcodes[dns.Fqdn(strings.ToLower(name))] = rcode
}

func (s *testServer) setDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

func (s *testServer) setDrop(drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop = drop
}

// queries returns the names asked so far, in order.
func (s *testServer) queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func (s *testServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *testServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	s.seen = append(s.seen, q.Name)
	addrs, ok := s.answers[name]
	rcode, hasRcode := s.rcodes[name]
	delay, drop := s.delay, s.drop
	s.mu.Unlock()
	if drop {
		return
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-s.stop:
			return
		}
	}
	m := new(dns.Msg)
	m.SetReply(req)
	switch {
	case hasRcode:
		m.Rcode = rcode
	case !ok:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA:
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.ParseIP(a).To4(),
			})
		}
	}
	w.WriteMsg(m)
}
