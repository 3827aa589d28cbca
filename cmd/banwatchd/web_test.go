package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"html"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/daemon"
	"github.com/banwatch/banwatch/pkg/store"
	"github.com/banwatch/banwatch/pkg/web/webtest"
)

// chromiumBin is Debian's chromium, which `make deps` installs.
const chromiumBin = "/usr/bin/chromium"

// webAddr is the history page's address inside the test's namespace.
const webAddr = "127.0.0.1:8425"

// chromium runs headless Chromium in e's namespace with a fresh profile,
// and returns its standard output.
func (e *env) chromium(args ...string) []byte {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"netns", "exec", e.ns.name, chromiumBin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--no-first-run", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + e.t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Env = append(os.Environ(), "HOME="+e.t.TempDir())
	// Chromium's own processes go with it when the time is up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// dumpDOM is the page at path as Chromium built it.
func (e *env) dumpDOM(path string) string {
	e.t.Helper()
	return string(e.chromium("--dump-dom", "http://"+webAddr+path))
}

// webGet requests path from the page in e's namespace.
func (e *env) webGet(path, user, password string) (int, string) {
	e.t.Helper()
	var code int
	var body string
	e.ns.do(e.t, func() {
		c, err := net.DialTimeout("tcp", webAddr, 5*time.Second)
		if err != nil {
			e.t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		req, err := http.NewRequest("GET", "http://"+webAddr+path, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Close = true
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		if err := req.Write(c); err != nil {
			e.t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			e.t.Fatal(err)
		}
		defer res.Body.Close()
		var sb strings.Builder
		if _, err := bufio.NewReader(res.Body).WriteTo(&sb); err != nil {
			e.t.Fatal(err)
		}
		code, body = res.StatusCode, sb.String()
	})
	return code, body
}

// setWeb writes banwatch.toml again, as newEnv did, with a [web] table.
func (e *env) setWeb(web string) {
	e.t.Helper()
	writeFile(e.t, filepath.Join(e.dir, "banwatch.toml"), fmt.Sprintf("[daemon]\nstate_dir = %q\nsocket = %q\n\n[web]\n%s",
		e.state, filepath.Join(e.dir, "banwatch.sock"), web))
}

var (
	domRect = regexp.MustCompile(`<rect [^>]*data-hour="([^"]+)" data-key="([^"]*)" data-n="(\d+)"`)
	domRow  = regexp.MustCompile(`<tr data-id="(\d+)" data-addr="([^"]+)" data-jail="([^"]+)" data-ended="([^"]+)">`)
	domAttr = func(name string) *regexp.Regexp { return regexp.MustCompile(` ` + name + `="([^"]*)"`) }
)

// section returns the part of dom from the element holding marker to the
// end of its chart, list or table.
func section(t *testing.T, dom, marker, end string) string {
	t.Helper()
	i := strings.Index(dom, marker)
	if i < 0 {
		t.Fatalf("no %q in the page", marker)
	}
	j := strings.Index(dom[i:], end)
	if j < 0 {
		t.Fatalf("no %q after %q", end, marker)
	}
	return dom[i : i+j]
}

// tagAttr returns attribute name of the tag that starts at marker.
func tagAttr(t *testing.T, dom, marker, name string) string {
	t.Helper()
	tag := section(t, dom, marker, ">")
	m := domAttr(name).FindStringSubmatch(tag)
	if m == nil {
		t.Fatalf("%s has no %s", tag, name)
	}
	return html.UnescapeString(m[1])
}

// TestWebPage runs banwatchd with [web] on a store holding a generated
// week of bans and loads the page in headless Chromium: the charts, top
// lists, history and evidence show the numbers written, the attackers'
// text as text; a screenshot goes to the test's artifacts (go test
// -artifacts keeps it). Then with basic authentication: 401 without the
// password, 200 with it.
func TestWebPage(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(chromiumBin); err != nil {
		t.Skipf("needs %s (Debian: chromium; `make deps` installs it)", chromiumBin)
	}
	e := newEnv(t, newNetns(t), "")
	e.setWeb(fmt.Sprintf("listen = %q\n", webAddr))

	// The history, written before the daemon starts.
	st, err := store.Open(context.Background(), filepath.Join(e.state, daemon.DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := webtest.Write(context.Background(), st, webtest.Spec{Now: time.Now(), Bans: 4000, Strikes: 3000, Evidence: 2, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	firstPage, err := st.HistoryPage(context.Background(), store.PageQuery{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	d := e.start()
	// The top lists are computed in the background as the page starts.
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := e.webGet("/", "", "")
		if code == http.StatusOK && strings.Contains(body, `id="top-addrs"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no top lists within a minute: %d\n%s\n%s", code, body, d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}

	dom := e.dumpDOM("/")
	// Every bar segment of the bans chart is an hour and jail written.
	type seg struct {
		hour, jail string
		n          int
	}
	var got, want []seg
	for _, m := range domRect.FindAllStringSubmatch(section(t, dom, `id="chart-bans"`, "</figure>"), -1) {
		n, _ := strconv.Atoi(m[3])
		got = append(got, seg{m[1], m[2], n})
	}
	for hour, jails := range h.Hours {
		for j, n := range jails {
			want = append(want, seg{hour.Format(time.RFC3339), j, n})
		}
	}
	cmpSeg := func(a, b seg) int { return strings.Compare(a.hour+" "+a.jail, b.hour+" "+b.jail) }
	slices.SortFunc(got, cmpSeg)
	slices.SortFunc(want, cmpSeg)
	if !slices.Equal(got, want) {
		t.Errorf("bans chart: %d segments, want %d", len(got), len(want))
	}
	events := 0
	for _, m := range domRect.FindAllStringSubmatch(section(t, dom, `id="chart-events"`, "</figure>"), -1) {
		n, _ := strconv.Atoi(m[3])
		events += n
	}
	for _, c := range []struct{ got, want string }{
		{tagAttr(t, dom, `<svg viewBox`, "data-total"), "4000"},
		{tagAttr(t, dom, `<div class="card" id="week"`, "data-total"), "4000"},
		{strconv.Itoa(events), "3000"},
		{tagAttr(t, section(t, dom, `id="chart-events"`, "</figure>"), `<svg viewBox`, "data-total"), "3000"},
		{tagAttr(t, dom, `<li data-key="postfix"`, "data-total"), strconv.Itoa(h.Jails["postfix"])},
	} {
		if c.got != c.want {
			t.Errorf("overview: %s, want %s", c.got, c.want)
		}
	}
	// The top lists' leaders, with their counts.
	for _, c := range []struct {
		list string
		want map[string]int
		key  string
	}{
		{"addrs", h.Addrs, webtest.TopAddr.String()},
		{"nets24", h.Nets24, webtest.Top24.String()},
		{"nets64", h.Nets64, webtest.Top64.String()},
	} {
		first := regexp.MustCompile(`<tr data-key="([^"]+)" data-n="(\d+)"`).FindStringSubmatch(section(t, dom, `id="top-`+c.list+`"`, "</table>"))
		if first == nil || first[1] != c.key || first[2] != strconv.Itoa(c.want[c.key]) {
			t.Errorf("top %s: %v, want %s with %d", c.list, first, c.key, c.want[c.key])
		}
	}
	if active := tagAttr(t, dom, `<div class="card" id="active"`, "data-total"); active == "0" {
		t.Error("no active bans shown")
	}

	// The history's first page: the newest bans, newest first.
	dom = e.dumpDOM("/history")
	rows := domRow.FindAllStringSubmatch(dom, -1)
	if len(rows) != len(firstPage) {
		t.Fatalf("history: %d rows, want %d", len(rows), len(firstPage))
	}
	for i, b := range firstPage {
		r := rows[i]
		if r[1] != strconv.FormatInt(b.ID, 10) || r[2] != ban.IP(b.Prefix) || r[3] != b.Jail ||
			!slices.Contains([]string{"active", ban.EndExpired, ban.EndUnbanned, ban.EndReplaced}, r[4]) {
			t.Errorf("history row %d: %v, want ban %d of %s in %s", i, r[1:], b.ID, ban.IP(b.Prefix), b.Jail)
		}
	}
	if firstPage[0].ID != h.Newest.ID {
		t.Errorf("the newest ban is %d, want %d", firstPage[0].ID, h.Newest.ID)
	}
	if !strings.Contains(dom, `id="older"`) {
		t.Error("no link to the older bans")
	}

	// The newest ban's evidence: the attacker's line is text, not markup.
	dom = e.dumpDOM(fmt.Sprintf("/ban/%d", h.Newest.ID))
	ev := section(t, dom, `<ol class="evidence"`, "</ol>")
	if n := strings.Count(ev, "<li>"); n != 3 {
		t.Errorf("%d evidence lines, want 3", n)
	}
	if !strings.Contains(ev, "authentication failed: &lt;script&gt;alert(1)&lt;/script&gt; from [1.2.3.4]</code>") {
		t.Errorf("the evidence does not show the attacker's text as text:\n%s", ev)
	}
	if strings.Contains(dom, "<script") {
		t.Error("the page holds a script element")
	}

	// The jail learns a fingerprint from five addresses; the page lists it.
	stamp := time.Now().Format(time.Stamp)
	var lines []string
	for i, a := range []string{"192.0.2.10", "198.51.100.10", "203.0.113.10", "2001:db8:aa::10", "2001:db8:bb::10"} {
		lines = append(lines, fmt.Sprintf("%s mx postfix/smtpd[%d]: NOQUEUE: reject: RCPT from unknown[%s]: 504 5.5.2 <WIN-CLJ1B0GQ6JP>: "+
			"Helo command rejected: need fully-qualified hostname; from=<a@example.org> to=<b@example.com> proto=ESMTP helo=<WIN-CLJ1B0GQ6JP>", stamp, 3000+i, a))
	}
	e.appendLines(lines...)
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, out, _ := e.banctl("fingerprints")
		if strings.Contains(out, "helo=win-clj1b0gq6jp") { // learned in lower case
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fingerprint learned within 10s: %s\n%s", out, d.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	dom = e.dumpDOM("/")
	if !strings.Contains(section(t, dom, `id="learned"`, "</div>"), `data-value="helo=win-clj1b0gq6jp"`) {
		t.Error("the learned fingerprint is not on the page")
	}

	shot := filepath.Join(t.ArtifactDir(), "web.png")
	e.chromium("--screenshot="+shot, "--window-size=1280,2400", "--hide-scrollbars", "http://"+webAddr+"/")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatalf("the screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 1000 {
		t.Errorf("the screenshot is %v", b)
	}
	colours := map[[4]uint32]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y && len(colours) < 50; y += 7 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 7 {
			r, g, b, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, b, a}] = true
		}
	}
	if len(colours) < 50 {
		t.Errorf("the screenshot has %d colours: blank?", len(colours))
	}
	t.Logf("screenshot: %s", shot)
	d.stop(t)

	// With a password: 401 without it, 200 with it.
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	e.setWeb(fmt.Sprintf("listen = %q\nuser = \"admin\"\npassword_hash = %q\n", webAddr, hash))
	d = e.start()
	defer d.stop(t)
	for _, c := range []struct {
		user, password string
		status         int
	}{{"", "", 401}, {"admin", "s3cret", 401}, {"root", "s3cret-pw", 401}, {"admin", "s3cret-pw", 200}} {
		code, body := e.webGet("/history", c.user, c.password)
		if code != c.status {
			t.Errorf("user %q password %q: %d, want %d", c.user, c.password, code, c.status)
		}
		if code == 401 && strings.Contains(body, "198.18.") {
			t.Errorf("a 401 shows the history")
		}
	}
}
