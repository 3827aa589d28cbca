package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/notify"
)

// webhookEnv is a testEnv whose banwatch.toml sends ban and unban
// notifications to a webhook on loopback, whose POSTs come on posts.
func webhookEnv(t *testing.T) (*testEnv, chan notify.Payload) {
	t.Helper()
	posts := make(chan notify.Payload, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p notify.Payload
		if r.Header.Get("Authorization") != "Bearer t0ken" || json.Unmarshal(body, &p) != nil {
			t.Errorf("bad request: %v %s", r.Header, body)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		posts <- p
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, logBuf: &testutil.Buffer{}}
	e.logPath = testutil.PostfixConfig(t, dir, "firewall = \"log\"\n"+`
[notify]
host = "mx1"

[[notify.webhook]]
url = "`+srv.URL+`/hooks/secret"
events = ["ban", "unban"]
coalesce = "100ms"
headers = { Authorization = "Bearer t0ken" }
`)
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	return e, posts
}

func nextPost(t *testing.T, e *testEnv, posts chan notify.Payload) notify.Payload {
	t.Helper()
	select {
	case p := <-posts:
		return p
	case <-time.After(10 * time.Second):
		t.Fatalf("no notification within 10s\n%s", e.logBuf)
	}
	return notify.Payload{}
}

// Five SASL failures ban the address, and the webhook hears of it; an
// unban through the control socket's handler too.
func TestNotifyBanAndUnban(t *testing.T) {
	e, posts := webhookEnv(t)
	stop := e.start()
	defer stop()
	e.appendLines(failures("203.0.113.7", 5)...)
	p := nextPost(t, e, posts)
	if p.Event != "ban" || p.Host != "mx1" || p.Count != 1 || len(p.Bans) != 1 {
		t.Fatalf("payload %+v", p)
	}
	b := p.Bans[0]
	if b.IP != "203.0.113.7" || b.Jail != "postfix" || b.Strikes != 5 || b.Reason != "auth_failure" || b.Origin != "jail" ||
		b.Until.Sub(b.Since) != 7*24*time.Hour {
		t.Errorf("ban %+v", b)
	}
	if want := "banwatch mx1: banned 203.0.113.7 in postfix for 7d (5 strikes: auth_failure)"; p.Text != want {
		t.Errorf("text %q, want %q", p.Text, want)
	}
	if strings.Contains(e.logBuf.String(), "/hooks/secret") {
		t.Errorf("the webhook's secret path was logged:\n%s", e.logBuf)
	}

	// A manual ban and an unban through the control socket.
	c := e.client()
	if _, err := c.Ban(context.Background(), control.BanRequest{IP: "192.0.2.44", For: "1d", Reason: "seen in the abuse box"}); err != nil {
		t.Fatal(err)
	}
	if p := nextPost(t, e, posts); p.Event != "ban" || p.Count != 1 || p.Bans[0].Jail != "manual" || p.Bans[0].Origin != "manual" ||
		p.Text != "banwatch mx1: banned 192.0.2.44 in manual for 1d (seen in the abuse box)" {
		t.Errorf("manual ban payload %+v", p)
	}
	if _, err := c.Unban(context.Background(), control.UnbanRequest{IP: "203.0.113.7"}); err != nil {
		t.Fatal(err)
	}
	if p := nextPost(t, e, posts); p.Event != "unban" || p.Count != 1 || p.Bans[0].IP != "203.0.113.7" ||
		!strings.HasPrefix(p.Text, "banwatch mx1: unbanned 203.0.113.7 in postfix by uid ") {
		t.Errorf("unban payload %+v", p)
	}
}

// A reload with another [notify] restarts the notifier: the next ban goes
// to the new webhook.
func TestNotifyReload(t *testing.T) {
	e, posts := webhookEnv(t)
	stop := e.start()
	defer stop()
	second := make(chan notify.Payload, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p notify.Payload
		if err := json.NewDecoder(r.Body).Decode(&p); err == nil {
			second <- p
		}
	}))
	defer srv.Close()
	testutil.PostfixConfig(t, e.dir, "firewall = \"log\"\n[[notify.webhook]]\nurl = \""+srv.URL+"/new\"\ncoalesce = \"0s\"\n")
	if err := e.client().Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.appendLines(failures("203.0.113.8", 5)...)
	p := nextPost(t, e, second)
	if p.Event != "ban" || p.Bans[0].IP != "203.0.113.8" {
		t.Errorf("payload %+v", p)
	}
	select {
	case p := <-posts:
		t.Errorf("the old webhook was sent %+v", p)
	default:
	}
	if !strings.Contains(e.logBuf.String(), "notifications restarted for the new [notify]") {
		t.Errorf("no restart logged:\n%s", e.logBuf)
	}
}
