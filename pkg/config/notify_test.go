package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// loadBanwatchTOML loads a configuration directory holding doc as
// banwatch.toml, with errors' paths made relative to it.
// expectRefused loads doc as banwatch.toml and checks that it is refused
// with an error holding want; it returns the error.
func expectRefused(t *testing.T, doc, want string) error {
	t.Helper()
	_, err := loadBanwatchTOML(t, doc)
	if err == nil {
		t.Fatalf("%q accepted; want %q", doc, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%q:\n  got  %s\n  want %s", doc, err, want)
	}
	return err
}

func loadBanwatchTOML(t *testing.T, doc string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "banwatch.toml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir)
	if err != nil {
		return nil, &Error{Reason: strings.ReplaceAll(err.Error(), dir+"/", "")}
	}
	return cfg, nil
}

func TestNotifyInvalid(t *testing.T) {
	cases := []struct{ doc, err string }{
		{"[[notify.webhook]]\nevents = [\"ban\"]\n", `banwatch.toml:1: notify.webhook[1]: a webhook needs a url`},
		{"[[notify.webhook]]\nurl = \"ftp://example.org/x\"\n", `banwatch.toml:2: notify.webhook[1].url: "ftp://example.org/...": want an http:// or https:// URL`},
		{"[[notify.webhook]]\nurl = \"hooks.slack.com/services/T/B/secret\"\n", `notify.webhook[1].url: "hooks.slack.com/services...": want an http`},
		{"[[notify.webhook]]\nurl = \"https://u:pw@example.org/h\"\n", `notify.webhook[1].url: "https://u:pw@example.org/...": no user or password in the URL`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\n[[notify.webhook]]\nurl = \"https://b.example/\"\nevents = [\"ban\", \"kick\"]\n",
			`banwatch.toml:5: notify.webhook[2].events: "kick": the events are "ban", "unban" and "digest"`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\nevents = []\n", `banwatch.toml:3: notify.webhook[1].events: no events`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\nevents = [\"ban\", \"ban\"]\n", `notify.webhook[1].events: "ban" is listed twice`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\njails = [\"postfx\"]\n", `banwatch.toml:3: notify.webhook[1].jails: no jail "postfx"`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\ndigest = \"30s\"\n", `banwatch.toml:3: notify.webhook[1].digest: "30s": want 1m0s to 31d`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\ndigest = \"daily\"\n", `notify.webhook[1].digest: bad duration "daily"`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\ndigest_at = \"8am\"\n", `notify.webhook[1].digest_at: "8am": want a time of day`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\ntimeout = \"0s\"\n", `notify.webhook[1].timeout: "0s": want 1s to 5m0s`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\ncoalesce = \"2h\"\n", `notify.webhook[1].coalesce: "2h": want 0s to 1h0m0s`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\nheaders = { \"Bad Name\" = \"x\" }\n", `notify.webhook[1].headers: "Bad Name" is not a header name`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\nheaders = { Content-Type = \"text/plain\" }\n", `notify.webhook[1].headers: Content-Type is set by banwatch`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\nheaders = { X-A = \"a\\nb\" }\n", `notify.webhook[1].headers: the value of X-A holds a control character`},
		{"[[notify.webhook]]\nurl = \"https://a.example/\"\nsecret = \"x\"\n", `banwatch.toml:3: notify.webhook.secret: unknown key (known in [notify]: host, webhook (url,`},
		{"[notify]\nhost = \"\"\n", `banwatch.toml:2: notify.host: "": want a name of 1 to 64`},
		{"[notify]\nwebhook = \"https://a.example/\"\n", `banwatch.toml:2: notify.webhook: incompatible types`},
		{"[notifications]\nurl = \"https://a.example/\"\n", `banwatch.toml:1: notifications: unknown table (banwatch.toml holds [daemon], [notify], [cluster] and [web])`},
	}
	for _, c := range cases {
		t.Run(c.err, func(t *testing.T) {
			expectRefused(t, c.doc, c.err)
		})
	}
}

func TestNotifyValid(t *testing.T) {
	cases := []struct {
		name, doc string
		check     func(t *testing.T, n Notify)
	}{
		{"none", "", func(t *testing.T, n Notify) {
			if n.Host != "" || len(n.Webhooks) != 0 {
				t.Errorf("%+v", n)
			}
		}},
		{"defaults", "[[notify.webhook]]\nurl = \"https://hooks.slack.com/services/T0/B0/x\"\n", func(t *testing.T, n Notify) {
			w := n.Webhooks[0]
			if w.URL != "https://hooks.slack.com/services/T0/B0/x" || strings.Join(w.Events, ",") != "ban,digest,unban" ||
				w.Jails != nil || w.Digest != 24*time.Hour || w.DigestAt != 0 || w.Coalesce != 2*time.Second ||
				w.Timeout != 10*time.Second || w.Headers != nil {
				t.Errorf("%+v", w)
			}
			if !w.Wants(NotifyBan) || !w.Wants(NotifyUnban) || !w.Wants(NotifyDigest) {
				t.Errorf("wants not all events")
			}
			if w.Redacted() != "https://hooks.slack.com" {
				t.Errorf("redacted %q", w.Redacted())
			}
		}},
		{"all keys", `
[notify]
host = "mx1"

[[notify.webhook]]
url = "http://127.0.0.1:9000/hook"
events = ["digest", "ban"]
jails = ["postfix", "manual"]
digest = "6h"
digest_at = "08:30"
coalesce = "0s"
timeout = "3s"
headers = { Authorization = "Bearer s3cret", X-Room = "ops" }

[[notify.webhook]]
url = "https://matrix.example.org/hookshot/webhook/abc"
digest = "off"
`, func(t *testing.T, n Notify) {
			if n.Host != "mx1" || len(n.Webhooks) != 2 {
				t.Fatalf("%+v", n)
			}
			w := n.Webhooks[0]
			if strings.Join(w.Events, ",") != "ban,digest" || strings.Join(w.Jails, ",") != "manual,postfix" ||
				w.Digest != 6*time.Hour || w.DigestAt != 8*time.Hour+30*time.Minute || w.Coalesce != 0 ||
				w.Timeout != 3*time.Second || w.Headers["Authorization"] != "Bearer s3cret" || w.Headers["X-Room"] != "ops" {
				t.Errorf("%+v", w)
			}
			if w.Wants(NotifyUnban) {
				t.Error("wants unban")
			}
			if v := n.Webhooks[1]; v.Digest != 0 || v.Wants(NotifyDigest) || !v.Wants(NotifyBan) {
				t.Errorf("%+v", v)
			}
			if !n.Equal(&n) {
				t.Error("not equal to itself")
			}
			o := n
			o.Webhooks = append([]Webhook(nil), n.Webhooks...)
			o.Webhooks[0].Headers = map[string]string{"Authorization": "Bearer other", "X-Room": "ops"}
			if n.Equal(&o) {
				t.Error("a changed header is equal")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadBanwatchTOML(t, c.doc)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, cfg.Daemon.Notify)
		})
	}
}
