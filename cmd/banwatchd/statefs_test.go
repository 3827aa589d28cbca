package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/daemon"
)

// TestStateFilesystemFull runs the daemon with its state directory on a
// small tmpfs, fills the tmpfs, and floods it with bans: every ban reaches
// the kernel although the store cannot take it, the store's failure is
// logged once (not once a commit), and when space returns the store
// catches up with every ban, evidence and all.
func TestStateFilesystemFull(t *testing.T) {
	needRoot(t)
	e := newEnv(t, newNetns(t), "")
	mount(t, e.state, "-t", "tmpfs", "-o", "size=16m", "tmpfs")
	db := filepath.Join(e.state, daemon.DBFile)
	d := e.start("--log-level", "info")
	e.appendLines(failures("192.0.2.1", 5)...)
	waitStored(t, db, []string{"192.0.2.1"}, 10*time.Second)

	// Fill what is left of the tmpfs.
	filler := filepath.Join(e.state, "filler")
	out, _ := exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").CombinedOutput()
	if !strings.Contains(string(out), "No space left") {
		t.Fatalf("dd did not fill the tmpfs: %s", out)
	}

	// A flood of bans, in several writes, while the disk is full.
	addrs := floodBans(e, 12, 250)
	waitKernel(t, e, addrs, 20*time.Second)
	waitDaemonLog(t, d, "committing failed", 10*time.Second)
	if n := len(activeBans(t, db)); n >= len(addrs) {
		t.Fatalf("the store holds %d bans although its disk is full: the test proves nothing", n)
	}

	// Space again: the next lines make the daemon commit what it holds.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	e.appendLines(failures("192.0.2.2", 5)...)
	waitStored(t, db, append(addrs, "192.0.2.1", "192.0.2.2"), 30*time.Second)
	waitDaemonLog(t, d, `msg="working again" component=store`, 10*time.Second)
	checkErrorLogged(t, d.log())
	d.stop(t)
	t.Logf("RELIABILITY full: %d bans in 12 writes with the state filesystem full all reached the kernel; %s; all stored once space returned",
		len(addrs), storeFailures(d.log()))
}

// storeFailures tells how many commits failed and how often it was logged.
func storeFailures(log string) string {
	n := "?"
	if m := regexp.MustCompile(`msg="working again" component=store errors=(\d+)`).FindStringSubmatch(log); m != nil {
		n = m[1]
	}
	return fmt.Sprintf("%s failed commits, %d error lines", n, strings.Count(log, "committing failed"))
}

// TestStateFilesystemReadOnly runs the daemon with its state directory on
// ext4 (a loop device), which the kernel turns read-only under it, as on
// an I/O error (errors=remount-ro; ext4's trigger_fs_error): every ban
// still reaches the kernel, the failure is logged once, and SIGTERM stops
// the daemon cleanly. After the admin's repair (e2fsck) the daemon starts
// again and reads again the lines it could not store: every ban is in the
// kernel and in the store.
//
// The filesystem is mounted in a mount namespace of the daemon's own, so
// that no other process (other tests run at the same time) holds it after
// the daemon is gone, and the repair sees it unmounted.
func TestStateFilesystemReadOnly(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"mkfs.ext4", "e2fsck", "unshare", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian: e2fsprogs, util-linux)", tool)
		}
	}
	e := newEnv(t, newNetns(t), "")
	img := filepath.Join(t.TempDir(), "state.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	sh(t, "mkfs.ext4", "-q", "-F", img)
	if err := os.MkdirAll(e.state, 0o700); err != nil {
		t.Fatal(err)
	}
	e.wrap = []string{"unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount -o loop,errors=remount-ro "$STATE_IMG" "$STATE_DIR" && exec "$0" "$@"`}
	t.Setenv("STATE_IMG", img)
	t.Setenv("STATE_DIR", e.state)
	d := e.start("--log-level", "info")
	// The state directory as the daemon sees it. (SQLite resolves the
	// /proc/PID/root link, so the store is read through banctl.)
	inside := func(d *daemonProc, name string) string {
		return fmt.Sprintf("/proc/%d/root%s", d.cmd.Process.Pid, filepath.Join(e.state, name))
	}
	if _, err := os.Stat(inside(d, "lost+found")); err != nil {
		t.Skipf("the daemon's state directory is not the ext4 image (mounting in a namespace not allowed?): %v\n%s", err, d.log())
	}
	e.appendLines(failures("192.0.2.1", 5)...)
	waitListed(t, e, []string{"192.0.2.1"}, 10*time.Second)

	dev, err := exec.Command("losetup", "-n", "-O", "NAME", "-j", img).Output()
	if err != nil || len(strings.Fields(string(dev))) != 1 {
		t.Fatalf("the image's loop device: %q %v", dev, err)
	}
	trigger := filepath.Join("/sys/fs/ext4", filepath.Base(strings.TrimSpace(string(dev))), "trigger_fs_error")
	if _, err := os.Stat(trigger); err != nil {
		t.Skipf("needs ext4's %s to turn the filesystem read-only", trigger)
	}
	if err := os.WriteFile(trigger, []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inside(d, "probe"), nil, 0o600); err == nil {
		t.Fatal("the filesystem is still writable after trigger_fs_error")
	}
	addrs := floodBans(e, 5, 200)
	waitKernel(t, e, addrs, 20*time.Second)
	waitDaemonLog(t, d, "committing failed", 10*time.Second)
	checkErrorLogged(t, d.log())
	d.stop(t)

	// The admin's repair, once the filesystem is gone with the daemon's
	// namespace (its loop device detached).
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("losetup", "-n", "-O", "NAME", "-j", img).Output()
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the image is still on %s 10 s after the daemon stopped", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := exec.Command("e2fsck", "-f", "-y", img).CombinedOutput(); err != nil {
		// 1: errors corrected; anything above is a failed repair.
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			t.Fatalf("e2fsck: %v\n%s", err, out)
		}
	}
	d = e.start("--log-level", "info")
	waitListed(t, e, append(addrs, "192.0.2.1"), 30*time.Second)
	waitKernel(t, e, append(addrs, "192.0.2.1"), 10*time.Second)
	d.stop(t)
	t.Logf("RELIABILITY read-only: %d bans in 5 writes with the state filesystem read-only all reached the kernel, the failure logged once; after e2fsck and a restart all %d are stored and in the kernel",
		len(addrs), len(addrs))
}

// floodBans appends five SASL failures of each of perWrite new addresses
// (10.W.I.1, each in a /24 of its own), in writes writes 100 ms apart, and
// returns the addresses.
func floodBans(e *env, writes, perWrite int) []string {
	var addrs []string
	for w := range writes {
		var lines []string
		for i := range perWrite {
			a := fmt.Sprintf("10.%d.%d.1", w, i)
			addrs = append(addrs, a)
			lines = append(lines, failures(a, 5)...)
		}
		e.appendLines(lines...)
		time.Sleep(100 * time.Millisecond)
	}
	return addrs
}

// mount mounts with the arguments given on dir (made if missing), or
// skips the test where mounting is not allowed; it is unmounted at the
// end of the test.
func mount(t *testing.T, dir string, args ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", append(args, dir)...).CombinedOutput(); err != nil {
		t.Skipf("cannot mount (%v): %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// waitAll waits until have, asked every 100 ms, holds each of addrs; where
// names what is asked, for the failure.
func waitAll(t *testing.T, where string, addrs []string, within time.Duration, have func() map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := have()
		missing := 0
		for _, a := range addrs {
			if !got[a] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bans not in %s within %v", missing, len(addrs), where, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStored waits until the database at path holds an active ban of each
// of addrs.
func waitStored(t *testing.T, path string, addrs []string, within time.Duration) {
	t.Helper()
	waitAll(t, "the store", addrs, within, func() map[string]bool {
		have := map[string]bool{}
		for a := range activeBans(t, path) {
			have[a] = true
		}
		return have
	})
}

// waitListed waits until banctl list (the store's active bans) shows each
// of addrs.
func waitListed(t *testing.T, e *env, addrs []string, within time.Duration) {
	t.Helper()
	waitAll(t, "banctl list (the store)", addrs, within, func() map[string]bool {
		code, out, errs := e.banctl("list", "--json")
		if code != 0 {
			t.Fatalf("banctl list: %d %s", code, errs)
		}
		listed := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var b struct {
				IP string `json:"ip"`
			}
			if line != "" {
				if err := json.Unmarshal([]byte(line), &b); err != nil {
					t.Fatalf("banctl list line %q: %v", line, err)
				}
				listed[b.IP] = true
			}
		}
		return listed
	})
}

// waitKernel waits until the postfix jail's IPv4 set holds each of addrs.
func waitKernel(t *testing.T, e *env, addrs []string, within time.Duration) {
	t.Helper()
	waitAll(t, "the kernel", addrs, within, func() map[string]bool {
		have := map[string]bool{}
		for a := range e.setElements(v4set) {
			have[a] = true
		}
		return have
	})
}

// waitDaemonLog waits until the daemon's log holds s.
func waitDaemonLog(t *testing.T, d *daemonProc, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(d.log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the daemon's log within %v:\n%s", s, within, tail(d.log(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkErrorLogged checks that the store's failure was logged once (the
// test runs within a minute, the interval), although several commits
// failed: the "working again" line counts them, or, while the store is
// still failing, the number of commit failures logged is one.
func checkErrorLogged(t *testing.T, log string) {
	t.Helper()
	if n := strings.Count(log, "committing failed"); n != 1 {
		t.Errorf("the store's failure logged %d times, want once a minute:\n%s", n, tail(log, 20))
	}
	if m := regexp.MustCompile(`msg="working again" component=store errors=(\d+)`).FindStringSubmatch(log); m != nil {
		if n, _ := strconv.Atoi(m[1]); n < 2 {
			t.Errorf("the store failed %d times: the test proves nothing about logging once", n)
		} else {
			t.Logf("%d failed commits, one error logged", n)
		}
	}
}
