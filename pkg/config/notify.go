package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/tomlpos"
)

// Defaults of a [[notify.webhook]] table.
const (
	DefaultDigest   = 24 * time.Hour
	DefaultCoalesce = 2 * time.Second
	DefaultTimeout  = 10 * time.Second
)

// The events a webhook can be sent.
const (
	NotifyBan    = "ban"    // a ban made (by a jail or an admin)
	NotifyUnban  = "unban"  // a ban lifted by an admin (not an expiry)
	NotifyDigest = "digest" // the periodic summary
)

// Notify holds banwatch.toml's [notify] table: where the daemon tells of
// its bans. No webhooks: no notifications (the default).
type Notify struct {
	// Host is the name the messages give this host; "" for the system's
	// host name.
	Host     string
	Webhooks []Webhook
}

// Webhook is one [[notify.webhook]]: a URL that is sent a JSON POST per
// ban (bans close together go as one), per unban, and a digest.
type Webhook struct {
	URL string // http or https
	// Events holds the events sent, sorted: NotifyBan, NotifyDigest,
	// NotifyUnban.
	Events []string
	// Jails, when set, limits the bans, unbans and digest counts to these
	// jails (ManualJail included); nil: every jail.
	Jails []string
	// Digest is the digest's period (0: none); DigestAt the time of day
	// (from local midnight) digests of a day or longer are sent at, and
	// the offset shorter periods are counted from.
	Digest   time.Duration
	DigestAt time.Duration
	// Coalesce is how long the first ban of a quiet spell waits for
	// others to go in the same POST.
	Coalesce time.Duration
	Timeout  time.Duration     // per attempt
	Headers  map[string]string // added to each request (Authorization)
}

// Wants reports whether w is sent events of kind (NotifyBan, ...).
func (w *Webhook) Wants(kind string) bool {
	if kind == NotifyDigest && w.Digest == 0 {
		return false
	}
	return slices.Contains(w.Events, kind)
}

// Redacted returns the webhook's URL as logs may show it: scheme and host
// only, since the path and query of an incoming webhook are its secret.
func (w *Webhook) Redacted() string {
	u, err := url.Parse(w.URL)
	if err != nil {
		return "(bad url)"
	}
	return u.Scheme + "://" + u.Host
}

// Equal reports whether n and o configure the same notifications.
func (n *Notify) Equal(o *Notify) bool {
	if n.Host != o.Host || len(n.Webhooks) != len(o.Webhooks) {
		return false
	}
	for i := range n.Webhooks {
		a, b := &n.Webhooks[i], &o.Webhooks[i]
		if a.URL != b.URL || !slices.Equal(a.Events, b.Events) || !slices.Equal(a.Jails, b.Jails) ||
			a.Digest != b.Digest || a.DigestAt != b.DigestAt || a.Coalesce != b.Coalesce || a.Timeout != b.Timeout ||
			len(a.Headers) != len(b.Headers) {
			return false
		}
		for k, v := range a.Headers {
			if bv, ok := b.Headers[k]; !ok || bv != v {
				return false
			}
		}
	}
	return true
}

// notifyKeys is what banwatch.toml's [notify] table decodes into.
type notifyKeys struct {
	Host    *string       `toml:"host"`
	Webhook []webhookKeys `toml:"webhook"`
}

type webhookKeys struct {
	URL      *string           `toml:"url"`
	Events   []string          `toml:"events"`
	Jails    []string          `toml:"jails"`
	Digest   *string           `toml:"digest"`
	DigestAt *string           `toml:"digest_at"`
	Coalesce *string           `toml:"coalesce"`
	Timeout  *string           `toml:"timeout"`
	Headers  map[string]string `toml:"headers"`
}

const notifyKeyList = "host, webhook (url, events, jails, digest, digest_at, coalesce, timeout, headers)"

// headerName is an HTTP header name (RFC 9110 token).
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// parseNotify checks the [notify] table without I/O. knownJail, when not
// nil, tells whether a name in a webhook's jails is a jail.
func parseNotify(file string, data []byte, k *notifyKeys, knownJail func(string) bool) (Notify, []error) {
	var n Notify
	var errs []error
	bad := func(reason string, idx int, key ...string) {
		path := []string{"notify"}
		if idx >= 0 {
			path = append(path, "webhook", strconv.Itoa(idx))
		}
		path = append(path, key...)
		shown := strings.Join(path, ".")
		if idx >= 0 {
			shown = fmt.Sprintf("notify.webhook[%d]", idx+1)
			if len(key) > 0 {
				shown += "." + strings.Join(key, ".")
			}
		}
		errs = append(errs, &Error{File: file, Line: tomlpos.Locate(data, path...), Key: shown, Reason: reason})
	}
	if k.Host != nil {
		h := *k.Host
		if h == "" || len(h) > 64 || strings.ContainsFunc(h, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			bad(fmt.Sprintf("%q: want a name of 1 to 64 printable characters", h), -1, "host")
		}
		n.Host = h
	}
	for i, wk := range k.Webhook {
		w := Webhook{Events: []string{NotifyBan, NotifyDigest, NotifyUnban}, Digest: DefaultDigest,
			Coalesce: DefaultCoalesce, Timeout: DefaultTimeout}
		if wk.URL == nil {
			bad("a webhook needs a url", i)
		} else if err := checkWebhookURL(*wk.URL); err != nil {
			bad(err.Error(), i, "url")
		} else {
			w.URL = *wk.URL
		}
		if wk.Events != nil {
			w.Events = nil
			for _, e := range wk.Events {
				switch {
				case e != NotifyBan && e != NotifyUnban && e != NotifyDigest:
					bad(fmt.Sprintf("%q: the events are \"ban\", \"unban\" and \"digest\"", e), i, "events")
				case slices.Contains(w.Events, e):
					bad(fmt.Sprintf("%q is listed twice", e), i, "events")
				default:
					w.Events = append(w.Events, e)
				}
			}
			if len(wk.Events) == 0 {
				bad("no events: list some of \"ban\", \"unban\", \"digest\", or remove the webhook", i, "events")
			}
			slices.Sort(w.Events)
		}
		if wk.Jails != nil {
			for _, j := range wk.Jails {
				switch {
				case slices.Contains(w.Jails, j):
					bad(fmt.Sprintf("%q is listed twice", j), i, "jails")
				case knownJail != nil && !knownJail(j):
					bad(fmt.Sprintf("no jail %q (the jail of banctl ban without --jail is %q)", j, ManualJail), i, "jails")
				default:
					w.Jails = append(w.Jails, j)
				}
			}
			if len(wk.Jails) == 0 {
				bad("no jails: leave the key out for every jail", i, "jails")
			}
			slices.Sort(w.Jails)
		}
		dur := func(p *string, lo, hi time.Duration, dst *time.Duration, key string, off bool) {
			if p == nil {
				return
			}
			if off && (*p == "0" || *p == "off") {
				*dst = 0
				return
			}
			d, err := ParseDuration(*p)
			switch {
			case err != nil:
				bad(err.Error(), i, key)
			case d < lo || d > hi:
				bad(fmt.Sprintf("%q: want %s to %s", *p, FormatDuration(lo), FormatDuration(hi)), i, key)
			default:
				*dst = d
			}
		}
		dur(wk.Digest, time.Minute, 31*24*time.Hour, &w.Digest, "digest", true)
		dur(wk.Coalesce, 0, time.Hour, &w.Coalesce, "coalesce", false)
		dur(wk.Timeout, time.Second, 5*time.Minute, &w.Timeout, "timeout", false)
		if wk.DigestAt != nil {
			at, err := parseTimeOfDay(*wk.DigestAt)
			if err != nil {
				bad(err.Error(), i, "digest_at")
			}
			w.DigestAt = at
		}
		for name, v := range wk.Headers {
			switch {
			case !headerName.MatchString(name):
				bad(fmt.Sprintf("%q is not a header name", name), i, "headers")
			case strings.EqualFold(name, "Content-Type") || strings.EqualFold(name, "Content-Length") || strings.EqualFold(name, "Host"):
				bad(fmt.Sprintf("%s is set by banwatch", name), i, "headers")
			case strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
				bad(fmt.Sprintf("the value of %s holds a control character", name), i, "headers")
			default:
				if w.Headers == nil {
					w.Headers = map[string]string{}
				}
				w.Headers[name] = v
			}
		}
		n.Webhooks = append(n.Webhooks, w)
	}
	return n, errs
}

// checkWebhookURL checks a webhook's URL without I/O.
func checkWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", redactURL(s))
	}
	if u.User != nil {
		return fmt.Errorf("%q: no user or password in the URL; use headers = { Authorization = \"...\" }", redactURL(s))
	}
	if u.Fragment != "" {
		return fmt.Errorf("%q: a URL with a #fragment is not sent", redactURL(s))
	}
	return nil
}

// redactURL shortens a URL for an error message: its path may be a secret.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.IndexAny(s[i+3:], "/?#"); j >= 0 {
			return s[:i+3+j] + "/..."
		}
	}
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}

// parseTimeOfDay reads "HH:MM" (24-hour) as the time since midnight.
func parseTimeOfDay(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a time of day, HH:MM such as \"08:00\"", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}
