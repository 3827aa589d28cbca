// Command reliability writes docs/reliability.md from the `go test -json`
// output of the reliability tests (`make soak` runs them and then this):
// a table of every fault issue 10 names, the test that makes it, the
// test's result and time, and the figures the test logged.
//
//	go test -json -run 'TestChaosKill|...' ./cmd/banwatchd -args -chaos-cycles 50 > soak.json
//	go run ./bench/reliability -in soak.json -o docs/reliability.md -command "make soak"
//
// It exits 1 when a listed test failed or did not run (the document is
// written anyway, saying so).
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
	b.WriteString("a one-minute soak instead of ten, the fuzz targets' seed corpora and short runs instead of `make fuzz`'s five minutes each.\n\n")
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
