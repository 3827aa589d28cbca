// Package fail2bantest makes fail2ban databases for tests with fail2ban's
// own code: Debian's python3 runs fail2ban.server.database.Fail2BanDb and
// adds jails and ban tickets through its API, as fail2ban-server does. Tests
// skip with a message where python3 or the fail2ban module is missing.
package fail2bantest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

//go:embed mkdb.py
var script string

// Ban is one ban to add: fail2ban's ticket for IP in Jail at Time, with
// BanTime seconds (-1 permanent; nil leaves the ticket's unset, so that the
// jail's default of 600 s is stored) and Count.
type Ban struct {
	Jail    string `json:"jail"`
	IP      string `json:"ip"`
	Time    int64  `json:"time"`
	BanTime *int64 `json:"bantime"`
	Count   int    `json:"count"`
}

// Seconds returns a *int64 for Ban.BanTime.
func Seconds(d time.Duration) *int64 {
	s := int64(d / time.Second)
	return &s
}

// Permanent is fail2ban's bantime of a ban it never lifts.
var Permanent = func() *int64 { v := int64(-1); return &v }()

// python returns the interpreter that has Debian's fail2ban module, or
// skips t. Debian's is /usr/bin/python3; another python3 earlier in PATH
// (pyenv, a virtualenv) does not see /usr/lib/python3/dist-packages.
func python(t testing.TB) string {
	t.Helper()
	var cands []string
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	cands = append([]string{"/usr/bin/python3"}, cands...)
	for _, p := range cands {
		if exec.Command(p, "-c", "import fail2ban.server.database, fail2ban.tests.dummyjail").Run() == nil {
			return p
		}
	}
	t.Skip("needs python3 with the fail2ban module (Debian: fail2ban; make deps installs it)")
	return ""
}

// Create adds bans to the fail2ban database at path, creating it (with
// fail2ban's current schema) if missing.
func Create(t testing.TB, path string, bans []Ban) {
	t.Helper()
	run(t, map[string]any{"db": path, "bans": bans})
}

// Upgrade opens the database at path with fail2ban, which upgrades an
// older schema as fail2ban-server does at start.
func Upgrade(t testing.TB, path string) {
	t.Helper()
	run(t, map[string]any{"db": path})
}

func run(t testing.TB, spec map[string]any) {
	t.Helper()
	py := python(t)
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("fail2ban's Fail2BanDb: %v\n%s%s", err, out, stderr.Bytes())
	}
}

// OldDB copies one of the older-schema databases that Debian's fail2ban
// package ships with its own tests (database_v1.db: schema 1, fail2ban
// 0.9; database_v2.db: schema 2, 0.10), made by those fail2ban versions,
// to dir and returns the copy's path. It skips t when they are absent.
func OldDB(t testing.TB, name, dir string) string {
	t.Helper()
	py := python(t)
	out, err := exec.Command(py, "-c", "import fail2ban.tests, os; print(os.path.dirname(fail2ban.tests.__file__))").Output()
	if err != nil {
		t.Skipf("fail2ban's tests are not installed: %v", err)
	}
	src := filepath.Join(string(bytes.TrimSpace(out)), "files", name)
	in, err := os.Open(src)
	if err != nil {
		t.Skipf("fail2ban's test database %s is not installed (Debian: fail2ban): %v", name, err)
	}
	defer in.Close()
	dst := filepath.Join(dir, name)
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, in); err != nil {
		t.Fatal(err)
	}
	return dst
}
