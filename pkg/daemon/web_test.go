package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// webURL is the page's address as the daemon logged it.
var webURL = regexp.MustCompile(`msg="history page ready" component=web url=(http://\S+/) auth=(true|false)`)

func (e *testEnv) webGet(url, user, password string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

// With [web] the daemon serves the history page, behind its password: the
// ban it makes is on it. A reload that changes [web] keeps the running
// page.
func TestWebPage(t *testing.T) {
	e := newEnv(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web := fmt.Sprintf("[web]\nlisten = \"127.0.0.1:0\"\nuser = \"admin\"\npassword_hash = %q\n", hash)
	e.setDaemon(web)
	stop := e.start()
	defer stop()
	m := webURL.FindStringSubmatch(e.logBuf.String())
	if m == nil || m[2] != "true" {
		t.Fatalf("no history page in the log:\n%s", e.logBuf)
	}
	page := m[1]
	e.appendLines(failures("203.0.113.7", 5)...)
	b := e.waitBanned("203.0.113.7")

	if code, _ := e.webGet(page, "", ""); code != http.StatusUnauthorized {
		t.Errorf("without a password: %d", code)
	}
	if code, _ := e.webGet(page, "admin", "s3cret"); code != http.StatusUnauthorized {
		t.Errorf("with a wrong password: %d", code)
	}
	// The charts are read at each request (the active bans are counted at
	// most every 10 s: the count may be the one from before the ban).
	code, body := e.webGet(page, "admin", "s3cret-pw")
	if code != http.StatusOK || !strings.Contains(body, `<div class="card" id="active" data-total=`) ||
		!strings.Contains(body, `data-chart="bans" data-total="1"`) || !strings.Contains(body, `<li data-key="postfix" data-total="1">`) {
		t.Errorf("overview: %d, without the ban:\n%s", code, body)
	}
	if strings.Contains(body, `<p class="warn">not available now`) {
		t.Error("the learned fingerprints cannot be read")
	}
	code, body = e.webGet(page+"history", "admin", "s3cret-pw")
	if want := fmt.Sprintf(`<tr data-id="%d" data-addr="203.0.113.7" data-jail="postfix" data-ended="active">`, b.ID); code != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("history: %d, without %s", code, want)
	}
	code, body = e.webGet(fmt.Sprintf("%sban/%d", page, b.ID), "admin", "s3cret-pw")
	if code != http.StatusOK || strings.Count(body, "SASL LOGIN authentication failed") != 5 {
		t.Errorf("the ban's page: %d, without its 5 evidence lines", code)
	}

	// A reload that moves the page keeps it where it is.
	e.setDaemon("[web]\nlisten = \"127.0.0.1:0\"\n")
	if err := e.client().Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.logBuf.String(), `msg="[web] changes only with a restart; keeping the running history page"`) {
		t.Errorf("no warning of the [web] kept:\n%s", e.logBuf)
	}
	if code, _ := e.webGet(page, "", ""); code != http.StatusUnauthorized {
		t.Errorf("after the reload, without a password: %d", code)
	}
}

// A page beyond loopback without a password is served, with a warning;
// one on loopback gets none.
func TestWebWarnsBeyondLoopback(t *testing.T) {
	for _, c := range []struct {
		listen string
		warn   bool
	}{{"0.0.0.0:0", true}, {"127.0.0.1:0", false}} {
		t.Run(c.listen, func(t *testing.T) {
			e := newEnv(t)
			e.setDaemon(fmt.Sprintf("[web]\nlisten = %q\n", c.listen))
			stop := e.start()
			defer stop()
			warned := strings.Contains(e.logBuf.String(), "the history page listens beyond loopback without a password")
			if warned != c.warn {
				t.Errorf("warned %v, want %v:\n%s", warned, c.warn, e.logBuf)
			}
			m := webURL.FindStringSubmatch(e.logBuf.String())
			if m == nil {
				t.Fatalf("no history page in the log:\n%s", e.logBuf)
			}
			u, err := url.Parse(m[1])
			if err != nil {
				t.Fatal(err)
			}
			if code, _ := e.webGet("http://127.0.0.1:"+u.Port()+"/", "", ""); code != http.StatusOK {
				t.Errorf("status %d", code)
			}
		})
	}
}

// A [web] address that cannot be listened on stops the daemon at start.
func TestWebListenFails(t *testing.T) {
	e := newEnv(t)
	e.setDaemon("[web]\nlisten = \"192.0.2.1:8425\"\n") // an address of no interface here
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.cfg.Daemon.StateDir = filepath.Join(t.TempDir(), "state")
	err := Run(ctx, Options{Config: e.cfg})
	if err == nil || !strings.Contains(err.Error(), "daemon: web: listen tcp 192.0.2.1:8425") {
		t.Errorf("Run: %v", err)
	}
}
