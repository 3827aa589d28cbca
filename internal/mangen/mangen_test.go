package mangen

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "write the manual pages and completions (make man)")

const root = "../.."

// pages are the sources and where their roff goes.
var pages = []struct{ src, out string }{
	{"cmd/banwatchd/banwatchd.8.md", "man/banwatchd.8"},
	{"cmd/banctl/banctl.8.md", "man/banctl.8"},
	{"pkg/config/banwatch.toml.5.md", "man/banwatch.toml.5"},
}

// golden compares data with the file at path, or writes it with -update.
func golden(t *testing.T, path string, data []byte) {
	t.Helper()
	path = filepath.Join(root, path)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run make man)", err)
	}
	if !bytes.Equal(have, data) {
		t.Errorf("%s is stale: run make man", path)
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The pages in man/ are their sources rendered, and groff formats each
// without a warning.
func TestPages(t *testing.T) {
	for _, p := range pages {
		page, err := Render(read(t, p.src))
		if err != nil {
			t.Fatalf("%s: %v", p.src, err)
		}
		if want := filepath.Base(p.out); page.Name+"."+page.Section != want {
			t.Errorf("%s: page %s(%s), want %s", p.src, page.Name, page.Section, want)
		}
		golden(t, p.out, page.Roff)
		if _, err := exec.LookPath("groff"); err != nil {
			continue
		}
		cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = bytes.NewReader(page.Roff)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff on %s: %v\n%s", p.out, err, out)
		}
	}
}

// The completions are banctl's page's commands and options.
func TestCompletions(t *testing.T) {
	cmds, global := Commands(read(t, "cmd/banctl/banctl.8.md"))
	bash := Bash("banctl", cmds, global)
	golden(t, "contrib/completion/banctl.bash", bash)
	golden(t, "contrib/completion/_banctl", Zsh("banctl", cmds, global))
	golden(t, "contrib/completion/banctl.fish", Fish("banctl", cmds, global))
	if _, err := exec.LookPath("bash"); err == nil {
		// The script parses, and completes "banctl li" and "banctl list --j".
		script := string(bash) + `
COMP_WORDS=(banctl li); COMP_CWORD=1; _banctl; echo "${COMPREPLY[*]}"
COMP_WORDS=(banctl list --j); COMP_CWORD=2; _banctl; echo "${COMPREPLY[*]}"
COMP_WORDS=(banctl import f); COMP_CWORD=2; _banctl; echo "${COMPREPLY[*]}"
`
		out, err := exec.Command("bash", "-c", script).CombinedOutput()
		if err != nil || string(out) != "list\n--jail --json\nfail2ban\n" {
			t.Errorf("bash completion: %v\n%s", err, out)
		}
	}
	if _, err := exec.LookPath("fish"); err == nil {
		// fish completes from the script the same command lines.
		fish := filepath.Join(root, "contrib/completion/banctl.fish")
		script := "source " + fish + `; complete -C "banctl li"; complete -C "banctl list --j"; complete -C "banctl import f"`
		out, err := exec.Command("fish", "--no-config", "-c", script).CombinedOutput()
		got := strings.Fields(string(out))
		if err != nil || strings.Join(got, " ") != "list --jail --json fail2ban" {
			t.Errorf("fish completion: %v\n%s", err, out)
		}
	}
	if _, err := exec.LookPath("zsh"); err == nil {
		// zsh's completion system needs a terminal; the script must parse.
		if out, err := exec.Command("zsh", "-n", filepath.Join(root, "contrib/completion/_banctl")).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v\n%s", err, out)
		}
	}
}

// banctl's page lists every command banctl has, with the options each
// takes (from `banctl CMD --help` of the real binary), and banwatchd's
// page every flag.
func TestPagesAreComplete(t *testing.T) {
	if testing.Short() {
		t.Skip("builds banctl: skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "banctl")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/banctl").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmds, global := Commands(read(t, "cmd/banctl/banctl.8.md"))
	documented := map[string][]string{}
	for _, c := range cmds {
		documented[c.Words[0]] = options(c, global)
	}
	// The commands banctl dispatches: its main.go's switch.
	dispatch := regexp.MustCompile(`(?m)^\tcase "([a-z-]+)":`).FindAllStringSubmatch(string(read(t, "cmd/banctl/main.go")), -1)
	if len(dispatch) < 10 {
		t.Fatalf("found %d commands in cmd/banctl/main.go", len(dispatch))
	}
	flagRE := regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)
	for _, m := range dispatch {
		name := m[1]
		if name == "help" || name == "-h" || name == "--help" || name == "version" {
			continue
		}
		doc, ok := documented[name]
		if !ok {
			t.Errorf("banctl %s is not in banctl.8.md", name)
			continue
		}
		out, _ := exec.Command(bin, name, "--help").CombinedOutput()
		var have []string
		for _, f := range flagRE.FindAllStringSubmatch(string(out), -1) {
			have = append(have, "--"+f[1])
		}
		sort.Strings(have)
		sort.Strings(doc)
		if strings.Join(have, " ") != strings.Join(doc, " ") {
			t.Errorf("banctl %s takes %v, its page says %v", name, have, doc)
		}
	}
	src := string(read(t, "cmd/banwatchd/banwatchd.8.md"))
	for _, m := range regexp.MustCompile(`fs\.(?:String|Bool|Int|Duration)\("([a-z-]+)"`).FindAllStringSubmatch(string(read(t, "cmd/banwatchd/main.go")), -1) {
		if !strings.Contains(src, "**--"+m[1]+"**") {
			t.Errorf("banwatchd --%s is not in banwatchd.8.md", m[1])
		}
	}
}

// banwatch.toml(5) names every key the configuration takes: those of
// [daemon], [notify], [cluster] and of jails, as pkg/config's unknown-key
// errors list them.
func TestConfigPageIsComplete(t *testing.T) {
	page := string(read(t, "pkg/config/banwatch.toml.5.md"))
	load := string(read(t, "pkg/config/load.go"))
	var keys []string
	if m := regexp.MustCompile(`known in \[daemon\]: ([a-z_, ]+)\)`).FindStringSubmatch(load); m != nil {
		keys = append(keys, strings.Split(m[1], ", ")...)
	} else {
		t.Fatal("no [daemon] key list in load.go")
	}
	if m := regexp.MustCompile(`const jailKeyList = "([^"]+)" \+\n\s*"([^"]+)" \+\n\s*"([^"]+)"`).FindStringSubmatch(load); m != nil {
		for _, part := range m[1:] {
			for _, k := range strings.Split(part, ",") {
				k = strings.TrimSpace(k)
				if k == "" {
					continue
				}
				// "instant (helo, user, events)": the table and its keys.
				k = strings.NewReplacer("(", " ", ")", " ").Replace(k)
				keys = append(keys, strings.Fields(k)...)
			}
		}
	} else {
		t.Fatal("no jailKeyList in load.go")
	}
	notify := string(read(t, "pkg/config/notify.go"))
	if m := regexp.MustCompile(`const notifyKeyList = "([^"]+)"`).FindStringSubmatch(notify); m != nil {
		keys = append(keys, strings.Fields(strings.NewReplacer(",", " ", "(", " ", ")", " ").Replace(m[1]))...)
	} else {
		t.Fatal("no notifyKeyList in notify.go")
	}
	for _, l := range []struct{ file, name string }{{"cluster.go", "clusterKeyList"}, {"web.go", "webKeyList"}} {
		src := string(read(t, "pkg/config/"+l.file))
		if m := regexp.MustCompile(`const ` + l.name + ` = "([^"]+)"`).FindStringSubmatch(src); m != nil {
			keys = append(keys, strings.Fields(strings.ReplaceAll(m[1], ",", " "))...)
		} else {
			t.Fatalf("no %s in %s", l.name, l.file)
		}
	}
	for _, k := range keys {
		if !strings.Contains(page, "`"+k+"`") && !strings.Contains(page, "."+k+"]") {
			t.Errorf("key %s is not in banwatch.toml.5.md", k)
		}
	}
}

func TestRender(t *testing.T) {
	src := "% x 1 2026-01-01\n# NAME\nx - a *test* of `s*.log` and **bold**\n\n+ **--flag** *V*\n  what -it- does\n- item\n```\n.dot \\ back\n```\n"
	page, err := Render([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := `.TH X 1 2026-01-01 banwatch
.SH NAME
.PP
x \- a \fItest\fR of \fBs*.log\fR and \fBbold\fR
.TP
\fB\-\-flag\fR \fIV\fR
what \-it\- does
.IP \(bu 2
item
.PP
.RS 4
.nf
\&.dot \e back
.fi
.RE
`
	if string(page.Roff) != want {
		t.Errorf("got\n%s\nwant\n%s", page.Roff, want)
	}
	for _, bad := range []string{"", "x 1\n", "% x 1 d\n```\nopen\n"} {
		if _, err := Render([]byte(bad)); err == nil {
			t.Errorf("%q rendered", bad)
		}
	}
}
