// Command reliability writes docs/reliability.md from the `go test -json`
// output of the reliability tests (`make soak` runs them and then this):
// a table of every fault issue 10 names, the test that makes it, the
// test's result and time, and the figures the test logged.
//
//	go test -json -run 'TestChaosKill|...' ./cmd/banwatchd -args -chaos-cycles 50 > soak.json
//	go run ./bench/reliability -in soak.json -o docs/reliability.md -command "make soak"
//
// With -fuzz, it adds a table of the long fuzz runs from their own go test
// -json output (`go test -json -run '^$' -fuzz ^FuzzX$ -fuzztime 5m PKG`,
// one after another, appended to one file): each target's result, time,
// executions and corpus.
//
// It exits 1 when a listed test or fuzz run failed or did not run (the
// document is written anyway, saying so).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// fault is one row of the document: what goes wrong, what must hold, and
// the tests (package-relative names, Test/sub for a subtest) that make it.
type fault struct {
	name, holds string
	tests       []string
}

var faults = []fault{
	{"SIGKILL at random moments during a sustained flood, repeated",
		"after each restart every ban committed before the kill is in the kernel with its remaining time; at the end kernel = database, exactly the addresses with max_strikes failures banned, every line's strike stored once",
		[]string{"TestChaosKill"}},
	{"The state directory's filesystem full",
		"bans reach the kernel; the store's failure logged once a minute; the store catches up when space returns",
		[]string{"TestStateFilesystemFull"}},
	{"The state directory's filesystem turned read-only (ext4 errors=remount-ro)",
		"bans reach the kernel; the failure logged once; clean stop; after e2fsck the lines not stored are read again and every ban is stored",
		[]string{"TestStateFilesystemReadOnly"}},
	{"The nftables table deleted or flushed, or another program's rules changed",
		"repaired with every ban and rule; the other program's table untouched",
		[]string{"TestFaultFirewallRepaired", "TestRepairsFlushedRuleset"}},
	{"No CAP_NET_ADMIN",
		"one clear error, exit status 78 (not restarted by the unit), no panic",
		[]string{"TestFaultNoNetAdmin"}},
	{"No nftables in the kernel (nfnetlink refused, by seccomp)",
		"one clear error, exit status 78, no hang",
		[]string{"TestFaultNoNftablesInKernel"}},
	{"A missing log directory, a log replaced by a symlink or a FIFO, a log truncated to zero",
		"waited for, followed, skipped with one warning, read from its new start; lines read = lines written",
		[]string{"TestFaultLogFiles"}},
	{"SIGHUP with a broken configuration",
		"refused, the old configuration keeps running, the error shown by banctl reload",
		[]string{"TestReloadRefusesBrokenConfig"}},
	{"Soak: a flood from 1,000,000 rotating addresses plus benign traffic",
		"RSS under memory_limit, goroutines steady, lag bounded and read to the end, every address with max_strikes failures banned and no other",
		[]string{"TestSoak"}},
	{"Log injection in every attacker-held field of every shipped filter",
		"only the real client address is ever extracted",
		[]string{"TestInjection", "FuzzInjection", "FuzzShippedFilters"}},
	{"The control API: oversized bodies, slow clients, malformed JSON, non-root peers",
		"rejected without effect",
		[]string{"TestRejectedRequests", "TestSlowClients", "TestSlowClientsDoNotStopOthers", "TestPeers", "FuzzServer"}},
}

// event is one line of go test -json.
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

// result is what one test (or subtest) did.
type result struct {
	action  string // pass, fail, skip
	elapsed float64
	logs    []string // what the test logged (t.Log), without file:line
	subs    []string // its subtests' names
}

// logLine is a t.Log line: "    chaos_test.go:45: seed 1, 5 cycles".
var logLine = regexp.MustCompile(`^\s+\w+_test\.go:\d+: (.*)$`)

func main() {
	in := flag.String("in", "", "go test -json output (default: stdin)")
	out := flag.String("o", "docs/reliability.md", "the document to write")
	command := flag.String("command", "make soak", "the command to name in the document")
	fuzzIn := flag.String("fuzz", "", "go test -json output of the long fuzz runs (none: the table says they did not run)")
	fuzzTime := flag.String("fuzztime", "5m", "how long each target was fuzzed, for the document")
	targets := flag.String("fuzz-targets", "", "the fuzz targets expected, space-separated Name:package[:...] as in the Makefile's FUZZ_TARGETS")
	flag.Parse()
	r := io.Reader(os.Stdin)
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			fmt.Fprintln(os.Stderr, "reliability:", err)
			os.Exit(2)
		}
		defer f.Close()
		r = f
	}
	results, err := read(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(2)
	}
	doc, ok := render(results, *command)
	var fuzz map[string]*fuzzRun
	if *fuzzIn != "" {
		f, err := os.Open(*fuzzIn)
		if err != nil {
			fmt.Fprintln(os.Stderr, "reliability:", err)
			os.Exit(2)
		}
		fuzz, err = readFuzz(f)
		f.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "reliability:", err)
			os.Exit(2)
		}
	}
	fdoc, fok := renderFuzz(fuzz, parseTargets(*targets), *fuzzTime)
	doc += fdoc
	ok = ok && fok
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(2)
	}
	fmt.Printf("reliability: wrote %s\n", *out)
	if !ok {
		fmt.Fprintln(os.Stderr, "reliability: a test failed or did not run")
		os.Exit(1)
	}
}

// read collects each test's result and log lines from go test -json.
func read(r io.Reader) (map[string]*result, error) {
	results := map[string]*result{}
	get := func(name string) *result {
		if results[name] == nil {
			results[name] = &result{}
		}
		return results[name]
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Test == "" {
			continue // build output, package lines
		}
		res := get(e.Test)
		switch e.Action {
		case "pass", "fail", "skip":
			res.action, res.elapsed = e.Action, e.Elapsed
			if i := strings.Index(e.Test, "/"); i > 0 {
				parent := get(e.Test[:i])
				parent.subs = append(parent.subs, e.Test[i+1:])
			}
		case "output":
			if m := logLine.FindStringSubmatch(strings.TrimRight(e.Output, "\n")); m != nil {
				res.logs = append(res.logs, m[1])
			}
		}
	}
	return results, sc.Err()
}

// render writes the document; ok is false when a listed test failed or
// is missing.
func render(results map[string]*result, command string) (string, bool) {
	var b strings.Builder
	ok := true
	commit, _ := exec.Command("git", "rev-parse", "--short=7", "HEAD").Output()
	fmt.Fprintf(&b, "# Reliability\n\n")
	fmt.Fprintf(&b, "Written by `%s` (bench/reliability) on %s at commit %s, %d CPUs, %s.\n",
		command, time.Now().UTC().Format("2006-01-02 15:04 UTC"), strings.TrimSpace(string(commit)), runtime.NumCPU(), runtime.Version())
	b.WriteString("Every fault below is an automated test; `make check` (CI) runs the same tests shorter: 5 SIGKILL cycles instead of 50, ")
	b.WriteString("a one-minute soak instead of ten, the fuzz targets' seed corpora and short runs instead of the long runs below.\n\n")
	b.WriteString("| fault | what must hold | test | result | figures |\n| --- | --- | --- | --- | --- |\n")
	for _, f := range faults {
		for i, name := range f.tests {
			res := results[name]
			status := "did not run"
			var figures []string
			if res != nil && res.action != "" {
				status = fmt.Sprintf("%s (%.1f s)", res.action, res.elapsed)
				figures = summary(res, results, name)
			}
			if res == nil || res.action == "fail" || res.action == "" {
				ok = false
			}
			fault, holds := f.name, f.holds
			if i > 0 {
				fault, holds = "", ""
			}
			fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s |\n", fault, holds, name, status, cell(strings.Join(figures, "; ")))
		}
	}
	b.WriteString("\n`go vet ./...` and `staticcheck ./...` run in `make check`.\n")
	return b.String(), ok
}

// summary is what a test logged worth showing: its RELIABILITY line if it
// has one, else its log lines (a few), and its subtests' results.
func summary(res *result, all map[string]*result, name string) []string {
	var out []string
	for _, l := range res.logs {
		if s, found := strings.CutPrefix(l, "RELIABILITY "); found {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		logs := res.logs
		if res.action == "fail" && len(logs) > 6 {
			// What it logged last: the failure.
			out = append(out, "…")
			logs = logs[len(logs)-6:]
		}
		for _, l := range logs {
			if len(out) == 6 {
				out = append(out, "…")
				break
			}
			out = append(out, l)
		}
	}
	sort.Strings(res.subs)
	if len(res.subs) > maxListed {
		// Many subtests (a fuzz target's seeds, a table of requests): a
		// count, and the names of those that did not pass.
		counts := map[string]int{}
		var notPassed []string
		for _, s := range res.subs {
			if sub := all[name+"/"+s]; sub != nil {
				counts[sub.action]++
				if sub.action != "pass" {
					notPassed = append(notPassed, s+": "+sub.action)
				}
			}
		}
		line := fmt.Sprintf("%d subtests: %d pass", len(res.subs), counts["pass"])
		for _, a := range []string{"fail", "skip"} {
			if counts[a] > 0 {
				line += fmt.Sprintf(", %d %s", counts[a], a)
			}
		}
		return append(append(out, line), notPassed...)
	}
	for _, s := range res.subs {
		sub := all[name+"/"+s]
		if sub == nil {
			continue
		}
		line := fmt.Sprintf("%s: %s", s, sub.action)
		if len(sub.logs) > 0 {
			line += " (" + strings.Join(sub.logs[:min(2, len(sub.logs))], "; ") + ")"
		}
		out = append(out, line)
	}
	return out
}

// maxListed is how many subtests a row lists one by one.
const maxListed = 12

// cell makes s safe in a table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// fuzzRun is one long fuzz run of a target.
type fuzzRun struct {
	pkg, action string
	elapsed     float64
	progress    string   // the last "fuzz: elapsed: 5m0s, execs: ..." line
	baseline    string   // the last "gathering baseline coverage" progress
	failure     []string // a failure's own lines (the panic or t.Error, the input written)
}

// fuzzProgress is the fuzzing engine's progress line.
var fuzzProgress = regexp.MustCompile(`^fuzz: elapsed: (\S+), execs: (\d+) \((\d+)/sec\), new interesting: (\d+) \(total: (\d+)\)`)

// readFuzz collects each fuzz target's run from go test -json output of
// -fuzz runs. A target run twice keeps its last run.
func readFuzz(r io.Reader) (map[string]*fuzzRun, error) {
	runs := map[string]*fuzzRun{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || !strings.HasPrefix(e.Test, "Fuzz") || strings.Contains(e.Test, "/") {
			continue
		}
		switch e.Action {
		case "run":
			runs[e.Test] = &fuzzRun{pkg: e.Package}
		case "pass", "fail", "skip":
			if fr := runs[e.Test]; fr != nil {
				fr.action, fr.elapsed = e.Action, e.Elapsed
			}
		case "output":
			fr := runs[e.Test]
			if fr == nil {
				continue
			}
			line := strings.TrimSpace(e.Output)
			switch {
			case fuzzProgress.MatchString(line):
				fr.progress = line
			case strings.HasPrefix(line, "fuzz: elapsed:") && strings.Contains(line, "gathering baseline coverage: "):
				_, fr.baseline, _ = strings.Cut(line, "gathering ")
			case line == "" || strings.HasPrefix(line, "=== ") || strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "fuzz: elapsed:"):
			default:
				if len(fr.failure) < 8 {
					fr.failure = append(fr.failure, line)
				}
			}
		}
	}
	return runs, sc.Err()
}

// target is a fuzz target expected to have run.
type target struct{ name, pkg string }

// parseTargets reads FUZZ_TARGETS: "FuzzX:./pkg/x:500000 FuzzY:.:1000".
func parseTargets(s string) []target {
	var out []target
	for _, f := range strings.Fields(s) {
		parts := strings.Split(f, ":")
		t := target{name: parts[0]}
		if len(parts) > 1 {
			t.pkg = parts[1]
		}
		out = append(out, t)
	}
	return out
}

// renderFuzz is the fuzzing section: one row a target, the expected ones
// first (in order, "did not run" when absent), then any other run found.
// ok is false when a run failed or an expected target did not run.
func renderFuzz(runs map[string]*fuzzRun, expected []target, fuzzTime string) (string, bool) {
	var b strings.Builder
	ok := true
	b.WriteString("\n## Fuzzing\n\n")
	fmt.Fprintf(&b, "Each target fuzzed on its own with `go test -fuzz -fuzztime %s` (`FUZZTIME`), before the tests above; ", fuzzTime)
	b.WriteString("the time includes reading the corpus kept in Go's cache from earlier runs. ")
	b.WriteString("CI runs every target's seed corpus (`testdata/fuzz`) and a short run (`make fuzz-smoke`).\n\n")
	b.WriteString("| target | package | result | executions | corpus |\n| --- | --- | --- | --- | --- |\n")
	seen := map[string]bool{}
	row := func(name, pkg string) {
		seen[name] = true
		fr := runs[name]
		if fr == nil || fr.action == "" {
			ok = false
			fmt.Fprintf(&b, "| `%s` | %s | did not run |  |  |\n", name, pkg)
			return
		}
		if fr.action == "fail" {
			ok = false
		}
		status := fmt.Sprintf("%s (%.0f s)", fr.action, fr.elapsed)
		execs, corpus := "", ""
		if m := fuzzProgress.FindStringSubmatch(fr.progress); m != nil {
			// The engine's own rate is of its last interval; the mean is
			// over the whole run.
			execs = fmt.Sprintf("%s in %s", group(m[2]), m[1])
			if d, err := time.ParseDuration(m[1]); err == nil && d >= time.Second {
				n, _ := strconv.ParseFloat(m[2], 64)
				execs += fmt.Sprintf(" (%s/s)", group(strconv.Itoa(int(n/d.Seconds()))))
			}
			corpus = fmt.Sprintf("%s entries, %s new", group(m[5]), group(m[4]))
		} else if fr.baseline != "" {
			execs = "none: still " + fr.baseline
		}
		if fr.action == "fail" {
			status += ": " + strings.Join(fr.failure, "; ")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", name, pkgName(fr.pkg), cell(status), execs, corpus)
	}
	for _, t := range expected {
		row(t.name, t.pkg)
	}
	var others []string
	for name := range runs {
		if !seen[name] {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	for _, name := range others {
		row(name, "")
	}
	if len(expected) == 0 && len(runs) == 0 {
		b.WriteString("| (no fuzz run given) |  | did not run |  |  |\n")
	}
	return b.String(), ok
}

// module is left off package paths in the fuzzing table.
const module = "github.com/banwatch/banwatch"

// pkgName is a package's path in the repository ("." for the root).
func pkgName(pkg string) string {
	if pkg == module {
		return "."
	}
	return strings.TrimPrefix(pkg, module+"/")
}

// group writes a decimal number with thousands separators.
func group(n string) string {
	for i := len(n) - 3; i > 0; i -= 3 {
		n = n[:i] + "," + n[i:]
	}
	return n
}
