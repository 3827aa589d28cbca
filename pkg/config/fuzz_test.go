package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad loads hostile banwatch.toml and jail files: Load never panics,
// and every error it reports names the file it comes from (and the line,
// where the file could be parsed), the way an admin is shown them.
func FuzzLoad(f *testing.F) {
	f.Add("[daemon]\nstate_dir = \"/srv/bw\"\nfirewall = \"log\"\n", "[postfix]\nenabled = true\nlogs = [\"/var/log/mail.log\"]\n")
	f.Add("[daemon]\nmetrics = \"127.0.0.1:9631\"\njournal_directory = \"/var/log/journal\"\n", "[postfix]\nlogs = []\njournal = [\"_SYSTEMD_UNIT=postfix@-.service\", \"+\", \"SYSLOG_IDENTIFIER=x\"]\n")
	f.Add("[[notify.webhook]]\nurl = \"https://chat.example.org/hooks/x\"\nevents = [\"ban\"]\nheaders = { Authorization = \"Bearer x\" }\n", "")
	f.Add("[cluster]\npostgres = \"postgres://bw:pw@db:5432,db2/banwatch?sslmode=verify-full\"\nnode = \"mx1\"\nbatch = \"1s\"\ncert_file = \"/c.pem\"\n", "")
	f.Add("[cluster]\npostgres = \"host=/run/postgresql password='a \\\\' b' port=1,2\"\nshare_strikes = true\n", "")
	f.Add("", "[custom]\nfilter = \"postfix\"\nlogs = [\"/x/s*.log\"]\nmax_strikes = 0\n[custom.subnet]\nv4 = 33\n")
	f.Add("[daemon\n", "[postfix]\nweights = { bad_helo = -1 }\n[postfix.instant]\nevents = [\"nope\"]\n")
	f.Fuzz(func(t *testing.T, daemon, jails string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "banwatch.toml"), []byte(daemon), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "jails"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "jails", "local.toml"), []byte(jails), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		if err == nil {
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.Contains(line, filepath.Join(dir, "banwatch.toml")) && !strings.Contains(line, filepath.Join(dir, "jails", "local.toml")) &&
				!strings.Contains(line, "jails/") {
				t.Fatalf("an error line names no file: %q\nall: %v", line, err)
			}
		}
	})
}
