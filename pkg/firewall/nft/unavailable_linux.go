//go:build linux

package nft

import (
	"errors"
	"os"
	"time"

	"github.com/banwatch/banwatch/pkg/firewall"
	"golang.org/x/sys/unix"
)

// answerTimeout bounds the wait for the kernel's answers to one netlink
// request or batch (a variable for tests). The kernel handles a request
// while it is sent, so its answers are queued by the time they are read;
// the bound only matters when they never come. google/nftables waits for
// one acknowledgement per message of a batch, but a kernel that refuses a
// whole batch (no nf_tables subsystem: EOPNOTSUPP) sends a single one,
// and without a bound the daemon would wait for the rest forever.
var answerTimeout = 30 * time.Second

// unavailableError is an error of the kernel that means nftables cannot be
// used by this process at all, with what to do about it.
type unavailableError struct {
	err  error
	hint string
}

func (e *unavailableError) Error() string   { return e.err.Error() + " (" + e.hint + ")" }
func (e *unavailableError) Unwrap() []error { return []error{e.err, firewall.ErrUnavailable} }

// explain adds to err, when the kernel's answer shows that nftables cannot
// be used here, what an administrator needs to know: the capability that
// is missing, or the kernel feature. Such errors wrap
// firewall.ErrUnavailable. A kernel that did not answer in time is said
// so. Other errors are returned as they are.
func explain(err error) error {
	var u *unavailableError
	var t *timeoutError
	if err == nil || errors.As(err, &u) || errors.As(err, &t) {
		return err
	}
	const orLog = `; firewall = "log" in banwatch.toml runs without nftables and only logs bans`
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return &unavailableError{err, "nftables needs the CAP_NET_ADMIN capability in the daemon's network namespace: run banwatchd as root or grant it CAP_NET_ADMIN" + orLog}
	case errors.Is(err, unix.EPROTONOSUPPORT):
		return &unavailableError{err, "the kernel has no nfnetlink, so no nftables: load the nfnetlink and nf_tables modules" + orLog}
	case errors.Is(err, unix.EOPNOTSUPP):
		return &unavailableError{err, "the kernel has no nf_tables: load the nf_tables module" + orLog}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &timeoutError{err}
	}
	return err
}

// timeoutError is an error after the kernel did not answer in time.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string {
	return e.err.Error() + " (the kernel's nftables did not answer within " + answerTimeout.String() + ")"
}
func (e *timeoutError) Unwrap() error { return e.err }

// expectAnswer gives the kernel answerTimeout from now to answer what is
// sent next on the backend's socket.
func (b *Backend) expectAnswer() {
	if b.nl != nil {
		_ = b.nl.SetReadDeadline(time.Now().Add(answerTimeout))
	}
}
