package control

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "banwatch.sock")
	l, err := Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v, %v; want a socket of mode 0600", st.Mode(), err)
	}
	if _, err := Listen(path, -1); err == nil || !strings.Contains(err.Error(), "another banwatchd answers there") {
		t.Errorf("a second daemon on a live socket: %v", err)
	}
	l.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the socket stays after close: %v", err)
	}

	// A stale socket of a killed daemon is replaced.
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	l, err = Listen(path, -1)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l.Close()

	// Something that is not a socket is never removed.
	plain := filepath.Join(t.TempDir(), "file")
	os.WriteFile(plain, []byte("x"), 0o644)
	if _, err := Listen(plain, -1); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("over a plain file: %v", err)
	}
}
