// Command report runs the whole performance harness and prints one table
// of banwatch's numbers against the targets of the performance issue and
// against fail2ban and sshguard measured in the same run:
//
//   - bench/compare: banctl test against fail2ban-regex and sshguard's
//     parser on one generated Postfix log;
//   - bench/daemon: the real banwatchd in a network namespace (ingest
//     against bare nxadm/tail, ban latency, ban install, restore of
//     1,000,000 bans, memory per tracked address, idle CPU);
//   - the Go benchmarks of the hot paths, for their allocations per
//     benign line (pkg/filter's BenchmarkMatcher, pkg/jail's
//     BenchmarkObserveNotCounted and BenchmarkObserveKnownAddress).
//
// It needs root (namespaces, nftables, installing Debian's fail2ban and
// sshguard when missing) and runs from the source tree:
//
//	make bench          # or: go run ./bench/report
//
// The binaries are built once into a temporary directory and given to the
// parts with -bin. -quick makes every part smaller, for a smoke run.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/banwatch/banwatch/internal/benchref"
)

// compareRow is a line of `bench/compare -json`.
type compareRow struct {
	Tool            string  `json:"tool"`
	Command         string  `json:"command"`
	Lines           int     `json:"lines"`
	Seconds         float64 `json:"seconds"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	Clock           string  `json:"clock"`
	LinesPerSecond  float64 `json:"lines_per_second"`
	Matched         int     `json:"matched"`
	MatchedUnit     string  `json:"matched_unit"`
	BanwatchSpeedup float64 `json:"banwatch_speedup"`
}

// daemonRow is a line of `bench/daemon -json`.
type daemonRow struct {
	Bench   string  `json:"bench"`
	Measure string  `json:"measure"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Result  string  `json:"result"`
	Target  string  `json:"target"`
	Status  string  `json:"status"`
	Notes   string  `json:"notes"`
}

// allocRow is one Go benchmark's allocations.
type allocRow struct {
	Name   string
	Allocs float64 // allocs/op
	NsOp   float64
}

func main() {
	quick := flag.Bool("quick", false, "smaller runs of every part (a smoke run, not numbers to quote)")
	only := flag.String("only", "compare,daemon,allocs", "parts to run, comma-separated")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *quick, *only, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, quick bool, only string, out io.Writer) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "banwatch-report-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	step("building banwatchd, banctl and fillstore")
	args := append([]string{"build"}, benchref.BuildFlags(".")...)
	args = append(args, "-o", dir+"/", "./cmd/banwatchd", "./cmd/banctl", "./bench/cmd/fillstore")
	if err := command(ctx, nil, "go", args...).Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	parts := map[string]bool{}
	for _, p := range strings.Split(only, ",") {
		parts[strings.TrimSpace(p)] = true
	}
	var cmp []compareRow
	var dmn []daemonRow
	var allocs []allocRow
	var failures []string
	if parts["compare"] {
		step("bench/compare: banctl test, fail2ban-regex and sshguard on one log")
		args := []string{"run", "./bench/compare", "-json", "-bin", dir}
		if quick {
			args = append(args, "-lines", "200000", "-f2b-lines", "20000", "-runs", "1")
		} else {
			// Five rounds, not compare's three: banctl's 0.2-0.4 s run
			// varies more with the machine's other work than sshguard's
			// 2.5 s, and the median of five is steadier.
			args = append(args, "-runs", "5")
		}
		lines, err := jsonLines(ctx, args)
		if err != nil {
			failures = append(failures, "bench/compare: "+err.Error())
		}
		for _, l := range lines {
			var r compareRow
			if json.Unmarshal(l, &r) == nil && r.Tool != "" {
				cmp = append(cmp, r)
			}
		}
	}
	if parts["daemon"] {
		step("bench/daemon: the daemon in a network namespace")
		args := []string{"run", "./bench/daemon", "-json", "-bin", dir}
		if quick {
			args = append(args, "-ingest-lines", "200000", "-latency-n", "100", "-install-n", "10000",
				"-restore-n", "100000", "-memory-n", "100000", "-memory-jails", "plain", "-idle", "5s")
		}
		lines, err := jsonLines(ctx, args)
		if err != nil {
			failures = append(failures, "bench/daemon: "+err.Error())
		}
		for _, l := range lines {
			var r daemonRow
			if json.Unmarshal(l, &r) == nil && r.Measure != "" {
				dmn = append(dmn, r)
			}
		}
	}
	if parts["allocs"] {
		step("Go benchmarks of the hot paths: allocations per benign line")
		allocs, err = goAllocs(ctx)
		if err != nil {
			failures = append(failures, "go test -bench: "+err.Error())
		}
	}
	printReport(out, cmp, dmn, allocs, time.Since(start))
	if len(failures) > 0 {
		return fmt.Errorf("%s", strings.Join(failures, "; "))
	}
	return nil
}

func step(s string) { fmt.Fprintf(os.Stderr, "report: %s (%s)\n", s, time.Now().Format("15:04:05")) }

func command(ctx context.Context, stdout io.Writer, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	if stdout == nil {
		cmd.Stdout = os.Stderr
	}
	return cmd
}

// jsonLines runs `go ARGS` and returns the lines of its output that are
// JSON objects; its other output goes to standard error.
func jsonLines(ctx context.Context, args []string) ([][]byte, error) {
	var buf bytes.Buffer
	err := command(ctx, &buf, "go", args...).Run()
	var lines [][]byte
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) > 0 && l[0] == '{' {
			lines = append(lines, append([]byte(nil), l...))
		} else if len(l) > 0 {
			fmt.Fprintf(os.Stderr, "%s\n", l)
		}
	}
	return lines, err
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op.*?\s([\d.]+) allocs/op`)

// goAllocs runs the hot paths' Go benchmarks with -benchmem.
func goAllocs(ctx context.Context) ([]allocRow, error) {
	var rows []allocRow
	for _, b := range []struct{ pkg, pattern string }{
		{"./pkg/filter", "^BenchmarkMatcher$/.*/benign$"},
		{"./pkg/jail", "^(BenchmarkObserveNotCounted|BenchmarkObserveKnownAddress)$"},
	} {
		var buf bytes.Buffer
		err := command(ctx, &buf, "go", "test", "-run", "^$", "-bench", b.pattern, "-benchmem", "-cpu", "1", "-benchtime", "200000x", b.pkg).Run()
		for _, l := range strings.Split(buf.String(), "\n") {
			m := benchLine.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			ns, _ := strconv.ParseFloat(m[2], 64)
			a, _ := strconv.ParseFloat(m[3], 64)
			rows = append(rows, allocRow{Name: m[1], Allocs: a, NsOp: ns})
		}
		if err != nil {
			return rows, fmt.Errorf("%s: %w", b.pkg, err)
		}
	}
	return rows, nil
}

func printReport(w io.Writer, cmp []compareRow, dmn []daemonRow, allocs []allocRow, took time.Duration) {
	commit := "unknown"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			commit += " (with uncommitted changes)"
		}
	}
	fmt.Fprintf(w, "# banwatch performance report\n\n")
	fmt.Fprintf(w, "%s, commit %s, %s, %d CPUs (%s), kernel %s; the whole run took %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), commit, runtime.Version(), runtime.NumCPU(), cpuModel(), kernel(), took.Round(time.Second))

	if len(cmp) > 0 {
		fmt.Fprintf(w, "## Filter throughput: the same generated Postfix log, each tool pinned to one CPU\n\n")
		fmt.Fprintf(w, "| tool | lines | CPU s | wall s | lines/s (%s time) | matched | banwatch is |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n", cmp[0].Clock)
		for _, r := range cmp {
			ratio := "—"
			if r.BanwatchSpeedup > 0 && !strings.HasPrefix(r.Tool, "banwatch") {
				ratio = fmt.Sprintf("%.1f× faster", r.BanwatchSpeedup)
			}
			fmt.Fprintf(w, "| %s | %d | %.3f | %.3f | %s | %d %s | %s |\n", r.Tool, r.Lines, r.CPUSeconds, r.Seconds, group(r.LinesPerSecond), r.Matched, r.MatchedUnit, ratio)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintf(w, "## Against the targets\n\n| measure | banwatch | target | status |\n| --- | --- | --- | --- |\n")
	for _, r := range cmp {
		if strings.HasPrefix(r.Tool, "banwatch") {
			fmt.Fprintf(w, "| filter throughput, mixed Postfix log (banctl test --filter postfix) | %s lines/s | ≥ 3,000,000 lines/s | %s |\n", group(r.LinesPerSecond), passFail(r.LinesPerSecond >= 3e6))
		}
	}
	for _, r := range cmp {
		switch {
		case strings.HasPrefix(r.Tool, "fail2ban") && strings.Contains(r.Tool, "aggressive"):
			fmt.Fprintf(w, "| … against %s | %.0f× | ≥ 100× | %s |\n", r.Tool, r.BanwatchSpeedup, passFail(r.BanwatchSpeedup >= 100))
		case strings.HasPrefix(r.Tool, "sshguard"):
			fmt.Fprintf(w, "| … against %s | %.1f× | ≥ 8× | %s |\n", r.Tool, r.BanwatchSpeedup, passFail(r.BanwatchSpeedup >= 8))
		}
	}
	for _, r := range dmn {
		target := r.Target
		if target == "" {
			target = "—"
		}
		res := r.Result
		if r.Notes != "" {
			res += " (" + r.Notes + ")"
		}
		fmt.Fprintf(w, "| %s: %s | %s | %s | %s |\n", r.Bench, r.Measure, res, target, r.Status)
	}
	for _, a := range allocs {
		fmt.Fprintf(w, "| allocations, %s | %g allocs/op (%.0f ns/op) | 0 per benign line | %s |\n", a.Name, a.Allocs, a.NsOp, passFail(a.Allocs == 0))
	}
	fmt.Fprintln(w)
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "fail"
}

// group writes n with thousands separators.
func group(n float64) string {
	s := strconv.FormatInt(int64(n+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(data))
}
