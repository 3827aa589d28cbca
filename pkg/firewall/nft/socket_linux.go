//go:build linux

package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// socketBuffer is the send and receive buffer asked for on netlink sockets.
// The send buffer bounds the size of one batch (one sendmsg); the receive
// buffer of a Watch socket absorbs bursts of other programs' changes.
const socketBuffer = 8 << 20

// tuneSocket enlarges the buffers of the backend's netlink socket and asks
// for short acknowledgements with extended error messages. Failures are not
// fatal: the batch size adapts to the send buffer actually granted.
func tuneSocket(c *netlink.Conn) error {
	_ = c.SetOption(netlink.CapAcknowledge, true)
	_ = c.SetOption(netlink.ExtendedAcknowledge, true)
	return withFD(c, func(fd int) error {
		setBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, socketBuffer)
		setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, socketBuffer)
		return nil
	})
}

// setBuffer sets a socket buffer size, beyond net.core.[rw]mem_max if
// privileged (force), else up to it.
func setBuffer(fd, force, plain, size int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	}
}

// withFD runs fn on the socket's file descriptor.
func withFD(c *netlink.Conn, fn func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	return ferr
}

// portID returns the netlink port ID the kernel bound the socket to. The
// kernel stamps it on every notification caused by a batch sent on it.
func portID(c *netlink.Conn) (uint32, error) {
	var pid uint32
	err := withFD(c, func(fd int) error {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			return fmt.Errorf("getsockname: %w", err)
		}
		nl, ok := sa.(*unix.SockaddrNetlink)
		if !ok {
			return fmt.Errorf("getsockname: not a netlink address: %T", sa)
		}
		pid = nl.Pid
		return nil
	})
	return pid, err
}

// sendBuffer returns the socket's send buffer size in bytes as the kernel
// accounts it.
func sendBuffer(c *netlink.Conn) int {
	n := 0
	_ = withFD(c, func(fd int) error {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
		n = v
		return err
	})
	return n
}

// dropPIDFilter is a classic BPF program that drops netlink messages whose
// header carries one of the given port IDs (our own changes) and accepts
// all others. BPF loads are big-endian; nlmsg_pid is in host order.
func dropPIDFilter(pids ...uint32) []unix.SockFilter {
	var prog []unix.SockFilter
	prog = append(prog, unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 12})
	for i, pid := range pids {
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], pid)
		jumpToDrop := uint8(len(pids) - i) // over the remaining tests and "accept"
		prog = append(prog, unix.SockFilter{
			Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K,
			Jt:   jumpToDrop,
			K:    binary.BigEndian.Uint32(b[:]),
		})
	}
	return append(prog,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // accept
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // drop
	)
}

// attachFilter installs (or replaces) the socket filter.
func attachFilter(c *netlink.Conn, prog []unix.SockFilter) error {
	return withFD(c, func(fd int) error {
		fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
			return fmt.Errorf("attach filter: %w", err)
		}
		return nil
	})
}
