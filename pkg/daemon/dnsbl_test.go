package daemon

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/config"
)

// dnsblEnv is a daemon whose postfix jail asks bl.test at server.
func dnsblEnv(t *testing.T, server string) *testEnv {
	t.Helper()
	e := newEnv(t)
	testutil.PostfixJail(t, e.dir, "firewall = \"log\"\n", fmt.Sprintf(
		"dnsbl = [\"bl.test=127.0.0.2-127.0.0.7\"]\ndnsbl_weight = 4\ndns_server = %q", server))
	cfg, err := config.Load(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	return e
}

// A listed address is banned at its first failure; unlisted ones, and
// ones the list refused to answer about, need five.
func TestDNSBLListedBannedSooner(t *testing.T) {
	dns := testutil.NewDNSServer(t, map[string]string{
		"7.113.0.203.bl.test": "127.0.0.4",       // listed
		"8.113.0.203.bl.test": "127.255.255.254", // refused: never listed
		"9.113.0.203.bl.test": "127.0.0.10",      // a code outside the range given
	})
	e := dnsblEnv(t, dns.Addr)
	stop := e.start()
	defer stop()
	e.appendLines(failures("203.0.113.7", 1)...)
	b := e.waitBanned("203.0.113.7")
	if b.Strikes != 5 || !strings.Contains(b.Reason, "rbl_reject") {
		t.Errorf("ban %+v", b)
	}
	h := e.history("203.0.113.7")
	if len(h) != 1 || !strings.Contains(strings.Join(h[0].Evidence, "\n"), "dnsbl: 203.0.113.7 listed by bl.test=127.0.0.4") {
		t.Errorf("evidence: %+v", h)
	}
	e.appendLines(append(append(failures("203.0.113.8", 2), failures("203.0.113.9", 2)...), failures("203.0.113.10", 2)...)...)
	time.Sleep(500 * time.Millisecond)
	act := e.active()
	for _, a := range []string{"203.0.113.8", "203.0.113.9", "203.0.113.10"} {
		if _, ok := act[a]; ok {
			t.Errorf("%s banned after two failures", a)
		}
	}
	if dns.Queries("8.113.0.203.bl.test") != 1 {
		t.Errorf("the refused address was asked %d times, want once", dns.Queries("8.113.0.203.bl.test"))
	}
	st, err := e.client().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range st.Jails {
		if j.Name == "postfix" && (j.DNSBL == nil || j.DNSBL.Listed != 1 || j.DNSBL.Refused != 1) {
			t.Errorf("status dnsbl: %+v", j.DNSBL)
		}
	}
}

// A DNS server that never answers slows nothing: the daemon bans on
// strikes alone, as without lists.
func TestDNSBLDeadServer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	e := dnsblEnv(t, pc.LocalAddr().String())
	stop := e.start()
	defer stop()
	start := time.Now()
	e.appendLines(failures("203.0.113.20", 5)...)
	e.waitBanned("203.0.113.20")
	t.Logf("banned %v after the lines were written, with a dead DNS server", time.Since(start).Round(time.Millisecond))
}
