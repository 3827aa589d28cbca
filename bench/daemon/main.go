// Command daemon benchmarks the real banwatchd and banctl binaries, each
// run in a network namespace of its own with a configuration this program
// writes, banning into the kernel's nftables. It needs root, ip(8) and
// taskset(1).
//
//	go run ./bench/daemon                 # all, a markdown table
//	go run ./bench/daemon -only latency   # one sub-benchmark
//	go run ./bench/daemon -json           # one JSON object per result
//
// The sub-benchmarks (-only takes a comma-separated list):
//
//	ingest   a generated Postfix log appended as fast as possible: the
//	         daemon's sustained lines/s and its lag, against bare
//	         nxadm/tail on the same file (with its defaults, set as
//	         banwatchd sets it, and that with the postfix filter matching
//	         each line); pinned to CPU 0 and unpinned
//	latency  write() of an address's fifth strike to the element's
//	         notification from the kernel: p50, p90, p99, max
//	install  new bans per second into nftables through the daemon; the
//	         end seen by asking the kernel for the last address every
//	         2 ms (-install-watch poll) or from the kernel's element
//	         notifications (notify), whose decoding costs CPU on the
//	         same two cores; then the floor: the same lines read by bare
//	         nxadm/tail and their addresses added through pkg/firewall/nft
//	         alone (-banrate); unpinned (judged), then each pinned to CPU 0
//	restore  start-up with 1,000,000 active bans until all are in the kernel
//	memory   RSS per address tracked within the window
//	idle     CPU used by a daemon with all jails on quiet logs
//
// The binaries are built from ./cmd/banwatchd, ./cmd/banctl and
// ./bench/cmd/fillstore into a temporary directory unless -bin names a
// directory holding them. Everything made (namespaces, processes, files
// under a temporary directory) is removed on exit, also on an error or an
// interrupt.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/banwatch/banwatch/internal/benchref"
)

var (
	binDir    string // where banwatchd, banctl and fillstore are
	workDir   string // the temporary directory of this run
	keepFiles bool   // -keep: leave workDir behind
	pinCtl    bool   // run banctl on CPU 1 (while the daemon is pinned to CPU 0)
)

// benches are the sub-benchmarks in the order they run.
var benches = []struct {
	name string
	run  func(context.Context, *opts) []result
}{
	{"ingest", benchIngest},
	{"latency", benchLatency},
	{"install", benchInstall},
	{"restore", benchRestore},
	{"memory", benchMemory},
	{"idle", benchIdle},
}

// opts are the command-line settings the sub-benchmarks read.
type opts struct {
	ingestLines  int
	ingestRounds int
	latencyN     int
	installN     int
	installPoll  bool
	restoreN     int
	memoryN      int
	memoryVars   string
	idle         time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-tailrate" {
		os.Exit(tailRate(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "-banrate" {
		os.Exit(banRate(os.Args[2:]))
	}
	var o opts
	bin := flag.String("bin", "", "`directory` with banwatchd, banctl (and fillstore); default: build them")
	only := flag.String("only", "", "run only these sub-benchmarks (comma-separated: ingest,latency,install,restore,memory,idle)")
	asJSON := flag.Bool("json", false, "print one JSON object per result instead of a markdown table")
	flag.IntVar(&o.ingestLines, "ingest-lines", 1_000_000, "lines of the ingest log")
	flag.IntVar(&o.ingestRounds, "ingest-rounds", 3, "ingest: rounds of a daemon run and a bare tail run, pinned and unpinned each (the median ratio is judged)")
	flag.IntVar(&o.latencyN, "latency-n", 1000, "bans timed for latency")
	flag.IntVar(&o.installN, "install-n", 100_000, "bans for the install rate")
	installWatch := flag.String("install-watch", "poll", "install: how the end is seen: poll (ask the kernel for the last address every 2 ms) or notify (count the kernel's element notifications)")
	flag.IntVar(&o.restoreN, "restore-n", 1_000_000, "active bans in the store for restore")
	flag.IntVar(&o.memoryN, "memory-n", 1_000_000, "distinct addresses for memory")
	flag.StringVar(&o.memoryVars, "memory-jails", "plain,postfix", "memory: the jails to try (plain, postfix)")
	flag.DurationVar(&o.idle, "idle", 60*time.Second, "how long idle CPU is measured")
	flag.BoolVar(&keepFiles, "keep", false, "keep the temporary directory (configurations, logs, daemon stderr)")
	flag.Parse()
	switch *installWatch {
	case "poll", "notify":
		o.installPoll = *installWatch == "poll"
	default:
		fmt.Fprintf(os.Stderr, "bench/daemon: -install-watch %q: want poll or notify\n", *installWatch)
		os.Exit(2)
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench/daemon: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	selected := map[string]bool{}
	if *only != "" {
		for _, n := range strings.Split(*only, ",") {
			n = strings.TrimSpace(n)
			found := false
			for _, b := range benches {
				found = found || b.name == n
			}
			if !found {
				fmt.Fprintf(os.Stderr, "bench/daemon: -only: no sub-benchmark %q\n", n)
				os.Exit(2)
			}
			selected[n] = true
		}
	}
	os.Exit(run(*bin, selected, &o, *asJSON))
}

func run(bin string, selected map[string]bool, o *opts, asJSON bool) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench/daemon: needs root (network namespaces, nftables)")
		return 2
	}
	for _, tool := range []string{"ip", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "bench/daemon: needs %s (Debian: iproute2, util-linux)\n", tool)
			return 2
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "bench/daemon: %v: stopping\n", s)
		cancel()
		select {
		case <-sigs:
		case <-time.After(15 * time.Second):
		}
		runExit()
		os.Exit(130)
	}()
	defer runExit()

	var err error
	workDir, err = os.MkdirTemp("", "bwbench")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/daemon:", err)
		return 1
	}
	atExit(func() {
		if keepFiles {
			fmt.Fprintln(os.Stderr, "bench/daemon: kept", workDir)
			return
		}
		os.RemoveAll(workDir)
	})
	if err := findBinaries(ctx, bin); err != nil {
		fmt.Fprintln(os.Stderr, "bench/daemon:", err)
		return 1
	}

	info := machine()
	var all []result
	began := time.Now()
	for _, b := range benches {
		if len(selected) > 0 && !selected[b.name] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		t := time.Now()
		progress("%s: start", b.name)
		rs := b.run(ctx, o)
		progress("%s: done in %v", b.name, time.Since(t).Round(100*time.Millisecond))
		for i := range rs {
			rs[i].Bench = b.name
			if asJSON {
				rs[i].Commit, rs[i].Date, rs[i].Machine = info.commit, info.date, info.String()
				json.NewEncoder(os.Stdout).Encode(rs[i])
			}
		}
		all = append(all, rs...)
	}
	if !asJSON {
		printTable(os.Stdout, info, all, time.Since(began))
	}
	for _, r := range all {
		if r.Status == statusError || r.Status == statusTimeout {
			return 1
		}
	}
	if ctx.Err() != nil {
		return 130
	}
	return 0
}

// findBinaries sets binDir: bin if it holds banwatchd and banctl, else a
// directory where they are built (with fillstore).
func findBinaries(ctx context.Context, bin string) error {
	if bin != "" {
		binDir = bin
		for _, b := range []string{"banwatchd", "banctl"} {
			if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
				return fmt.Errorf("-bin: %w", err)
			}
		}
		return nil
	}
	binDir = filepath.Join(workDir, "bin")
	return build(ctx, binDir, "./cmd/banwatchd", "./cmd/banctl", "./bench/cmd/fillstore")
}

// build builds the packages of the banwatch module into dst.
func build(ctx context.Context, dst string, pkgs ...string) error {
	// go run and go test put their Go's bin first in PATH.
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "go"
	}
	out, err := exec.CommandContext(ctx, gobin, "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return errors.New("run me inside the banwatch module (go env GOMOD is empty), or give -bin")
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	progress("building %s", strings.Join(pkgs, " "))
	args := append([]string{"build"}, benchref.BuildFlags(filepath.Dir(mod))...)
	cmd := exec.CommandContext(ctx, gobin, append(append(args, "-o", dst+"/"), pkgs...)...)
	cmd.Dir = filepath.Dir(mod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// fillstore returns the fillstore binary: in binDir, or built.
func fillstore(ctx context.Context) (string, error) {
	p := filepath.Join(binDir, "fillstore")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	dst := filepath.Join(workDir, "bin")
	return filepath.Join(dst, "fillstore"), build(ctx, dst, "./bench/cmd/fillstore")
}

// progress reports on stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench/daemon: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

var (
	exitMu    sync.Mutex
	exitFns   = map[int]func(){}
	exitOrder []int
	exitSeq   int
)

// atExit registers fn to run at exit (last registered first) and returns a
// function that unregisters it.
func atExit(fn func()) func() {
	exitMu.Lock()
	defer exitMu.Unlock()
	exitSeq++
	id := exitSeq
	exitFns[id] = fn
	exitOrder = append(exitOrder, id)
	return func() {
		exitMu.Lock()
		delete(exitFns, id)
		exitMu.Unlock()
	}
}

// runExit runs the registered functions once.
func runExit() {
	for {
		exitMu.Lock()
		var fn func()
		for len(exitOrder) > 0 && fn == nil {
			id := exitOrder[len(exitOrder)-1]
			exitOrder = exitOrder[:len(exitOrder)-1]
			fn = exitFns[id]
			delete(exitFns, id)
		}
		exitMu.Unlock()
		if fn == nil {
			return
		}
		fn()
	}
}

// result is one row of the report.
type result struct {
	Bench   string  `json:"bench"`
	Measure string  `json:"measure"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Result  string  `json:"result"` // the value as the table shows it
	Target  string  `json:"target,omitempty"`
	Status  string  `json:"status"` // pass, fail, info, timeout, error
	Notes   string  `json:"notes,omitempty"`
	Commit  string  `json:"commit,omitempty"`
	Date    string  `json:"date,omitempty"`
	Machine string  `json:"machine,omitempty"`
}

const (
	statusPass    = "pass"
	statusFail    = "fail"
	statusInfo    = "info" // no target
	statusTimeout = "timeout"
	statusError   = "error"
)

// failed makes the row of a measurement that could not be made.
func failed(measure string, err error) result {
	st := statusError
	if strings.HasPrefix(err.Error(), "timeout") || errors.Is(err, context.DeadlineExceeded) {
		st = statusTimeout
	}
	progress("%s: %v", measure, err)
	first, _, _ := strings.Cut(err.Error(), "\n")
	return result{Measure: measure, Result: st, Status: st, Notes: first}
}

// judge sets the status from a comparison.
func judge(ok bool) string {
	if ok {
		return statusPass
	}
	return statusFail
}

// machineInfo describes where the numbers were measured.
type machineInfo struct {
	cpus   int
	model  string
	kernel string
	commit string
	date   string
	goVer  string
}

// String describes the machine in one line.
func (m machineInfo) String() string {
	return fmt.Sprintf("%d CPUs, %s, Linux %s, %s", m.cpus, m.model, m.kernel, m.goVer)
}

func machine() machineInfo {
	m := machineInfo{cpus: runtime.NumCPU(), date: time.Now().UTC().Format(time.RFC3339), goVer: runtime.Version(), commit: "unknown"}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.kernel = unix.ByteSliceToString(u.Release[:])
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
			m.commit += "+dirty"
		}
	}
	return m
}

func printTable(w io.Writer, m machineInfo, rs []result, took time.Duration) {
	fmt.Fprintf(w, "\n## banwatchd benchmarks (bench/daemon)\n\n")
	fmt.Fprintf(w, "Machine: %s. Commit %s, %s. Run took %v.\n\n", m, m.commit, m.date, took.Round(time.Second))
	fmt.Fprintln(w, "| measure | result | target | pass/fail | notes |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	for _, r := range rs {
		t := r.Target
		if t == "" {
			t = "—"
		}
		st := r.Status
		if st == statusInfo {
			st = "—"
		}
		fmt.Fprintf(w, "| %s: %s | %s | %s | %s | %s |\n", r.Bench, r.Measure, r.Result, t, st, strings.ReplaceAll(r.Notes, "|", "/"))
	}
}

// setAffinity pins every thread of this process to cpus (new threads
// inherit it); nil undoes that.
func setAffinity(cpus []int) {
	var set unix.CPUSet
	if cpus == nil {
		for i := 0; i < runtime.NumCPU(); i++ {
			set.Set(i)
		}
	} else {
		for _, c := range cpus {
			set.Set(c)
		}
	}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	for _, e := range ents {
		var tid int
		fmt.Sscan(e.Name(), &tid)
		unix.SchedSetaffinity(tid, &set)
	}
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + commas(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
