package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// shippedJails are the jails the binaries carry; a bench configuration
// turns off those it does not set, so that no log of this machine is read.
var shippedJails = []string{"postfix", "exim", "dovecot", "icewarp", "sshd"}

// env is one sub-benchmark's world: a network namespace, a configuration
// directory with a state directory and a socket, a watched log, and at most
// one running banwatchd. close undoes all of it.
type env struct {
	name    string // the sub-benchmark
	ns      string // network namespace
	dir     string // configuration directory
	state   string // state directory (the SQLite database)
	sock    string // control socket
	logPath string // the log the bench jails watch

	mon    *monitor // nftables notifications in ns, once watch ran
	d      *daemon
	closer sync.Once
	unreg  func()
}

// newEnv makes the namespace and the directories; jails is the TOML of
// bench/jails/bench.toml, in which %LOG% stands for the watched log. The
// shipped jails jails does not name are turned off.
func newEnv(ctx context.Context, name, jails string) (*env, error) {
	seq := nextSeq()
	e := &env{name: name, ns: fmt.Sprintf("bwbench%d-%d", os.Getpid(), seq)}
	e.dir = filepath.Join(workDir, fmt.Sprintf("%s-%d", name, seq))
	e.state = filepath.Join(e.dir, "state")
	e.sock = filepath.Join(e.dir, "banwatch.sock")
	e.logPath = filepath.Join(e.dir, "mail.log")
	e.unreg = atExit(e.close)
	if err := os.MkdirAll(filepath.Join(e.dir, "jails"), 0o755); err != nil {
		e.close()
		return nil, err
	}
	if err := os.MkdirAll(e.state, 0o700); err != nil {
		e.close()
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", e.ns).CombinedOutput(); err != nil {
		e.close()
		return nil, fmt.Errorf("ip netns add %s: %v: %s", e.ns, err, bytes.TrimSpace(out))
	}
	if out, err := exec.CommandContext(ctx, "ip", "-n", e.ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		e.close()
		return nil, fmt.Errorf("ip link set lo up: %v: %s", err, bytes.TrimSpace(out))
	}
	toml := fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\n", e.state, e.sock)
	if err := os.WriteFile(filepath.Join(e.dir, "banwatch.toml"), []byte(toml), 0o644); err != nil {
		e.close()
		return nil, err
	}
	jails = strings.ReplaceAll(jails, "%LOG%", strconv.Quote(e.logPath))
	jails = strings.ReplaceAll(jails, "%DIR%", e.dir)
	for _, j := range shippedJails {
		if !strings.Contains(jails, "["+j+"]") {
			jails += fmt.Sprintf("\n[%s]\nenabled = false\n", j)
		}
	}
	if err := os.WriteFile(filepath.Join(e.dir, "jails", "bench.toml"), []byte(jails), 0o644); err != nil {
		e.close()
		return nil, err
	}
	if err := os.WriteFile(e.logPath, nil, 0o644); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

var (
	seqMu sync.Mutex
	seqN  int
)

func nextSeq() int {
	seqMu.Lock()
	defer seqMu.Unlock()
	seqN++
	return seqN
}

// close stops the daemon and the monitor, deletes the namespace and the
// directory. It may be called more than once.
func (e *env) close() {
	e.closer.Do(func() {
		if e.d != nil {
			e.d.kill()
		}
		if e.mon != nil {
			e.mon.close()
		}
		exec.Command("ip", "netns", "del", e.ns).Run()
		if !keepFiles {
			os.RemoveAll(e.dir)
		}
		if e.unreg != nil {
			e.unreg()
		}
	})
}

// watch subscribes to the namespace's nftables notifications.
func (e *env) watch() error {
	m, err := openMonitor(e.ns)
	if err != nil {
		return err
	}
	e.mon = m
	return nil
}

// daemon is a running banwatchd.
type daemon struct {
	cmd     *exec.Cmd
	started time.Time // just before the process was started
	errPath string    // its stderr
	done    chan struct{}
}

// start runs banwatchd in the namespace, pinned to CPU 0 if pin, and
// waits up to ready for its "banwatchd running" line (not at all when
// ready is 0).
func (e *env) start(ctx context.Context, pin bool, ready time.Duration) (*daemon, error) {
	args := []string{"netns", "exec", e.ns}
	if pin {
		args = append(args, "taskset", "-c", "0")
	}
	args = append(args, filepath.Join(binDir, "banwatchd"), "--config", e.dir, "--state-dir", e.state, "--socket", e.sock)
	d := &daemon{errPath: filepath.Join(e.dir, fmt.Sprintf("banwatchd-%d.log", nextSeq())), done: make(chan struct{})}
	f, err := os.Create(d.errPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d.cmd = exec.Command("ip", args...)
	d.cmd.Stderr = f
	d.cmd.Stdout = f
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting banwatchd: %w", err)
	}
	e.d = d
	go func() {
		d.cmd.Wait()
		close(d.done)
	}()
	if ready > 0 {
		if err := d.waitLog(ctx, `msg="banwatchd running"`, ready); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// pid is the daemon's process ID: ip netns exec and taskset exec it.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// waitLog waits until the daemon's stderr holds s.
func (d *daemon) waitLog(ctx context.Context, s string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		data, _ := os.ReadFile(d.errPath)
		if bytes.Contains(data, []byte(s)) {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("banwatchd exited (%v) before %q; its stderr ends:\n%s", d.cmd.ProcessState, s, d.tail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timeout: no %q from banwatchd within %v; its stderr ends:\n%s", s, within, d.tail(20))
		}
	}
}

// alive returns an error with the stderr tail if the daemon has exited.
func (d *daemon) alive() error {
	select {
	case <-d.done:
		return fmt.Errorf("banwatchd exited (%v); its stderr ends:\n%s", d.cmd.ProcessState, d.tail(20))
	default:
		return nil
	}
}

// tail returns the last n lines of the daemon's stderr.
func (d *daemon) tail(n int) string {
	data, err := os.ReadFile(d.errPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// logLine returns the first line of the daemon's stderr holding s.
func (d *daemon) logLine(s string) string {
	data, _ := os.ReadFile(d.errPath)
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// kill stops the daemon: SIGTERM, SIGKILL after 5 s.
func (d *daemon) kill() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// status is the part of `banctl status --json` the benchmarks read.
type status struct {
	Jails []jailStatus `json:"jails"`
}

type jailStatus struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	Lines   int64  `json:"lines"`
	Events  int64  `json:"events"`
	Strikes int64  `json:"strikes"`
	Tracked int64  `json:"tracked"`
	Bans    int64  `json:"bans_since_start"`
	Active  int    `json:"active_bans"`
	Logs    []struct {
		Path  string `json:"path"`
		Lines int64  `json:"lines"`
	} `json:"logs"`
}

// status runs `banctl status --json` (on CPU 1 when pinCtl is set).
func (e *env) status(ctx context.Context) (*status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	args := []string{filepath.Join(binDir, "banctl"), "status", "--json", "--socket", e.sock}
	if pinCtl {
		args = append([]string{"taskset", "-c", "1"}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("banctl status: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var st status
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("banctl status --json: %v", err)
	}
	return &st, nil
}

// jail returns the named jail's status.
func (s *status) jail(name string) (jailStatus, error) {
	for _, j := range s.Jails {
		if j.Name == name {
			if !j.Running {
				return j, fmt.Errorf("jail %s is not running", name)
			}
			return j, nil
		}
	}
	return jailStatus{}, fmt.Errorf("no jail %s in banctl status", name)
}

// waitLines polls status every 100 ms until jail has counted n lines, and
// returns its last status.
func (e *env) waitLines(ctx context.Context, jail string, n int64, within time.Duration) (jailStatus, error) {
	deadline := time.Now().Add(within)
	for {
		st, err := e.status(ctx)
		if err != nil {
			if derr := e.d.alive(); derr != nil {
				return jailStatus{}, derr
			}
			return jailStatus{}, err
		}
		j, err := st.jail(jail)
		if err != nil {
			return j, err
		}
		if j.Lines >= n {
			return j, nil
		}
		if time.Now().After(deadline) {
			return j, fmt.Errorf("timeout: jail %s counted %d of %d lines in %v", jail, j.Lines, n, within)
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rss returns a process's VmRSS in bytes.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// cpuTime returns a process's utime+stime.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold blanks and parentheses: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("bad /proc/PID/stat")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad utime/stime in /proc/PID/stat")
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks, nil
}

// statFields returns the fields of a /proc stat file after the command
// name: fields[0] is field 3 (state).
func statFields(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// The command name may hold blanks and parentheses: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil, errors.New("bad " + path)
	}
	return strings.Fields(string(data[i+1:])), nil
}

// niceThreadsCPU returns the CPU time (user and system) of a process's
// threads that run at the given nice value: the daemon's store writer runs
// on a thread of its own at nice 10 (pkg/daemon), so this splits the
// store's SQLite work from the pipeline's. Threads that ended are not
// counted.
func niceThreadsCPU(pid, nice int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, t := range tasks {
		f, err := statFields(dir + "/" + t.Name() + "/stat")
		if err != nil {
			continue // the thread ended
		}
		// nice is field 19.
		if len(f) < 17 || f[16] != strconv.Itoa(nice) {
			continue
		}
		ut, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, errors.New("bad utime/stime in " + dir)
		}
		sum += ut + st
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(sum) * time.Second / ticks, nil
}

// comm returns a process's command name.
func comm(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(data))
}
