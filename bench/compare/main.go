// Command compare times banwatch's matcher against fail2ban's and sshguard's
// on the same generated Postfix log (package bench/loggen) and prints a
// markdown table:
//
//   - banwatch: `banctl test --filter postfix LOG`, the whole log;
//   - fail2ban: `fail2ban-regex SLICE /etc/fail2ban/filter.d/postfix.conf`
//     (normal mode) and `fail2ban-regex SLICE 'postfix[mode=aggressive]'`
//     (aggressive mode, which takes about the attacks banwatch's filter
//     takes), on the log's first -f2b-lines lines: fail2ban reads some
//     20,000-30,000 lines a second;
//   - sshguard: `sshg-parser < LOG`, the whole log.
//
// Every process is pinned to one CPU with taskset; its time is counted
// from start to exit (so Python's start-up counts for fail2ban, as Go's
// does for banctl), both on the wall clock and as the user + system CPU
// time it used. The tools take turns (A B C D A B C D ...) for -runs rounds,
// and the table gives the median of each. Lines per second and the ratios
// use CPU time by default: on a machine shared with other work the wall
// clock also counts the time the pinned CPU ran someone else, while CPU time
// does not; on an idle machine the two agree (-clock wall uses the wall
// clock). Each row also says how many lines the tool
// matched (sshguard: attacks it reported), so that a reader sees that they
// did comparable work.
//
// It installs Debian's fail2ban and sshguard packages with apt-get when they
// are missing (that needs root), with a policy-rc.d in place that keeps
// their services from starting, and disables those services afterwards:
// the test itself only runs the tools' offline parsers, which touch no
// firewall. Run it from the source tree (it builds ./cmd/banctl), or give a
// built banctl with -bin:
//
//	go run ./bench/compare
//	go run ./bench/compare -lines 200000 -runs 5 -json
//
// With -json it prints one JSON object per tool instead of the table (JSON
// Lines), for a driver that collects several benchmarks into one table.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/banwatch/banwatch/bench/loggen"
	"github.com/banwatch/banwatch/internal/benchref"
)

// Where Debian's packages put the tools.
const (
	fail2banRegex = "/usr/bin/fail2ban-regex"
	fail2banConf  = "/etc/fail2ban/filter.d/postfix.conf"
	sshgParser    = "/usr/libexec/sshguard/sshg-parser"
	policyRCD     = "/usr/sbin/policy-rc.d"
)

// config is what the flags set.
type config struct {
	lines, f2bLines, runs int
	seed                  int64
	bin                   string // directory holding banctl; "" builds it
	cpu                   string // taskset's CPU list
	clock                 string // "cpu" or "wall": which time lines/s and ratios use
	json, install, keep   bool
}

func main() {
	var c config
	flag.IntVar(&c.lines, "lines", 1000000, "lines of the generated Postfix log (banwatch and sshguard read them all)")
	flag.IntVar(&c.f2bLines, "f2b-lines", 100000, "lines of the log's start that fail2ban reads")
	flag.IntVar(&c.runs, "runs", 3, "rounds; each tool runs once a round, in turn")
	flag.Int64Var(&c.seed, "seed", 1, "seed of the generated log")
	flag.StringVar(&c.bin, "bin", "", "`DIR` holding a built banctl (default: go build ./cmd/banctl into a temporary directory)")
	flag.StringVar(&c.cpu, "cpu", "0", "CPU list for taskset -c")
	flag.StringVar(&c.clock, "clock", "cpu", "time that lines/s and the ratios use: cpu (user + system time of the process) or wall (start to exit)")
	flag.BoolVar(&c.json, "json", false, "print one JSON object per tool (JSON Lines) instead of the table")
	flag.BoolVar(&c.install, "install", true, "install Debian's fail2ban and sshguard with apt-get when missing (needs root)")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory with the logs")
	flag.Parse()
	if flag.NArg() > 0 || c.lines < 1 || c.f2bLines < 1 || c.runs < 1 || (c.clock != "cpu" && c.clock != "wall") {
		flag.Usage()
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, logger, os.Stdout); err != nil {
		logger.Error("compare failed", "err", err)
		os.Exit(1)
	}
}

// tool is one command to time and what it did.
type tool struct {
	Name    string // "fail2ban 1.0.2, aggressive"
	Display string // the command as the table shows it
	Lines   int    // lines it reads
	Unit    string // what Matched counts: "lines" or "reports"

	path  string
	args  []string
	stdin string                    // file to read as standard input, or ""
	count func([]byte) (int, error) // matched lines or reports, from its output

	wall, cpu []time.Duration
	matched   int
}

func run(ctx context.Context, c config, logger *slog.Logger, stdout io.Writer) error {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("compare: taskset (Debian's util-linux) is missing: %w", err)
	}
	if err := ensurePackages(ctx, c.install, logger); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "banwatch-compare-")
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	if c.keep {
		logger.Info("keeping the logs", "dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	banctl := filepath.Join(c.bin, "banctl")
	if c.bin == "" {
		banctl = filepath.Join(dir, "banctl")
		if err := buildBanctl(ctx, banctl, logger); err != nil {
			return err
		}
	} else if banctl, err = filepath.Abs(banctl); err != nil {
		return fmt.Errorf("compare: %w", err)
	}

	f2bLines := min(c.f2bLines, c.lines)
	logName := fmt.Sprintf("postfix-%d.log", c.lines)
	sliceName := fmt.Sprintf("postfix-%d-first-%d.log", c.lines, f2bLines)
	if f2bLines == c.lines {
		sliceName = logName
	}
	start := time.Now()
	if err := writeLogs(filepath.Join(dir, logName), filepath.Join(dir, sliceName), c, f2bLines); err != nil {
		return err
	}
	logger.Info("generated the log", "lines", c.lines, "seed", c.seed, "took", time.Since(start).Round(time.Millisecond))

	f2bVersion := "fail2ban " + debianVersion(ctx, "fail2ban")
	pin := []string{"-c", c.cpu}
	tools := []*tool{
		{
			Name:    "banwatch",
			Display: "banctl test --filter postfix " + logName,
			Lines:   c.lines,
			Unit:    "lines",
			path:    taskset,
			// --config names an empty directory: filters in /etc/banwatch
			// must not replace the shipped one.
			args:  slices.Concat(pin, []string{banctl, "test", "--config", filepath.Join(dir, "no-config"), "--filter", "postfix", logName}),
			count: banctlMatched(c.lines),
		},
		{
			Name:    f2bVersion + ", aggressive",
			Display: "fail2ban-regex " + sliceName + " 'postfix[mode=aggressive]'",
			Lines:   f2bLines,
			Unit:    "lines",
			path:    taskset,
			args:    slices.Concat(pin, []string{fail2banRegex, sliceName, "postfix[mode=aggressive]"}),
			count:   fail2banMatched(f2bLines),
		},
		{
			Name:    f2bVersion + ", normal",
			Display: "fail2ban-regex " + sliceName + " " + fail2banConf,
			Lines:   f2bLines,
			Unit:    "lines",
			path:    taskset,
			args:    slices.Concat(pin, []string{fail2banRegex, sliceName, fail2banConf}),
			count:   fail2banMatched(f2bLines),
		},
		{
			Name:    "sshguard " + debianVersion(ctx, "sshguard"),
			Display: sshgParser + " < " + logName,
			Lines:   c.lines,
			Unit:    "reports",
			path:    taskset,
			args:    slices.Concat(pin, []string{sshgParser}),
			stdin:   logName,
			count:   func(out []byte) (int, error) { return bytes.Count(out, []byte("\n")), nil },
		},
	}
	for _, t := range tools {
		t.Display = "taskset -c " + c.cpu + " " + t.Display
	}

	for r := 1; r <= c.runs; r++ {
		for _, t := range tools {
			if err := t.time(ctx, dir); err != nil {
				return err
			}
			logger.Info("timed", "round", r, "tool", t.Name, "seconds", t.wall[len(t.wall)-1].Seconds(), "matched", t.matched)
		}
	}
	if c.json {
		return writeJSON(stdout, tools, c)
	}
	return writeTable(stdout, tools, c)
}

// time runs t once in dir and adds its times; every run must count the same.
func (t *tool) time(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, t.path, t.args...)
	cmd.Dir = dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if t.stdin != "" {
		f, err := os.Open(filepath.Join(dir, t.stdin))
		if err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("compare: %s: %w\n%s", t.Name, err, tail(errOut.Bytes(), 2000))
	}
	n, err := t.count(out.Bytes())
	if err != nil {
		return fmt.Errorf("compare: %s: %w\n%s", t.Name, err, tail(out.Bytes(), 2000))
	}
	if len(t.wall) > 0 && n != t.matched {
		return fmt.Errorf("compare: %s matched %d, then %d, on the same input", t.Name, t.matched, n)
	}
	t.matched = n
	t.wall = append(t.wall, wall)
	t.cpu = append(t.cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
	return nil
}

// banctlMatched reads "matched: N lines" from banctl test's summary, and
// checks that it read every line.
func banctlMatched(lines int) func([]byte) (int, error) {
	read := regexp.MustCompile(`(?m)^read:\s+(\d+) lines`)
	matched := regexp.MustCompile(`(?m)^matched:\s+(\d+) lines`)
	return func(out []byte) (int, error) {
		r, m := read.FindSubmatch(out), matched.FindSubmatch(out)
		if r == nil || m == nil {
			return 0, errors.New(`no "read:" and "matched:" in banctl's summary`)
		}
		if n, _ := strconv.Atoi(string(r[1])); n != lines {
			return 0, fmt.Errorf("banctl read %d lines of %d", n, lines)
		}
		return strconv.Atoi(string(m[1]))
	}
}

// fail2banMatched reads "Lines: N lines, I ignored, M matched, X missed"
// from fail2ban-regex's summary, and checks that it read every line.
func fail2banMatched(lines int) func([]byte) (int, error) {
	re := regexp.MustCompile(`(?m)^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed`)
	return func(out []byte) (int, error) {
		m := re.FindSubmatch(out)
		if m == nil {
			return 0, errors.New(`no "Lines: ... matched" in fail2ban-regex's summary`)
		}
		if n, _ := strconv.Atoi(string(m[1])); n != lines {
			return 0, fmt.Errorf("fail2ban-regex read %d lines of %d", n, lines)
		}
		return strconv.Atoi(string(m[3]))
	}
}

// writeLogs writes the generated log to name and its first sliceLines lines
// to slice (the same file when they are the same).
func writeLogs(name, slice string, c config, sliceLines int) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	var w io.Writer = f
	var s *os.File
	if slice != name {
		if s, err = os.Create(slice); err != nil {
			f.Close()
			return fmt.Errorf("compare: %w", err)
		}
		w = io.MultiWriter(f, &headWriter{w: s, lines: sliceLines})
	}
	err = loggen.Postfix(w, loggen.Options{Lines: c.lines, AttackShare: 0.2, Attackers: 50000, Seed: c.seed})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if s != nil {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("compare: writing the log: %w", err)
	}
	return nil
}

// headWriter passes on the first lines lines written to it and drops the
// rest.
type headWriter struct {
	w     io.Writer
	lines int
}

func (h *headWriter) Write(p []byte) (int, error) {
	n := len(p)
	if h.lines <= 0 {
		return n, nil
	}
	end := 0
	for end < len(p) && h.lines > 0 {
		i := bytes.IndexByte(p[end:], '\n')
		if i < 0 {
			end = len(p)
			break
		}
		end += i + 1
		h.lines--
	}
	if _, err := h.w.Write(p[:end]); err != nil {
		return 0, err
	}
	return n, nil
}

// buildBanctl builds ./cmd/banctl of the module the working directory is
// in into path.
func buildBanctl(ctx context.Context, path string, logger *slog.Logger) error {
	// go run and go test put their Go's bin first in PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "go"
	}
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("compare: go env GOMOD: %w (give a built banctl with -bin)", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return errors.New("compare: not in the banwatch source tree: run from it, or give a built banctl with -bin")
	}
	start := time.Now()
	args := append([]string{"build"}, benchref.BuildFlags(filepath.Dir(mod))...)
	cmd := exec.CommandContext(ctx, goTool, append(args, "-o", path, "./cmd/banctl")...)
	cmd.Dir = filepath.Dir(mod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("compare: building banctl: %w\n%s", err, out)
	}
	logger.Info("built banctl", "module", filepath.Dir(mod), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// ensurePackages installs Debian's fail2ban and sshguard when their tools
// are missing. A policy-rc.d that says no (exit 101) keeps their postinst
// scripts from starting the services (invoke-rc.d and, under systemd,
// deb-systemd-invoke both ask it); afterwards the services are disabled,
// so that they do not start at the next boot either.
func ensurePackages(ctx context.Context, install bool, logger *slog.Logger) error {
	var missing []string
	for pkg, file := range map[string]string{"fail2ban": fail2banRegex, "sshguard": sshgParser} {
		if _, err := os.Stat(file); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	if !install {
		return fmt.Errorf("compare: %s missing; install Debian's packages (apt-get install %s) or leave out -install=false",
			strings.Join(missing, " and "), strings.Join(missing, " "))
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("compare: %s missing; run as root to install them with apt-get", strings.Join(missing, " and "))
	}
	if _, err := os.Lstat(policyRCD); err == nil {
		// Someone else's: use it only if it keeps services down.
		err := exec.CommandContext(ctx, policyRCD, "sshguard", "start").Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 101 {
			return fmt.Errorf("compare: %s lets services start, and installing %s would start them (sshguard blocks addresses in nftables): install them by hand",
				policyRCD, strings.Join(missing, " and "))
		}
	} else {
		if err := os.WriteFile(policyRCD, []byte("#!/bin/sh\n# banwatch bench/compare: no services start while it installs packages\nexit 101\n"), 0o755); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		defer os.Remove(policyRCD)
	}
	logger.Info("installing Debian packages", "packages", missing)
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"update", "-qq"},
		append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...),
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("compare: apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out, 4000))
		}
	}
	for _, svc := range missing {
		// Best effort: a machine without these tools has nothing to disable.
		exec.CommandContext(ctx, "update-rc.d", svc, "disable").Run()
		if _, err := os.Stat("/run/systemd/system"); err == nil {
			exec.CommandContext(ctx, "systemctl", "disable", svc+".service").Run()
		}
	}
	return nil
}

// debianVersion is the upstream version of an installed Debian package, or
// "" when dpkg does not know it.
func debianVersion(ctx context.Context, pkg string) string {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(out))
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i > 0 {
		v = v[:i]
	}
	return v
}

// median is the middle of ds (the mean of the two middle ones for an even
// count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// seconds is t's median time on clock, "cpu" or "wall".
func (t *tool) seconds(clock string) float64 {
	if clock == "wall" {
		return median(t.wall).Seconds()
	}
	return median(t.cpu).Seconds()
}

func (t *tool) linesPerSecond(clock string) float64 { return float64(t.Lines) / t.seconds(clock) }

// result is one tool's line of -json output.
type result struct {
	Bench          string    `json:"bench"`
	Tool           string    `json:"tool"`
	Command        string    `json:"command"`
	Log            string    `json:"log"`
	Seed           int64     `json:"seed"`
	Lines          int       `json:"lines"`
	Runs           int       `json:"runs"`
	Seconds        float64   `json:"seconds"`
	RunSeconds     []float64 `json:"run_seconds"`
	CPUSeconds     float64   `json:"cpu_seconds"`
	Clock          string    `json:"clock"` // what lines_per_second and banwatch_speedup use: "cpu" or "wall"
	LinesPerSecond float64   `json:"lines_per_second"`
	Matched        int       `json:"matched"`
	MatchedUnit    string    `json:"matched_unit"`
	// BanwatchSpeedup is banwatch's lines per second over this tool's.
	BanwatchSpeedup float64 `json:"banwatch_speedup"`
}

func writeJSON(w io.Writer, tools []*tool, c config) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, t := range tools {
		r := result{
			Bench:           "compare",
			Tool:            t.Name,
			Command:         t.Display,
			Log:             "postfix",
			Seed:            c.seed,
			Lines:           t.Lines,
			Runs:            len(t.wall),
			Seconds:         round(median(t.wall).Seconds(), 4),
			CPUSeconds:      round(median(t.cpu).Seconds(), 4),
			Clock:           c.clock,
			LinesPerSecond:  round(t.linesPerSecond(c.clock), 0),
			Matched:         t.matched,
			MatchedUnit:     t.Unit,
			BanwatchSpeedup: round(tools[0].linesPerSecond(c.clock)/t.linesPerSecond(c.clock), 2),
		}
		for _, d := range t.wall {
			r.RunSeconds = append(r.RunSeconds, round(d.Seconds(), 4))
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
	}
	return nil
}

func writeTable(w io.Writer, tools []*tool, c config) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Generated Postfix log, seed %d; each process pinned with `taskset -c %s`; median of %d runs, the tools in turn.\n", c.seed, c.cpu, c.runs)
	if c.clock == "wall" {
		b.WriteString("Seconds from start to exit; CPU s is user + system time; lines/s and the ratios use seconds.\n\n")
	} else {
		b.WriteString("Seconds from start to exit; CPU s is user + system time; lines/s and the ratios use CPU s, which other work on a shared machine does not inflate (-clock wall for seconds).\n\n")
	}
	b.WriteString("| tool | command | lines | seconds | CPU s | lines/s | matched | banwatch is |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	bw := tools[0].linesPerSecond(c.clock)
	for i, t := range tools {
		speed := "—"
		if i > 0 {
			speed = fmt.Sprintf("%.1f× faster", bw/t.linesPerSecond(c.clock))
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %.3f | %.3f | %s | %s %s (%.1f%%) | %s |\n",
			t.Name, t.Display, thousands(t.Lines), median(t.wall).Seconds(), median(t.cpu).Seconds(), thousands(int(t.linesPerSecond(c.clock)+0.5)),
			thousands(t.matched), t.Unit, 100*float64(t.matched)/float64(t.Lines), speed)
	}
	b.WriteString("\n")
	for _, t := range tools[1:] {
		fmt.Fprintf(&b, "banwatch/%s: %.1f× the lines per second\n", t.Name, bw/t.linesPerSecond(c.clock))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// thousands writes n with commas: 1,234,567.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// tail is the end of out, at most n bytes.
func tail(out []byte, n int) []byte {
	if len(out) > n {
		return out[len(out)-n:]
	}
	return out
}
