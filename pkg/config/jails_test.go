package config

import (
	"fmt"
	"github.com/banwatch/banwatch/internal/testutil"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/event"
)

// firstLine returns the text after prefix on a file's first line.
func firstLine(t *testing.T, path, prefix string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("%s: first line must start with %q", path, prefix)
	}
	return strings.TrimPrefix(line, prefix)
}

// withJailFile makes a configuration directory holding one jail file.
func withJailFile(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "jails"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jails", filepath.Base(src)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Each file in testdata/invalid starts with "# error: " and the start of
// the error it must produce (file names relative to the jails folder).
func TestLoadInvalidJails(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.toml")
	if len(files) == 0 {
		t.Fatal("no test files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := firstLine(t, f, "# error: ")
			dir := withJailFile(t, f)
			_, err := Load(dir)
			if err == nil {
				t.Fatalf("Load accepted it; want error %q", want)
			}
			got := strings.ReplaceAll(err.Error(), filepath.Join(dir, "jails")+"/", "")
			if !strings.Contains(got, want) {
				t.Errorf("error:\n  %s\nwant it to contain:\n  %s", got, want)
			}
		})
	}
}

// Each file in testdata/valid starts with "# JAIL: key=value ..." naming
// what the merged jail must hold.
func TestLoadValidJails(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.toml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			head := firstLine(t, f, "# ")
			name, wants, _ := strings.Cut(head, ": ")
			cfg, err := Load(withJailFile(t, f))
			if err != nil {
				t.Fatal(err)
			}
			j := cfg.Jail(name)
			if j == nil {
				t.Fatalf("no jail %q", name)
			}
			for _, kv := range strings.Fields(wants) {
				k, v, _ := strings.Cut(kv, "=")
				var got string
				switch {
				case k == "max_strikes":
					got = fmt.Sprint(j.MaxStrikes)
				case k == "ban_time":
					got = FormatDuration(j.BanTime)
				case k == "logs":
					got = strings.Join(j.Logs, ",")
				case k == "ports":
					got = strings.Trim(strings.ReplaceAll(fmt.Sprint(j.Ports), " ", ","), "[]")
				case strings.HasPrefix(k, "weights."):
					got = fmt.Sprint(j.Weight(event.Kind(strings.TrimPrefix(k, "weights."))))
				default:
					t.Fatalf("test knows no key %q", k)
				}
				if got != v {
					t.Errorf("%s = %s, want %s", k, got, v)
				}
			}
		})
	}
}

func TestShippedJails(t *testing.T) {
	cfg, err := Load(filepath.Join(t.TempDir(), "absent"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"postfix", "exim", "icewarp", "dovecot", "sshd"} {
		j := cfg.Jail(name)
		if j == nil {
			t.Errorf("no shipped jail %q", name)
			continue
		}
		if j.Enabled != EnabledAuto || len(j.Logs) == 0 || len(j.Ports) == 0 {
			t.Errorf("%s: enabled=%s logs=%v ports=%v", name, j.Enabled, j.Logs, j.Ports)
		}
		if j.BanTime != 7*24*time.Hour || j.Weight(event.AuthSuccess) != 0 || j.Weight(event.AuthFailure) != 1 {
			t.Errorf("%s: ban_time=%s weights=%v", name, j.BanTime, j.Weights)
		}
		if cfg.Filters[j.Filter] == nil {
			t.Errorf("%s: filter %q missing", name, j.Filter)
		}
	}
	if cfg.Daemon.StateDir != DefaultStateDir || cfg.Daemon.Firewall != "nftables" || cfg.Daemon.Table != "banwatch" {
		t.Errorf("daemon defaults: %+v", cfg.Daemon)
	}
}

func TestDaemonFile(t *testing.T) {
	cases := []struct{ doc, err string }{
		{"[daemon]\nstate_dir = \"/srv/bw\"\nfirewall = \"log\"\nignore = [\"192.0.2.0/24\", \"2001:db8::1\"]\nmemory_limit = \"512MiB\"\n", ""},
		{"[daemon]\nfirewall = \"iptables\"\n", `banwatch.toml:2: daemon.firewall: "iptables": want "nftables" or "log"`},
		{"[daemon]\nstate_dir = \"var/lib\"\n", "banwatch.toml:2: daemon.state_dir: must be an absolute path"},
		{"[daemon]\n\nsocket_mode = 1\n", "banwatch.toml:3: daemon.socket_mode: unknown key"},
		{"[daemon]\nignore = [\"10.0.0.300\"]\n", `banwatch.toml:2: daemon.ignore: "10.0.0.300" is not an address`},
		{"[daemon]\nhistory = \"1y\"\n", `banwatch.toml:2: daemon.history: bad duration "1y"`},
		{"[daemon]\nnft_table = \"a b\"\n", `banwatch.toml:2: daemon.nft_table: "a b": want a name`},
		{"[daemon]\nsocket_group = \"no-such-group-here\"\n", `banwatch.toml:2: daemon.socket_group: no group "no-such-group-here"`},
		{"[daemon]\nmetrics = \"9631\"\n", `banwatch.toml:2: daemon.metrics: "9631": want HOST:PORT`},
		{"[daemon]\nmetrics = \"127.0.0.1:http\"\n", `banwatch.toml:2: daemon.metrics: "127.0.0.1:http": the port must be a number`},
		{"[daemon]\nmetrics = \"127.0.0.1:70000\"\n", `daemon.metrics: "127.0.0.1:70000": the port must be a number`},
		{"[daemon]\nmetrics = \"example.org:9631\"\n", `daemon.metrics: "example.org:9631": the host must be an IP address or localhost`},
		{"[daemon]\nmemory_limit = \"512MB\"\n", `banwatch.toml:2: daemon.memory_limit: "512MB": want a size such as 512MiB`},
		{"[daemon]\nmemory_limit = \"1MiB\"\n", `banwatch.toml:2: daemon.memory_limit: "1MiB": want at least 64MiB`},
	}
	for _, c := range cases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "banwatch.toml"), []byte(c.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(dir)
		if c.err == "" {
			if err != nil {
				t.Errorf("%q: %v", c.doc, err)
				continue
			}
			if cfg.Daemon.StateDir != "/srv/bw" || cfg.Daemon.Firewall != "log" || len(cfg.Daemon.Ignore) != 2 ||
				cfg.Daemon.Ignore[1].Bits() != 128 || cfg.Daemon.MemoryLimit != 512<<20 {
				t.Errorf("decoded %+v", cfg.Daemon)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q accepted; want %q", c.doc, c.err)
			continue
		}
		if got := strings.ReplaceAll(err.Error(), dir+"/", ""); !strings.Contains(got, c.err) {
			t.Errorf("%q:\n  got  %s\n  want %s", c.doc, got, c.err)
		}
	}
}

// The metrics address: off by default, any IP address or localhost.
func TestMetricsAddress(t *testing.T) {
	for doc, want := range map[string]string{
		"":                           "",
		"[daemon]\nmetrics = \"\"\n": "",
		"[daemon]\nmetrics = \"127.0.0.1:9631\"\n": "127.0.0.1:9631",
		"[daemon]\nmetrics = \"[::1]:9631\"\n":     "[::1]:9631",
		"[daemon]\nmetrics = \":9631\"\n":          ":9631",
		"[daemon]\nmetrics = \"localhost:9631\"\n": "localhost:9631",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "banwatch.toml"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(dir)
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if cfg.Daemon.Metrics != want {
			t.Errorf("%q: metrics %q, want %q", doc, cfg.Daemon.Metrics, want)
		}
	}
}

// A jail may read the journal instead of files: logs = [] and journal
// matches; journal_directory points journalctl elsewhere.
func TestJournalJail(t *testing.T) {
	dir := t.TempDir()
	testutil.WriteFile(t, filepath.Join(dir, "banwatch.toml"), "[daemon]\njournal_directory = \"/srv/journal\"\n")
	testutil.WriteFile(t, filepath.Join(dir, "jails", "j.toml"),
		"[postfix]\nenabled = true\nlogs = []\njournal = [\"_SYSTEMD_UNIT=postfix@-.service\", \"+\", \"SYSLOG_IDENTIFIER=postfix/smtpd\"]\n")
	cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Daemon.JournalDirectory != "/srv/journal" {
		t.Errorf("journal_directory %q", cfg.Daemon.JournalDirectory)
	}
	for _, j := range cfg.Jails {
		if j.Name != "postfix" {
			continue
		}
		want := []string{"_SYSTEMD_UNIT=postfix@-.service", "+", "SYSLOG_IDENTIFIER=postfix/smtpd"}
		if len(j.Logs) != 0 || strings.Join(j.Journal, " ") != strings.Join(want, " ") {
			t.Errorf("logs %q, journal %q; want none and %q", j.Logs, j.Journal, want)
		}
		return
	}
	t.Fatal("no postfix jail")
}

func TestLocalJailDefinedTwice(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "jails"), 0o755)
	os.WriteFile(filepath.Join(dir, "jails", "a.toml"), []byte("[postfix]\nmax_strikes = 3\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "jails", "b.toml"), []byte("\n[postfix]\nmax_strikes = 4\n"), 0o644)
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "b.toml:2: postfix: jail defined again (also in "+filepath.Join(dir, "jails", "a.toml")) {
		t.Fatalf("got %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"10m", 10 * time.Minute, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1w2d", 9 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"90s", 90 * time.Second, true},
		{"", 0, false},
		{"7", 0, false},
		{"d", 0, false},
		{"-1h", 0, false},
		{"1y", 0, false},
	}
	for _, c := range cases {
		got, err := ParseDuration(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
	for _, d := range []time.Duration{36 * time.Hour, 7 * 24 * time.Hour, 10 * time.Minute, 25*time.Hour + 30*time.Minute} {
		back, err := ParseDuration(FormatDuration(d))
		if err != nil || back != d {
			t.Errorf("FormatDuration(%v) = %q, reads back as %v, %v", d, FormatDuration(d), back, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512MiB", 512 << 20, true},
		{"1GiB", 1 << 30, true},
		{"64 KiB", 64 << 10, true},
		{"1000", 1000, true},
		{"10B", 10, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"1.5GiB", 0, false},
		{"-1MiB", 0, false},
		{"512MB", 0, false},
		{"99999999999GiB", 0, false},
	}
	for _, c := range cases {
		got, err := ParseSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestShippedBotnetDefences(t *testing.T) {
	cfg, err := Load(filepath.Join(t.TempDir(), "absent"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"postfix", "exim"} {
		j := cfg.Jail(name)
		if fmt.Sprint(j.Instant.HELO, j.Instant.Events) != "[ylmf-pc] [pregreet]" || !j.Learn.HELO || !j.Learn.User ||
			j.Learn.Distinct != 5 || j.Learn.Window != time.Hour || j.Escalate.Factor != 2 || j.Escalate.Max != 90*24*time.Hour ||
			j.Subnet.V4 != 24 || j.Subnet.V6 != 64 || j.Subnet.Bans != 3 || j.Trust != 30*24*time.Hour {
			t.Errorf("%s: %+v", name, j)
		}
	}
	// A local file turns one defence off, key by key.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "jails"), 0o755)
	os.WriteFile(filepath.Join(dir, "jails", "local.toml"), []byte("[postfix.subnet]\nbans = 1\n"), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "bans: 1: want 2 to 1000") {
		t.Errorf("bans = 1: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "jails", "local.toml"), []byte("[postfix.subnet]\nbans = 0\n"), 0o644)
	cfg, err = Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if j := cfg.Jail("postfix"); j.Subnet.Bans != 0 || j.Subnet.V4 != 24 || j.Learn.Distinct != 5 {
		t.Errorf("after the local override: %+v", j)
	}
}

// The example banwatch.toml that make install and the package put in
// /etc/banwatch loads as it is, and with every commented-out setting
// turned on.
func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile("../../contrib/etc/banwatch.toml")
	if err != nil {
		t.Fatal(err)
	}
	setting := regexp.MustCompile(`(?m)^#(\[.*\]|[a-z_]+ = .*)$`)
	if n := len(setting.FindAll(data, -1)); n < 9 {
		t.Fatalf("%d commented settings in the example; want every [daemon] key", n)
	}
	for _, doc := range []string{string(data), setting.ReplaceAllString(string(data), "$1")} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "banwatch.toml"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err != nil {
			t.Errorf("%v\n%s", err, doc)
		}
	}
}
