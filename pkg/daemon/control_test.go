package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
)

// These tests talk to an in-process daemon (log firewall, real SQLite)
// through its real control socket; the kernel side is in cmd/banwatchd's
// integration tests.

func (e *testEnv) client() *control.Client { return control.NewClient(e.cfg.Daemon.Socket) }

// wantRefusal checks that err is the daemon's answer status with msg in it.
func wantRefusal(t *testing.T, what string, err error, status int, msg string) {
	t.Helper()
	var ce *control.Error
	if !errors.As(err, &ce) || ce.Status != status || !strings.Contains(ce.Msg, msg) {
		t.Errorf("%s: %v, want %d %q", what, err, status, msg)
	}
}

// startWithClient starts a daemon on a fresh configuration and returns a
// client of its socket.
func startWithClient(t *testing.T) (*testEnv, *control.Client, func()) {
	e := newEnv(t)
	stop := e.start()
	return e, e.client(), stop
}

func listAll(t *testing.T, c *control.Client, jail, ip string) []control.Ban {
	t.Helper()
	var out []control.Ban
	if err := c.List(context.Background(), jail, ip, func(b *control.Ban, _ []byte) error {
		out = append(out, *b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestControlListBanUnbanHistory(t *testing.T) {
	e, c, stop := startWithClient(t)
	defer stop()
	ctx := context.Background()

	e.appendLines(failures("203.0.113.7", 5)...)
	e.waitBanned("203.0.113.7")
	got := listAll(t, c, "", "")
	if len(got) != 1 || got[0].IP != "203.0.113.7" || got[0].Prefix != "203.0.113.7/32" || got[0].Jail != "postfix" ||
		got[0].Strikes != 5 || got[0].Reason != "auth_failure" || got[0].Until.Sub(got[0].Since) != 7*24*time.Hour {
		t.Fatalf("list: %+v", got)
	}

	// A manual ban of a prefix, in the manual jail, for a day.
	bans, err := c.Ban(ctx, control.BanRequest{IP: "198.51.100.0/24", For: "1d", Reason: "scanner network"})
	if err != nil || len(bans) != 1 || bans[0].Jail != config.ManualJail || bans[0].Origin != ban.OriginManual ||
		bans[0].Until.Sub(bans[0].Since) != 24*time.Hour || bans[0].Reason != "scanner network" {
		t.Fatalf("ban: %+v, %v", bans, err)
	}
	if got := listAll(t, c, "", "198.51.100.9"); len(got) != 1 || got[0].IP != "198.51.100.0/24" {
		t.Errorf("list --ip inside the prefix: %+v", got)
	}
	if got := listAll(t, c, "postfix", ""); len(got) != 1 {
		t.Errorf("list --jail postfix: %+v", got)
	}

	// Unban, then the history shows both ends.
	ended, err := c.Unban(ctx, control.UnbanRequest{IP: "203.0.113.7"})
	if err != nil || len(ended) != 1 || ended[0].Ended != ban.EndUnbanned || !strings.HasPrefix(ended[0].EndedBy, "uid ") {
		t.Fatalf("unban: %+v, %v", ended, err)
	}
	if _, ok := e.active()["203.0.113.7"]; ok {
		t.Error("still active after unban")
	}
	var hist []control.Ban
	if err := c.History(ctx, "", "203.0.113.7", time.Time{}, 0, true, func(b *control.Ban, _ []byte) error {
		hist = append(hist, *b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].Ended != "unbanned" || len(hist[0].Evidence) != 5 {
		t.Errorf("history: %+v", hist)
	}
	// After the unban, the jail counts the address's strikes again.
	e.appendLines(failures("203.0.113.7", 5)...)
	e.waitBanned("203.0.113.7")
}

func TestControlRefusals(t *testing.T) {
	e := newEnv(t)
	e.setDaemon("ignore = [\"192.0.2.0/24\"]\n")
	stop := e.start()
	defer stop()
	ctx := context.Background()
	c := e.client()
	cases := []struct {
		name   string
		req    control.BanRequest
		status int
		msg    string
	}{
		{"bad address", control.BanRequest{IP: "203.0.113.300"}, 400, `"203.0.113.300" is not an address`},
		{"host bits", control.BanRequest{IP: "203.0.113.7/24"}, 400, "did you mean 203.0.113.0/24"},
		{"unknown jail", control.BanRequest{IP: "203.0.113.7", Jail: "nope"}, 404, `no jail "nope" is running`},
		{"bad duration", control.BanRequest{IP: "203.0.113.7", For: "forever"}, 400, `for: "forever"`},
		{"ignored", control.BanRequest{IP: "192.0.2.10"}, 409, "overlaps 192.0.2.0/24, which is on the ignore list"},
		{"covers ignored", control.BanRequest{IP: "192.0.0.0/16"}, 409, "use --force"},
		{"loopback", control.BanRequest{IP: "127.0.0.2", Force: true}, 409, "never bans"},
	}
	for _, tc := range cases {
		_, err := c.Ban(ctx, tc.req)
		wantRefusal(t, tc.name, err, tc.status, tc.msg)
	}
	if n := len(listAll(t, c, "", "")); n != 0 {
		t.Fatalf("a refused request banned: %d bans", n)
	}
	if _, err := c.Ban(ctx, control.BanRequest{IP: "192.0.2.10", Force: true}); err != nil {
		t.Errorf("--force: %v", err)
	}
	// Unban refusals.
	for _, tc := range []struct {
		req    control.UnbanRequest
		status int
		msg    string
	}{
		{control.UnbanRequest{IP: "203.0.113.99"}, 404, "has no active ban"},
		{control.UnbanRequest{IP: "x"}, 400, "is not an address"},
		{control.UnbanRequest{IP: "203.0.113.99", All: true}, 400, "not both"},
		{control.UnbanRequest{IP: "203.0.113.99", Jail: "nope"}, 404, `no jail "nope"`},
	} {
		_, err := c.Unban(ctx, tc.req)
		wantRefusal(t, fmt.Sprintf("unban %+v", tc.req), err, tc.status, tc.msg)
	}
	// Malformed JSON and unknown fields, straight over the socket.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.cfg.Daemon.Socket)
	}}}
	for _, body := range []string{`{"ip":`, `{"ip":"203.0.113.5","jial":"postfix"}`, `[1,2]`} {
		resp, err := hc.Post("http://banwatchd/v1/ban", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(data), "malformed request") {
			t.Errorf("%s: %d %s", body, resp.StatusCode, data)
		}
	}
	if n := len(listAll(t, c, "", "")); n != 1 {
		t.Errorf("bans after refusals: %d, want the one forced", n)
	}
}

// An address banned in two jails needs --jail or --all-jails.
func TestControlUnbanSeveralJails(t *testing.T) {
	_, c, stop := startWithClient(t)
	defer stop()
	ctx := context.Background()
	for _, j := range []string{"", "postfix"} {
		if _, err := c.Ban(ctx, control.BanRequest{IP: "203.0.113.44", Jail: j}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Unban(ctx, control.UnbanRequest{IP: "203.0.113.44"})
	wantRefusal(t, "unban without a jail", err, 409, "banned in manual, postfix")
	ended, err := c.Unban(ctx, control.UnbanRequest{IP: "203.0.113.44", AllJails: true})
	if err != nil || len(ended) != 2 {
		t.Fatalf("--all-jails: %+v %v", ended, err)
	}
}

func TestControlReloadAndStatus(t *testing.T) {
	e, c, stop := startWithClient(t)
	defer stop()
	ctx := context.Background()
	e.appendLines(failures("203.0.113.7", 5)...)
	e.waitBanned("203.0.113.7")
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pf *control.JailStatus
	for i := range st.Jails {
		if st.Jails[i].Name == "postfix" {
			pf = &st.Jails[i]
		}
	}
	if pf == nil || !pf.Running || pf.Active != 1 || pf.Total != 1 || pf.Lines != 5 || pf.Events != 5 || len(pf.Logs) != 1 ||
		pf.Logs[0].Path != e.logPath || pf.Logs[0].Lines != 5 || pf.Logs[0].Offset == 0 || st.Firewall != "log" || st.Version == "" {
		t.Fatalf("status: %+v\npostfix: %+v", st, pf)
	}

	testutil.WriteFile(t, filepath.Join(e.dir, "jails", "broken.toml"), "[postfix2]\nfilter = \"postfix\"\n\nmax_strikes = 0\n")
	wantRefusal(t, "reload of a broken configuration", c.Reload(ctx), 422, "broken.toml:4: postfix2.max_strikes")
	os.Remove(filepath.Join(e.dir, "jails", "broken.toml"))
	jf := filepath.Join(e.dir, "jails", "test.toml")
	data, err := os.ReadFile(jf)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteFile(t, jf, strings.Replace(string(data), "[postfix]\n", "[postfix]\nmax_strikes = 2\n", 1))
	if err := c.Reload(ctx); err != nil {
		t.Fatalf("reload: %v", err)
	}
	e.appendLines(failures("203.0.113.8", 2)...)
	e.waitBanned("203.0.113.8")
	if _, ok := e.active()["203.0.113.7"]; !ok {
		t.Error("the reload dropped a ban")
	}
}

func TestClientUnreachable(t *testing.T) {
	c := control.NewClient(filepath.Join(t.TempDir(), "none.sock"))
	_, err := c.Status(context.Background())
	if !errors.Is(err, control.ErrUnreachable) || !strings.Contains(err.Error(), "is banwatchd running? socket") {
		t.Fatalf("got %v", err)
	}
}

// Learned fingerprints are listed and can be forgotten.
func TestControlFingerprints(t *testing.T) {
	e, c, stop := startWithClient(t)
	defer stop()
	ctx := context.Background()
	stamp := time.Now().Format(time.Stamp)
	var lines []string
	for i := 1; i <= 5; i++ {
		lines = append(lines, fmt.Sprintf("%s mx postfix/smtpd[1]: warning: unknown[198.51.100.%d]: SASL LOGIN authentication failed: "+
			"UGFzc3dvcmQ6, sasl_username=info", stamp, i))
	}
	e.appendLines(lines...)
	for i := 1; i <= 5; i++ {
		e.waitBanned(fmt.Sprintf("198.51.100.%d", i))
	}
	fps, err := c.Fingerprints(ctx, "")
	if err != nil || len(fps) != 1 || fps[0].Value != "user=info" || fps[0].Jail != "postfix" {
		t.Fatalf("fingerprints: %+v, %v", fps, err)
	}
	got, err := c.Forget(ctx, control.ForgetRequest{Value: "info"})
	if err != nil || len(got) != 1 {
		t.Fatalf("forget: %+v, %v", got, err)
	}
	if fps, _ := c.Fingerprints(ctx, ""); len(fps) != 0 {
		t.Errorf("still learned: %+v", fps)
	}
	_, err = c.Forget(ctx, control.ForgetRequest{Value: "info"})
	wantRefusal(t, "forget again", err, 404, `no learned fingerprint "info"`)
	// A new address failing with the forgotten name only gets a strike.
	e.appendLines(fmt.Sprintf("%s mx postfix/smtpd[1]: warning: unknown[198.51.100.77]: SASL LOGIN authentication failed: "+
		"UGFzc3dvcmQ6, sasl_username=info", stamp))
	time.Sleep(300 * time.Millisecond)
	if _, ok := e.active()["198.51.100.77"]; ok {
		t.Error("banned by a forgotten fingerprint")
	}
}

// A client that logged in is forgiven its mistyped password, and status
// counts it, and the addresses tracked.
func TestStatusCountsForgiven(t *testing.T) {
	e, c, stop := startWithClient(t)
	defer stop()
	stamp := time.Now().Format(time.Stamp)
	e.appendLines(fmt.Sprintf("%s mx postfix/smtpd[1]: 4BxAbc1: client=unknown[198.51.100.55], sasl_method=LOGIN, sasl_username=alice", stamp))
	e.appendLines(failures("198.51.100.55", 6)...)
	e.appendLines(failures("192.0.2.99", 2)...)
	e.appendLines(failures("203.0.113.77", 5)...)
	e.waitBanned("203.0.113.77") // the lines before it were read
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range st.Jails {
		if j.Name == "postfix" && j.Forgiven != 6 {
			t.Errorf("forgiven %d, want 6", j.Forgiven)
		}
		// Tracked: 192.0.2.99 with its two strikes; the trusted client
		// strikes nothing, the banned address's strikes went into its ban.
		if j.Name == "postfix" && j.Tracked != 1 {
			t.Errorf("tracked %d, want 1", j.Tracked)
		}
	}
	if _, ok := e.active()["198.51.100.55"]; ok {
		t.Error("the client that logged in was banned for mistyping")
	}
}
