package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/tomlpos"
)

// Defaults and limits of banwatch.toml's [cluster] table.
const (
	DefaultBatch = 200 * time.Millisecond
	MinBatch     = 10 * time.Millisecond
	MaxBatch     = 10 * time.Second
)

// Cluster holds banwatch.toml's [cluster] table: the PostgreSQL database
// through which several banwatchd nodes share one ban list. Without
// Postgres, cluster mode is off and every other field is zero.
//
// The parser does no I/O: the files named here are read, and the
// connection string resolved, when the daemon connects.
type Cluster struct {
	// Postgres is the connection string, a URL
	// ("postgres://user@host:5432/db?sslmode=verify-full") or keyword/value
	// pairs ("host=/run/postgresql dbname=banwatch"); it may hold a
	// password, so show it only through Redacted.
	Postgres string
	// Node is this node's name, shown on every ban it makes; "" when not
	// set, for the daemon to use the host name's first label.
	Node string
	// PasswordFile, when set, is the absolute path of a file holding the
	// password (the connection string then holds none).
	PasswordFile string
	// CAFile is the server's CA certificate; CertFile and KeyFile a client
	// certificate and its key (both or neither). Absolute paths, or "".
	CAFile, CertFile, KeyFile string
	// ShareStrikes makes strikes shared between the nodes, so that a
	// jail's window counts the events of every node.
	ShareStrikes bool
	// Batch is how long local changes wait to be sent together:
	// DefaultBatch unless set, 0 when cluster mode is off.
	Batch time.Duration
}

// Enabled reports whether cluster mode is on: a connection string is set.
func (c *Cluster) Enabled() bool { return c.Postgres != "" }

// Equal reports whether c and o configure the same cluster.
func (c *Cluster) Equal(o *Cluster) bool { return *c == *o }

// Redacted returns the connection string as logs and errors may show it:
// with any password replaced by "***".
func (c *Cluster) Redacted() string { return redactDSN(c.Postgres) }

// clusterKeys is what banwatch.toml's [cluster] table decodes into.
type clusterKeys struct {
	Postgres     *string `toml:"postgres"`
	Node         *string `toml:"node"`
	PasswordFile *string `toml:"password_file"`
	CAFile       *string `toml:"ca_file"`
	CertFile     *string `toml:"cert_file"`
	KeyFile      *string `toml:"key_file"`
	ShareStrikes *bool   `toml:"share_strikes"`
	Batch        *string `toml:"batch"`
}

const clusterKeyList = "postgres, node, password_file, ca_file, cert_file, key_file, share_strikes, batch"

// nodeName is a valid node name.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// parseCluster checks the [cluster] table without I/O.
func parseCluster(file string, data []byte, k *clusterKeys) (Cluster, []error) {
	var c Cluster
	var errs []error
	bad := func(reason, key string) {
		errs = append(errs, &Error{File: file, Line: tomlpos.Locate(data, "cluster", key), Key: "cluster." + key, Reason: reason})
	}
	var settings map[string]string
	if k.Postgres != nil && *k.Postgres != "" {
		s, err := checkDSN(*k.Postgres)
		if err != nil {
			bad(fmt.Sprintf("%q: %v", redactDSN(*k.Postgres), err), "postgres")
		}
		settings = s
		c.Postgres = *k.Postgres
		c.Batch = DefaultBatch
	}
	if !c.Enabled() {
		// Every other key is an error: each would silently do nothing.
		for _, o := range []struct {
			set bool
			key string
		}{
			{k.Node != nil, "node"}, {k.PasswordFile != nil, "password_file"}, {k.CAFile != nil, "ca_file"},
			{k.CertFile != nil, "cert_file"}, {k.KeyFile != nil, "key_file"},
			{k.ShareStrikes != nil, "share_strikes"}, {k.Batch != nil, "batch"},
		} {
			if o.set {
				bad(`needs postgres = "..." (cluster mode is off without it)`, o.key)
			}
		}
		return Cluster{}, errs
	}
	if k.Node != nil {
		if !nodeName.MatchString(*k.Node) {
			bad(fmt.Sprintf("%q: want 1 to 64 letters, digits, '.', '_' and '-', starting with a letter or digit", *k.Node), "node")
		}
		c.Node = *k.Node
	}
	path := func(p *string, dst *string, key string) {
		if p == nil {
			return
		}
		if !filepath.IsAbs(*p) {
			bad("must be an absolute path", key)
		}
		*dst = *p
	}
	path(k.PasswordFile, &c.PasswordFile, "password_file")
	path(k.CAFile, &c.CAFile, "ca_file")
	path(k.CertFile, &c.CertFile, "cert_file")
	path(k.KeyFile, &c.KeyFile, "key_file")
	if c.PasswordFile != "" && settings["password"] != "" {
		bad("postgres holds a password too: keep one of them", "password_file")
	}
	if k.CertFile != nil && k.KeyFile == nil {
		bad("cert_file needs key_file (the certificate's private key)", "cert_file")
	}
	if k.KeyFile != nil && k.CertFile == nil {
		bad("key_file needs cert_file (the client certificate)", "key_file")
	}
	if settings["sslmode"] == "disable" {
		for _, o := range []struct {
			set bool
			key string
		}{{k.CAFile != nil, "ca_file"}, {k.CertFile != nil, "cert_file"}, {k.KeyFile != nil, "key_file"}} {
			if o.set {
				bad("postgres has sslmode=disable, which turns TLS off", o.key)
			}
		}
	}
	if k.ShareStrikes != nil {
		c.ShareStrikes = *k.ShareStrikes
	}
	if k.Batch != nil {
		d, err := ParseDuration(*k.Batch)
		switch {
		case err != nil:
			bad(err.Error(), "batch")
		case d < MinBatch || d > MaxBatch:
			bad(fmt.Sprintf("%q: want %s to %s", *k.Batch, MinBatch, MaxBatch), "batch")
		default:
			c.Batch = d
		}
	}
	return c, errs
}

// dsnFileKeys are the connection string's keys that [cluster] has its own
// keys for, so that each setting has one place.
var dsnFileKeys = [][2]string{
	{"sslrootcert", "ca_file"}, {"sslcert", "cert_file"}, {"sslkey", "key_file"}, {"passfile", "password_file"},
}

// checkDSN checks a PostgreSQL connection string without I/O, as libpq
// and pgx read it, and returns its settings (dbname as "database").
// pgconn.ParseConfig is not used: it reads the environment, a service
// file and the TLS files the string names, and fails when they are
// missing. Its errors never quote a password.
func checkDSN(s string) (map[string]string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, errors.New("holds a NUL byte")
	}
	var settings map[string]string
	var err error
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		settings, err = parseDSNURL(s)
	} else if i := strings.Index(s, "://"); i > 0 && !strings.ContainsAny(s[:i], "= \t\n'") {
		return nil, fmt.Errorf("a URL is postgres:// or postgresql://, not %s://", s[:i])
	} else {
		settings, err = parseDSNKeywords(s)
	}
	if err != nil {
		return nil, err
	}
	for _, k := range dsnFileKeys {
		if _, ok := settings[k[0]]; ok {
			return nil, fmt.Errorf("%s: set %s in [cluster] instead", k[0], k[1])
		}
	}
	hosts := strings.Split(settings["host"], ",")
	ports := strings.Split(settings["port"], ",")
	if len(ports) > 1 && len(ports) != len(hosts) {
		return nil, fmt.Errorf("%d ports for %d hosts: give one port, or one per host", len(ports), len(hosts))
	}
	for _, p := range ports {
		if n, err := strconv.ParseUint(p, 10, 16); p != "" && (err != nil || n == 0) {
			// Not quoted: in a broken URL a password can land here.
			return nil, errors.New("a port is a number from 1 to 65535")
		}
	}
	checks := []struct{ key, values string }{
		{"sslmode", "disable, allow, prefer, require, verify-ca, verify-full"},
		{"target_session_attrs", "any, read-write, read-only, primary, standby, prefer-standby"},
		{"channel_binding", "disable, prefer, require"},
	}
	for _, c := range checks {
		v, ok := settings[c.key]
		if ok && !slices.Contains(strings.Split(c.values, ", "), v) {
			return nil, fmt.Errorf("%s %q: want one of %s", c.key, v, c.values)
		}
	}
	if v, ok := settings["connect_timeout"]; ok {
		if _, err := strconv.ParseUint(v, 10, 31); err != nil {
			return nil, fmt.Errorf("connect_timeout %q: want whole seconds", v)
		}
	}
	return settings, nil
}

// errKeywords is parseDSNKeywords' error: it quotes nothing of the
// string, in which a value that went wrong may be part of a password.
var errKeywords = errors.New("want keyword=value pairs or a postgres:// URL (a value with spaces goes in single quotes: 'a b')")

// dsnSpace is what separates keyword=value pairs.
const dsnSpace = " \t\n\r\v\f"

// parseDSNKeywords reads keyword/value pairs ("host=h dbname='a b'") the
// way libpq does: values may be single-quoted, a backslash escapes the
// next character.
func parseDSNKeywords(s string) (map[string]string, error) {
	settings := map[string]string{}
	s = strings.TrimLeft(s, dsnSpace)
	if s == "" {
		return nil, errKeywords
	}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errKeywords
		}
		key := strings.TrimRight(s[:eq], dsnSpace)
		if key == "" || strings.ContainsAny(key, dsnSpace) {
			return nil, errKeywords
		}
		raw, rest, ok := dsnValue(strings.TrimLeft(s[eq+1:], dsnSpace))
		if !ok {
			return nil, errors.New("a quoted value is not closed")
		}
		if strings.HasPrefix(raw, "'") {
			raw = raw[1 : len(raw)-1]
		}
		s = strings.TrimLeft(rest, dsnSpace)
		var val strings.Builder
		for i := 0; i < len(raw); i++ {
			if raw[i] == '\\' {
				i++
				if i == len(raw) {
					break
				}
			}
			val.WriteByte(raw[i])
		}
		if key == "dbname" {
			key = "database"
		}
		settings[key] = val.String()
	}
	return settings, nil
}

// dsnValue splits s, which starts with a keyword's value, at the value's
// end: a quoted value (quotes included) ends after its closing quote, or
// at the end of s when it has none (ok is then false); another at the
// first unescaped space.
func dsnValue(s string) (value, rest string, ok bool) {
	end := 0
	if strings.HasPrefix(s, "'") {
		for end = 1; end < len(s) && s[end] != '\''; end++ {
			if s[end] == '\\' {
				end++
			}
		}
		if end >= len(s) {
			return s, "", false
		}
		end++
	} else {
		for ; end < len(s) && !strings.ContainsRune(dsnSpace, rune(s[end])); end++ {
			if s[end] == '\\' {
				end++
			}
		}
		end = min(end, len(s))
	}
	return s[:end], s[end:], true
}

// parseDSNURL reads a postgres:// or postgresql:// URL the way libpq does:
// [user[:password]@][host][:port][,...][/dbname][?key=value&...].
func parseDSNURL(s string) (map[string]string, error) {
	p := s[strings.Index(s, "://")+3:]
	settings := map[string]string{}
	// decode undoes %-escapes as libpq does: spaces around are dropped,
	// spaces inside refused.
	decode := func(v, what string) (string, error) {
		v = strings.Trim(v, " ")
		if strings.Contains(v, " ") {
			return "", fmt.Errorf("a space in the %s: write it %%20", what)
		}
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] != '%' {
				b.WriteByte(v[i])
				continue
			}
			n, err := strconv.ParseUint(v[min(i+1, len(v)):min(i+3, len(v))], 16, 8)
			if err != nil || i+3 > len(v) || n == 0 {
				return "", fmt.Errorf("bad %%-escape in the %s", what)
			}
			b.WriteByte(byte(n))
			i += 2
		}
		return b.String(), nil
	}
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		user, password, _ := strings.Cut(p[:i], ":")
		p = p[i+1:]
		if user != "" {
			v, err := decode(user, "user name")
			if err != nil {
				return nil, err
			}
			settings["user"] = v
		}
		if password != "" {
			v, err := decode(password, "password")
			if err != nil {
				return nil, err
			}
			settings["password"] = v
		}
	}
	var hosts, ports []string
	for {
		var host, port string
		if strings.HasPrefix(p, "[") {
			end := strings.IndexByte(p, ']')
			if end < 2 {
				return nil, errors.New("bad [IPv6] host")
			}
			host, p = p[1:end], p[end+1:]
			if p != "" && !strings.ContainsRune(":/?,", rune(p[0])) {
				return nil, fmt.Errorf("%q after an [IPv6] host: want \":\" or \"/\"", p[:1])
			}
		} else {
			i := strings.IndexAny(p, ":/?,")
			if i < 0 {
				i = len(p)
			}
			host, p = p[:i], p[i:]
		}
		if strings.HasPrefix(p, ":") {
			i := strings.IndexAny(p[1:], "/?,")
			if i < 0 {
				i = len(p) - 1
			}
			port, p = p[1:1+i], p[1+i:]
		}
		hosts, ports = append(hosts, host), append(ports, port)
		if !strings.HasPrefix(p, ",") {
			break
		}
		p = p[1:]
	}
	if h := strings.Join(hosts, ","); h != "" {
		v, err := decode(h, "host")
		if err != nil {
			return nil, err
		}
		settings["host"] = v
	}
	if pt := strings.Join(ports, ","); pt != "" {
		v, err := decode(pt, "port")
		if err != nil {
			return nil, err
		}
		settings["port"] = v
	}
	if strings.HasPrefix(p, "/") {
		db := p[1:]
		p = ""
		if i := strings.IndexByte(db, '?'); i >= 0 {
			db, p = db[:i], db[i:]
		}
		if db != "" {
			v, err := decode(db, "database name")
			if err != nil {
				return nil, err
			}
			settings["database"] = v
		}
	}
	if strings.HasPrefix(p, "?") {
		for q := p[1:]; q != ""; {
			pair, rest, _ := strings.Cut(q, "&")
			q = rest
			rk, rv, ok := strings.Cut(pair, "=")
			if !ok || strings.Contains(rv, "=") {
				return nil, errors.New("a query parameter is key=value")
			}
			k, err := decode(rk, "query")
			if err != nil {
				return nil, err
			}
			v, err := decode(rv, "query")
			if err != nil {
				return nil, err
			}
			switch {
			case k == "dbname":
				k = "database"
			case k == "ssl" && v == "true":
				k, v = "sslmode", "require"
			}
			settings[k] = v
		}
	} else if p != "" {
		return nil, fmt.Errorf("unexpected %q after the host", p[:1])
	}
	return settings, nil
}

// dsnPasswordKey finds where a password's value starts: after a
// password= or sslpassword= keyword or URL query parameter.
var dsnPasswordKey = regexp.MustCompile(`(?:^|[\s?&])(?:ssl)?password\s*=\s*`)

// dsnNextKey finds the start of a keyword=value pair after a space.
var dsnNextKey = regexp.MustCompile(`[\s&][A-Za-z_]+\s*=`)

// redactDSN returns a connection string with its passwords replaced by
// "***". It errs on the side of hiding, for strings that are not valid
// too: in a URL everything between the user name and the last "@" goes;
// an unquoted password= value runs to the next keyword=value pair or "&",
// a quoted one to its closing quote or the end.
func redactDSN(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if user, _, ok := strings.Cut(rest[:at], ":"); ok {
				s = s[:i+3] + user + ":***" + rest[at:]
			}
		}
	}
	var b strings.Builder
	for {
		m := dsnPasswordKey.FindStringIndex(s)
		if m == nil {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:m[1]])
		b.WriteString("***")
		s = s[m[1]:]
		if strings.HasPrefix(s, "'") {
			_, s, _ = dsnValue(s)
		} else if n := dsnNextKey.FindStringIndex(s); n != nil {
			s = s[n[0]:]
		} else {
			s = ""
		}
	}
}
