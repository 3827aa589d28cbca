package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/crypto/bcrypt"

	"github.com/banwatch/banwatch/pkg/tomlpos"
)

// Bounds of a [web] password_hash's bcrypt cost. Every failed login runs
// bcrypt, and so does the first request with a password: each step of the
// cost doubles its time, about 60 ms at 10 and a second at 14 here.
const (
	MinWebCost = bcrypt.MinCost
	MaxWebCost = 14
)

// Web holds banwatch.toml's [web] table: the read-only history page that
// banwatchd serves. Without Listen the page is off and every other field
// is zero.
type Web struct {
	// Listen is the TCP address the page is served on ("127.0.0.1:8425");
	// "" when off.
	Listen string
	// User and PasswordHash, when set (both or neither), make the page ask
	// for HTTP basic authentication. PasswordHash is a bcrypt hash
	// ("$2y$10$..."); no error or log shows it.
	User         string
	PasswordHash string
}

// Enabled reports whether the page is served: an address is set.
func (w *Web) Enabled() bool { return w.Listen != "" }

// Auth reports whether the page asks for a user name and password.
func (w *Web) Auth() bool { return w.User != "" }

// Equal reports whether w and o configure the same page.
func (w *Web) Equal(o *Web) bool { return *w == *o }

// Loopback reports whether Listen takes connections from this host only:
// its host is a loopback address or "localhost". An empty host (every
// interface) is not.
func (w *Web) Loopback() bool {
	host, _, err := net.SplitHostPort(w.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// webKeys is what banwatch.toml's [web] table decodes into.
type webKeys struct {
	Listen       *string `toml:"listen"`
	User         *string `toml:"user"`
	PasswordHash *string `toml:"password_hash"`
}

const webKeyList = "listen, user, password_hash"

// bcryptHash is the form of a bcrypt hash as htpasswd -B, Python's bcrypt
// and Go's x/crypto/bcrypt write it: version, two-digit cost, 22 characters
// of salt and 31 of hash in bcrypt's base64.
var bcryptHash = regexp.MustCompile(`^\$2[abxy]?\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)

// parseWeb checks the [web] table without I/O. metrics is [daemon]
// metrics, which the page may not share an address with.
func parseWeb(file string, data []byte, k *webKeys, metrics string) (Web, []error) {
	var w Web
	var errs []error
	bad := func(reason, key string) {
		errs = append(errs, &Error{File: file, Line: tomlpos.Locate(data, "web", key), Key: "web." + key, Reason: reason})
	}
	if k.Listen != nil && *k.Listen != "" {
		if err := checkListenAddr(*k.Listen); err != nil {
			bad(err.Error(), "listen")
		} else if sameListenAddr(*k.Listen, metrics) {
			bad(fmt.Sprintf("%q is [daemon] metrics' address too: give the page its own", *k.Listen), "listen")
		}
		w.Listen = *k.Listen
	}
	if !w.Enabled() {
		// Every other key is an error: each would silently do nothing.
		for _, o := range []struct {
			set bool
			key string
		}{{k.User != nil, "user"}, {k.PasswordHash != nil, "password_hash"}} {
			if o.set {
				bad(`needs listen = "HOST:PORT" (the page is off without it)`, o.key)
			}
		}
		return Web{}, errs
	}
	if k.User != nil {
		if u := *k.User; u == "" || len(u) > 64 || strings.ContainsRune(u, ':') || strings.ContainsFunc(u, unicode.IsControl) {
			bad(fmt.Sprintf("%q: want 1 to 64 characters, without ':' or control characters", u), "user")
		}
		w.User = *k.User
	}
	if k.PasswordHash != nil {
		// The hash is never quoted: it is a password's equivalent
		// against an offline guesser.
		h := *k.PasswordHash
		switch cost, err := bcrypt.Cost([]byte(h)); {
		case !bcryptHash.MatchString(h) || err != nil:
			bad("not a bcrypt hash (\"$2b$10$\" and 53 characters): make one with mkpasswd -m bcrypt -R 10, or htpasswd -nbBC 10 USER PASSWORD (after the colon)", "password_hash")
		case cost > MaxWebCost:
			bad(fmt.Sprintf("bcrypt cost %d: want %d to %d (every failed login runs it; each step doubles its time)", cost, MinWebCost, MaxWebCost), "password_hash")
		}
		w.PasswordHash = h
	}
	if k.User != nil && k.PasswordHash == nil {
		bad("user needs password_hash (a bcrypt hash of the password)", "user")
	}
	if k.PasswordHash != nil && k.User == nil {
		bad("password_hash needs user", "password_hash")
	}
	return w, errs
}

// sameListenAddr reports whether two listening addresses, both checked by
// checkListenAddr, would take the same port: the same port number (not
// 0, which takes a free one) on the same host or on every interface.
func sameListenAddr(a, b string) bool {
	ha, pa, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	hb, pb, err := net.SplitHostPort(b)
	if err != nil || pa != pb || pa == "0" {
		return false
	}
	return ha == hb || ha == "" || hb == ""
}
