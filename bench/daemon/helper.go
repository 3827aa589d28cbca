package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// A helper is this program run as a child in one of its helper modes
// (-tailrate, -banrate): it prints "ready" once it follows its file, then
// its result, a line each.
type helper struct {
	mode   string // "tailrate" or "banrate", for errors
	cmd    *exec.Cmd
	stderr bytes.Buffer
	lines  chan string   // its standard output, a line each; closed at its end
	exited chan struct{} // closed once it has exited
	unreg  func()
}

// startHelper runs this program with -mode and args, after prefix (a
// command that runs it: taskset, ip netns exec), and waits up to 10 s for
// its "ready". The helper is killed if this program exits; stop kills it
// sooner.
func startHelper(ctx context.Context, prefix []string, mode string, args ...string) (*helper, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := append(append(append([]string(nil), prefix...), self, "-"+mode), args...)
	h := &helper{mode: mode, cmd: exec.Command(argv[0], argv[1:]...), lines: make(chan string, 2), exited: make(chan struct{})}
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h.cmd.Stderr = &h.stderr
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	h.unreg = atExit(func() { h.cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
		h.cmd.Wait()
		close(h.exited)
	}()
	select {
	case l := <-h.lines:
		if l == "ready" {
			return h, nil
		}
		err = fmt.Errorf("%s said %q: %s", mode, l, h.stderr.String())
	case <-time.After(10 * time.Second):
		err = fmt.Errorf("timeout: %s not ready in 10 s", mode)
	case <-ctx.Done():
		err = ctx.Err()
	}
	h.stop()
	return nil, err
}

// stop kills the helper if it still runs.
func (h *helper) stop() {
	h.cmd.Process.Kill()
	h.unreg()
}

// result waits up to within for the helper's next line of output.
func (h *helper) result(ctx context.Context, within time.Duration) (string, error) {
	select {
	case l, ok := <-h.lines:
		if !ok {
			return "", fmt.Errorf("%s failed: %s", h.mode, h.stderr.String())
		}
		return l, nil
	case <-time.After(within):
		return "", fmt.Errorf("timeout: %s did not finish in %v", h.mode, within)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// failed tells, without waiting, whether the helper has exited with an
// error; a clean exit is no failure.
func (h *helper) failed() error {
	select {
	case <-h.exited:
		if !h.cmd.ProcessState.Success() {
			return fmt.Errorf("%s exited (%v): %s", h.mode, h.cmd.ProcessState, h.stderr.String())
		}
	default:
	}
	return nil
}
