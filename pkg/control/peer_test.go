package control

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// peerEnv names the socket TestPeerHelper talks to when TestPeers runs it.
const peerEnv = "BANWATCH_CONTROL_PEER_SOCKET"

// TestPeerHelper is TestPeers' client, run in a process of another user.
// In a normal run it does nothing.
func TestPeerHelper(t *testing.T) {
	path := os.Getenv(peerEnv)
	if path == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := NewClient(path).Ban(ctx, BanRequest{IP: "192.0.2.1"}); err != nil {
		os.Stdout.WriteString("peer: " + err.Error() + "\n")
		return
	}
	os.Stdout.WriteString("peer: ok\n")
}

// TestPeers connects to the control socket as nobody (uid 65534). The
// server trusts the socket's mode to keep others out: 0600 and root's
// alone, or 0660 for the socket_group. Whoever the kernel lets through is
// named to the handler as SO_PEERCRED tells, and a refused peer's request
// never reaches the handler.
func TestPeers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: connects as uid 65534 to a socket of root's")
	}
	// The test binary, where nobody may run it.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := tempSocketDir(t)
	bin := filepath.Join(dir, "control.test")
	copyFile(t, exe, bin)

	const nobody, group = 65534, 4242 // group: one nobody is not in
	tests := []struct {
		name     string
		sockGID  int // the socket's group, -1 for none (mode 0600)
		cred     *syscall.Credential
		want     string // the peer's outcome
		calls    []string
		wantPeer Peer
	}{
		{"root", -1, nil, "peer: ok", []string{"Ban"}, Peer{UID: 0, GID: 0}},
		{"nobody, mode 0600", -1, &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}, "permission denied", nil, Peer{}},
		{"nobody, not in the group", group, &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}, "permission denied", nil, Peer{}},
		{"nobody in the group", group, &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{group}}, "peer: ok", []string{"Ban"}, Peer{UID: nobody, GID: nobody}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHandler{}
			path := startServer(t, NewServer(h, slog.New(slog.DiscardHandler)), tt.sockGID)
			cmd := exec.Command(bin, "-test.run=^TestPeerHelper$")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), peerEnv+"="+path)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: tt.cred}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the peer: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("the peer said %q, want %q", out, tt.want)
			}
			if calls := h.called(); !slices.Equal(calls, tt.calls) {
				t.Errorf("handler calls %v, want %v", calls, tt.calls)
			}
			if tt.calls != nil {
				if len(h.peers) != 1 || h.peers[0].UID != tt.wantPeer.UID || h.peers[0].GID != tt.wantPeer.GID || h.peers[0].PID <= 0 {
					t.Errorf("the handler was told the peer is %+v, want uid %d gid %d and a pid", h.peers, tt.wantPeer.UID, tt.wantPeer.GID)
				}
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
