//go:build linux

package nft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
	"golang.org/x/sys/unix"
)

// The errors a kernel gives when nftables cannot be used get a hint that
// names what is missing, and wrap firewall.ErrUnavailable; the errno stays
// visible to errors.Is.
func TestExplain(t *testing.T) {
	recv := func(errno error) error { return fmt.Errorf("setup: probe: netlink receive: %w", errno) }
	for _, tc := range []struct {
		name        string
		err         error
		hint        string // in the message; "" for none
		unavailable bool
	}{
		{"no capability", recv(unix.EPERM), "needs the CAP_NET_ADMIN capability", true},
		{"no capability, joined", errors.Join(recv(unix.EPERM), recv(unix.EPERM)), "CAP_NET_ADMIN", true},
		{"no nfnetlink", fmt.Errorf("netlink: socket: %w", unix.EPROTONOSUPPORT), "the kernel has no nfnetlink", true},
		{"no nf_tables", errors.Join(recv(unix.EOPNOTSUPP), recv(os.ErrDeadlineExceeded)), "the kernel has no nf_tables", true},
		{"no answer", recv(os.ErrDeadlineExceeded), "did not answer within", false},
		{"other", recv(unix.ENOENT), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := explain(tc.err)
			if !errors.Is(got, tc.err) {
				t.Errorf("%v does not wrap %v", got, tc.err)
			}
			if errors.Is(got, firewall.ErrUnavailable) != tc.unavailable {
				t.Errorf("%v: errors.Is(ErrUnavailable) = %v", got, !tc.unavailable)
			}
			if tc.hint == "" {
				if got != tc.err {
					t.Errorf("%v changed to %v", tc.err, got)
				}
				return
			}
			if !strings.HasPrefix(got.Error(), tc.err.Error()) || !strings.Contains(got.Error(), tc.hint) {
				t.Errorf("got %q, want %q and then %q", got, tc.err, tc.hint)
			}
			if again := explain(got); again.Error() != got.Error() {
				t.Errorf("explained twice: %v", again)
			}
		})
	}
}

// A kernel that sends fewer answers than google/nftables waits for: a
// kernel without nf_tables answers a whole batch with one error, and
// google/nftables then waits for an acknowledgement of each message. Here
// a socket filter drops every answer, so that the wait is real. Setup must
// fail once answerTimeout is over, not hang, and work again on a fresh
// socket once the kernel answers.
func TestUnansweredNetlinkFails(t *testing.T) {
	ns := newNetNS(t)
	old := answerTimeout
	answerTimeout = 500 * time.Millisecond
	t.Cleanup(func() { answerTimeout = old })
	b := newBackend(t, ns)
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	if err := attachFilter(b.nl, drop); err != nil {
		t.Fatal(err)
	}
	jails := []firewall.Jail{{Name: "postfix", Ports: []uint16{25}}}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- b.Setup(context.Background(), jails) }()
	select {
	case err := <-done:
		t.Logf("Setup failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "did not answer within 500ms") {
			t.Fatalf("Setup without answers: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Setup still waits for the kernel's answers after 20s")
	}
	if err := b.Setup(testCtx(t), jails); err != nil {
		t.Fatalf("Setup after the failure: %v", err)
	}
	if sets := ns.setNames(t, DefaultTable); len(sets) != int(numKinds) {
		t.Errorf("sets after the second Setup: %v", sets)
	}
}
