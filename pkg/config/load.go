package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/banwatch/banwatch"
	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/dnsbl"
	"github.com/banwatch/banwatch/pkg/event"
	"github.com/banwatch/banwatch/pkg/filter"
	"github.com/banwatch/banwatch/pkg/jail"
	"github.com/banwatch/banwatch/pkg/tomlpos"
)

// Defaults of banwatch.toml's [daemon] table.
const (
	DefaultStateDir   = "/var/lib/banwatch"
	DefaultSocket     = "/run/banwatch/banwatch.sock"
	DefaultFirewall   = "nftables"
	DefaultTable      = "banwatch"
	DefaultHistory    = 365 * 24 * time.Hour
	DefaultMaxTracked = 1_000_000
)

// ManualJail is the jail of bans made by an admin (banctl ban) without
// naming a jail: it covers every port. No jail file may define it.
const ManualJail = "manual"

// Defaults of a jail's keys.
const (
	DefaultMaxStrikes = 5
	DefaultFindTime   = 10 * time.Minute
	DefaultBanTime    = 7 * 24 * time.Hour
	DefaultEvidence   = 10
)

// Config is the whole configuration: the daemon's settings, every jail
// defined (enabled or not), and the filters they use.
type Config struct {
	Dir     string // the configuration directory it was loaded from
	Daemon  Daemon
	Jails   []Jail // sorted by name
	Filters map[string]*filter.Filter
}

// Daemon holds banwatch.toml's [daemon] table.
type Daemon struct {
	StateDir string // where the SQLite file lives
	Socket   string // the control socket's path
	// SocketGroup, when set, makes the socket 0660 for this group (whose
	// id Load looked up: SocketGID); otherwise it is 0600, root only.
	SocketGroup string
	SocketGID   int
	Firewall    string         // "nftables" or "log"
	Table       string         // the nftables table (inet family)
	Ignore      []netip.Prefix // never banned (loopback and own addresses are added at run time)
	History     time.Duration  // how long ended bans are kept
	// JournalDirectory, when set, is the journal directory jails with
	// journal matches read instead of the system journal.
	JournalDirectory string
	// Metrics is the TCP address ("127.0.0.1:9631") of the Prometheus
	// endpoint, /metrics; empty: none (the default).
	Metrics string
	// MemoryLimit, when above 0, is the memory in bytes the daemon keeps
	// under (memory_limit): Go's soft memory limit is set to it less
	// SQLiteMemory, so that the garbage collector works harder near it.
	MemoryLimit int64
	// Notify is banwatch.toml's [notify] table: the webhooks told of bans.
	Notify Notify
	// Cluster is banwatch.toml's [cluster] table: the PostgreSQL database
	// the ban list is shared through; off unless set.
	Cluster Cluster
	// Web is banwatch.toml's [web] table: the read-only history page;
	// off unless set.
	Web Web
}

// Enabled is a jail's enabled key: on, off, or on when one of its logs
// exists.
type Enabled string

// The values of a jail's enabled key.
const (
	EnabledTrue  Enabled = "true"
	EnabledFalse Enabled = "false"
	EnabledAuto  Enabled = "auto"
)

// Jail is one jail's settings, shipped ones merged with the local files'.
type Jail struct {
	Name    string
	File    string // where it was (last) defined
	Enabled Enabled
	Filter  string
	Logs    []string
	// Journal holds journalctl match arguments (FIELD=value, "+"): the
	// jail also reads the systemd journal's entries they select.
	Journal    []string
	Ports      []uint16
	MaxStrikes int
	FindTime   time.Duration
	BanTime    time.Duration
	// Weights holds the strikes each event kind counts, indexed by
	// event.Kind.Index(); 0 means the kind does not count. auth_success
	// never counts.
	Weights    [event.NumKinds]int
	Ignore     []netip.Prefix
	Evidence   int // log lines kept per ban
	MaxTracked int // addresses tracked at once; the stalest are dropped beyond it

	// The botnet defences ([J.instant], [J.learn], [J.escalate],
	// [J.subnet], trust); each is off unless configured.
	Instant  jail.Instant
	Learn    jail.Learn
	Escalate jail.Escalate
	Subnet   jail.Subnet
	Trust    time.Duration // how long an authenticated address is trusted; 0 off

	// DNSBL lists the block lists asked about each new address ("zone" or
	// "zone=127.0.0.2-127.0.0.7"); a listed address gets DNSBLWeight
	// strikes once. DNSServer is "host[:port]", or "" for the system's.
	DNSBL       []string
	DNSBLWeight int
	DNSServer   string
	// ConnLimit, when set, drops new connections from a source over the
	// rate at the kernel; ConnLimitBan also bans such a source for
	// ban_time.
	ConnLimit    *ConnLimit
	ConnLimitBan bool
}

// ConnLimit is a jail's conn_limit ("10/minute") and burst.
type ConnLimit struct {
	Rate  uint64
	Per   time.Duration // a second, minute, hour or day
	Burst uint32
}

// FormatRate writes a rate the way ParseRate reads it: "10/minute".
func FormatRate(n uint64, per time.Duration) string {
	unit := map[time.Duration]string{time.Second: "second", time.Minute: "minute", time.Hour: "hour", 24 * time.Hour: "day"}[per]
	if unit == "" {
		unit = per.String()
	}
	return strconv.FormatUint(n, 10) + "/" + unit
}

// ParseRate reads a rate such as "10/minute", "1/second", "100/hour",
// "500/day" (also the units' first letters: "10/m").
func ParseRate(s string) (uint64, time.Duration, error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	v, err := strconv.ParseUint(strings.TrimSpace(n), 10, 32)
	if !ok || err != nil || v == 0 {
		return 0, 0, fmt.Errorf("%q: want a rate such as \"10/minute\"", s)
	}
	switch strings.TrimSpace(unit) {
	case "second", "s", "sec":
		return v, time.Second, nil
	case "minute", "m", "min":
		return v, time.Minute, nil
	case "hour", "h":
		return v, time.Hour, nil
	case "day", "d":
		return v, 24 * time.Hour, nil
	}
	return 0, 0, fmt.Errorf("%q: the unit is second, minute, hour or day", s)
}

// Weight returns the strikes an event of kind k counts in j.
func (j *Jail) Weight(k event.Kind) int {
	if i := k.Index(); i >= 0 {
		return j.Weights[i]
	}
	return 0
}

// JailConfig returns what the jail package needs of j.
func (j *Jail) JailConfig() jail.Config {
	return jail.Config{
		Name: j.Name, MaxStrikes: j.MaxStrikes, FindTime: j.FindTime, BanTime: j.BanTime,
		Weights: j.Weights, MaxTracked: j.MaxTracked,
		Instant: j.Instant, Learn: j.Learn, Escalate: j.Escalate, Subnet: j.Subnet, Trust: j.Trust,
	}
}

// LogsPresent returns those of j's logs that exist now; a pattern counts
// when a file matches it.
func (j *Jail) LogsPresent() []string {
	var out []string
	for _, p := range j.Logs {
		if IsPattern(p) {
			if m, _ := filepath.Glob(p); len(m) > 0 {
				out = append(out, p)
			}
			continue
		}
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// IsPattern reports whether a log path is a pattern ("s*.log") whose
// newest match is followed, rather than one file.
func IsPattern(path string) bool { return strings.ContainsAny(path, "*?[") }

// Load reads the configuration in dir (which need not exist): banwatch.toml,
// the shipped jails and filters, and those in dir/jails and dir/filters.
// Every error names its file, line and key; all errors found are returned
// together.
func Load(dir string) (*Config, error) {
	cfg := &Config{Dir: dir, Filters: map[string]*filter.Filter{}}
	var errs []error
	// The jails are read first, so that [notify] can name them; the
	// daemon's errors still come first.
	filters, ferr := LoadFilters(dir)
	for _, f := range filters {
		cfg.Filters[f.Name] = f
	}
	jails, jerr := loadJails(dir, cfg.Filters, ferr == nil)
	cfg.Jails = jails
	d, err := loadDaemon(filepath.Join(dir, "banwatch.toml"), func(name string) bool {
		return name == ManualJail || cfg.Jail(name) != nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Daemon = d
	for _, err := range []error{ferr, jerr} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// Jail returns the jail called name, or nil.
func (c *Config) Jail(name string) *Jail {
	for i := range c.Jails {
		if c.Jails[i].Name == name {
			return &c.Jails[i]
		}
	}
	return nil
}

type daemonFile struct {
	Daemon struct {
		StateDir *string  `toml:"state_dir"`
		Socket   *string  `toml:"socket"`
		Group    *string  `toml:"socket_group"`
		Firewall *string  `toml:"firewall"`
		Table    *string  `toml:"nft_table"`
		Ignore   []string `toml:"ignore"`
		History  *string  `toml:"history"`
		Metrics  *string  `toml:"metrics"`
		JournalD *string  `toml:"journal_directory"`
		MemLimit *string  `toml:"memory_limit"`
	} `toml:"daemon"`
	Notify  notifyKeys  `toml:"notify"`
	Cluster clusterKeys `toml:"cluster"`
	Web     webKeys     `toml:"web"`
}

var tableName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// loadDaemon reads banwatch.toml; knownJail (nil: no check) tells whether
// a jail named in [notify] exists.
func loadDaemon(file string, knownJail func(string) bool) (Daemon, error) {
	d := Daemon{
		StateDir: DefaultStateDir, Socket: DefaultSocket, Firewall: DefaultFirewall,
		Table: DefaultTable, History: DefaultHistory,
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("config: %w", err)
	}
	var f daemonFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return d, decodeError(file, err)
	}
	var errs []error
	bad := func(reason string, key ...string) {
		errs = append(errs, &Error{File: file, Line: tomlpos.Locate(data, key...), Key: strings.Join(key, "."), Reason: reason})
	}
	for _, k := range md.Undecoded() {
		switch {
		case k[0] == "notify":
			bad("unknown key (known in [notify]: "+notifyKeyList+")", k...)
		case k[0] == "cluster":
			bad("unknown key (known in [cluster]: "+clusterKeyList+")", k...)
		case k[0] == "web":
			bad("unknown key (known in [web]: "+webKeyList+")", k...)
		case k[0] != "daemon":
			bad("unknown table (banwatch.toml holds [daemon], [notify], [cluster] and [web])", k[0])
		default:
			bad("unknown key (known in [daemon]: state_dir, socket, socket_group, firewall, nft_table, ignore, history, metrics, journal_directory, memory_limit)", k...)
		}
	}
	x := &f.Daemon
	if x.StateDir != nil {
		if !filepath.IsAbs(*x.StateDir) {
			bad("must be an absolute path", "daemon", "state_dir")
		}
		d.StateDir = *x.StateDir
	}
	if x.Socket != nil {
		if !filepath.IsAbs(*x.Socket) {
			bad("must be an absolute path", "daemon", "socket")
		}
		d.Socket = *x.Socket
	}
	if x.Group != nil && *x.Group != "" {
		g, err := user.LookupGroup(*x.Group)
		if err != nil {
			bad(fmt.Sprintf("no group %q on this system", *x.Group), "daemon", "socket_group")
		} else {
			d.SocketGroup = *x.Group
			d.SocketGID, _ = strconv.Atoi(g.Gid)
		}
	}
	if x.Firewall != nil {
		if *x.Firewall != "nftables" && *x.Firewall != "log" {
			bad(fmt.Sprintf("%q: want \"nftables\" or \"log\"", *x.Firewall), "daemon", "firewall")
		}
		d.Firewall = *x.Firewall
	}
	if x.Table != nil {
		if !tableName.MatchString(*x.Table) {
			bad(fmt.Sprintf("%q: want a name of letters, digits, _ and -", *x.Table), "daemon", "nft_table")
		}
		d.Table = *x.Table
	}
	if x.History != nil {
		h, err := ParseDuration(*x.History)
		if err != nil {
			bad(err.Error(), "daemon", "history")
		}
		d.History = h
	}
	if x.JournalD != nil && *x.JournalD != "" {
		if !filepath.IsAbs(*x.JournalD) {
			bad("must be an absolute path", "daemon", "journal_directory")
		}
		d.JournalDirectory = *x.JournalD
	}
	if x.MemLimit != nil {
		n, err := ParseSize(*x.MemLimit)
		switch {
		case err != nil:
			bad(err.Error(), "daemon", "memory_limit")
		case n < MinMemoryLimit:
			bad(fmt.Sprintf("%q: want at least 64MiB", *x.MemLimit), "daemon", "memory_limit")
		default:
			d.MemoryLimit = n
		}
	}
	if x.Metrics != nil && *x.Metrics != "" {
		if err := checkListenAddr(*x.Metrics); err != nil {
			bad(err.Error(), "daemon", "metrics")
		}
		d.Metrics = *x.Metrics
	}
	ign, err := parsePrefixes(x.Ignore)
	if err != nil {
		bad(err.Error(), "daemon", "ignore")
	}
	d.Ignore = ign
	n, nerrs := parseNotify(file, data, &f.Notify, knownJail)
	d.Notify = n
	errs = append(errs, nerrs...)
	c, cerrs := parseCluster(file, data, &f.Cluster)
	d.Cluster = c
	errs = append(errs, cerrs...)
	w, werrs := parseWeb(file, data, &f.Web, d.Metrics)
	d.Web = w
	errs = append(errs, werrs...)
	return d, errors.Join(errs...)
}

// checkListenAddr checks a TCP listening address without I/O: an IP
// address (or none, for every interface; or localhost) and a port.
func checkListenAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q: want HOST:PORT, such as \"127.0.0.1:9631\"", a)
	}
	// Port 0 takes a free port, which the daemon logs (tests use it).
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", a)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: the host must be an IP address or localhost", a)
		}
	}
	return nil
}

// parsePrefixes reads addresses and CIDR prefixes; duplicates are refused.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, s := range list {
		p, err := ban.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, fmt.Errorf("%q is listed twice", s)
		}
		seen[p] = true
		out = append(out, p)
	}
	return out, nil
}

// jailKeys is what a jail file's table decodes into; nil means "not set
// here", so that a local file overrides only the keys it names.
type jailKeys struct {
	Enabled      any            `toml:"enabled"`
	Filter       *string        `toml:"filter"`
	Logs         []string       `toml:"logs"`
	Journal      []string       `toml:"journal"`
	Ports        []int64        `toml:"ports"`
	MaxStrikes   *int64         `toml:"max_strikes"`
	FindTime     *string        `toml:"find_time"`
	BanTime      *string        `toml:"ban_time"`
	Weights      map[string]int `toml:"weights"`
	Trust        *string        `toml:"trust"`
	DNSBL        []string       `toml:"dnsbl"`
	DNSBLWeight  *int64         `toml:"dnsbl_weight"`
	DNSServer    *string        `toml:"dns_server"`
	ConnLimit    *string        `toml:"conn_limit"`
	Burst        *int64         `toml:"burst"`
	ConnLimitBan *bool          `toml:"conn_limit_ban"`
	Instant      *struct {
		HELO   []string `toml:"helo"`
		User   []string `toml:"user"`
		Events []string `toml:"events"`
	} `toml:"instant"`
	Learn *struct {
		Fields   []string `toml:"fields"`
		Distinct *int64   `toml:"distinct"`
		Window   *string  `toml:"window"`
		TTL      *string  `toml:"ttl"`
	} `toml:"learn"`
	Escalate *struct {
		Factor *float64 `toml:"factor"`
		Max    *string  `toml:"max"`
	} `toml:"escalate"`
	Subnet *struct {
		V4     *int64  `toml:"v4"`
		V6     *int64  `toml:"v6"`
		Bans   *int64  `toml:"bans"`
		Window *string `toml:"window"`
	} `toml:"subnet"`
	Ignore     []string `toml:"ignore"`
	Evidence   *int64   `toml:"evidence"`
	MaxTracked *int64   `toml:"max_tracked"`
}

const jailKeyList = "enabled, filter, logs, journal, ports, max_strikes, find_time, ban_time, weights, ignore, evidence, max_tracked, trust, " +
	"dnsbl, dnsbl_weight, dns_server, conn_limit, burst, conn_limit_ban, " +
	"instant (helo, user, events), learn (fields, distinct, window, ttl), escalate (factor, max), subnet (v4, v6, bans, window)"

// journalMatch is a journalctl match: a field name, "=", a value.
var journalMatch = regexp.MustCompile(`^[A-Z0-9_]{1,64}=[^\n]*$`)

var jailName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

type jailSource struct {
	file string
	data []byte
}

// loadJails reads the shipped jail files, then dir/jails/*.toml in name
// order; a local table named like a shipped jail overrides the keys it
// sets. A jail defined twice among the local files is an error.
func loadJails(dir string, filters map[string]*filter.Filter, checkFilters bool) ([]Jail, error) {
	var files []jailSource
	shipped, err := fs.Glob(banwatch.Defaults, "jails/*.toml")
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	sort.Strings(shipped)
	for _, p := range shipped {
		data, err := banwatch.Defaults.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		files = append(files, jailSource{file: "embedded:" + p, data: data})
	}
	nShipped := len(files)
	if dir != "" {
		local, err := filepath.Glob(filepath.Join(dir, "jails", "*.toml"))
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		sort.Strings(local)
		for _, p := range local {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("config: %w", err)
			}
			files = append(files, jailSource{file: p, data: data})
		}
	}

	type layer struct {
		keys jailKeys
		src  jailSource
	}
	layers := map[string][]layer{}
	localOwner := map[string]string{}
	var errs []error
	for i, src := range files {
		var tables map[string]jailKeys
		md, err := toml.Decode(string(src.data), &tables)
		if err != nil {
			err = decodeError(src.file, err)
			if e, ok := err.(*Error); ok && strings.Contains(e.Reason, "config.jailKeys: expected table") {
				e.Reason = "not a jail table: a jail file holds tables like [postfix]"
			}
			errs = append(errs, err)
			continue
		}
		for _, k := range md.Undecoded() {
			if len(k) >= 2 && k[1] == "weights" {
				continue // checked below, with a better message
			}
			reason := "unknown key (jail keys: " + jailKeyList + ")"
			if len(k) == 1 {
				reason = "not a jail table: a jail file holds tables like [postfix]"
			}
			errs = append(errs, &Error{File: src.file, Line: tomlpos.Locate(src.data, k...), Key: strings.Join(k, "."), Reason: reason})
		}
		names := make([]string, 0, len(tables))
		for n := range tables {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if n == ManualJail {
				errs = append(errs, &Error{File: src.file, Line: tomlpos.Locate(src.data, n), Key: n,
					Reason: "the name is reserved for bans made with banctl ban"})
				continue
			}
			if !jailName.MatchString(n) {
				errs = append(errs, &Error{File: src.file, Line: tomlpos.Locate(src.data, n), Key: n,
					Reason: "a jail name is lower-case letters, digits, _ and -, at most 32, starting with a letter"})
				continue
			}
			if i >= nShipped {
				if prev, ok := localOwner[n]; ok {
					errs = append(errs, &Error{File: src.file, Line: tomlpos.Locate(src.data, n), Key: n,
						Reason: "jail defined again (also in " + prev + "); define each jail in one file"})
					continue
				}
				localOwner[n] = src.file
			}
			layers[n] = append(layers[n], layer{keys: tables[n], src: src})
		}
	}

	names := make([]string, 0, len(layers))
	for n := range layers {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Jail
	for _, n := range names {
		j := Jail{
			Name: n, Enabled: EnabledAuto, Filter: n, MaxStrikes: DefaultMaxStrikes,
			FindTime: DefaultFindTime, BanTime: DefaultBanTime, Evidence: DefaultEvidence,
			MaxTracked:  DefaultMaxTracked,
			Learn:       jail.Learn{Window: time.Hour, TTL: 7 * 24 * time.Hour},
			Escalate:    jail.Escalate{Max: 90 * 24 * time.Hour},
			Subnet:      jail.Subnet{Window: 24 * time.Hour},
			DNSBLWeight: 4,
		}
		for i := range j.Weights {
			j.Weights[i] = 1
		}
		j.Weights[event.AuthSuccess.Index()] = 0
		for _, l := range layers[n] {
			if err := apply(&j, l.keys, l.src); err != nil {
				errs = append(errs, err)
			}
		}
		if checkFilters && filters[j.Filter] == nil {
			src := layers[n][len(layers[n])-1].src
			var have []string
			for name := range filters {
				have = append(have, name)
			}
			sort.Strings(have)
			errs = append(errs, &Error{File: src.file, Line: tomlpos.Locate(src.data, n, "filter"), Key: n + ".filter",
				Reason: fmt.Sprintf("no filter %q (have: %s)", j.Filter, strings.Join(have, ", "))})
		}
		if j.ConnLimitBan && j.ConnLimit == nil {
			src := layers[n][len(layers[n])-1].src
			errs = append(errs, &Error{File: src.file, Line: tomlpos.Locate(src.data, n, "conn_limit_ban"), Key: n + ".conn_limit_ban",
				Reason: "conn_limit_ban needs conn_limit"})
		}
		if j.Enabled != EnabledFalse && len(j.Logs) == 0 && len(j.Journal) == 0 {
			src := layers[n][len(layers[n])-1].src
			errs = append(errs, &Error{File: src.file, Line: tomlpos.Locate(src.data, n), Key: n + ".logs",
				Reason: "an enabled jail needs at least one log (logs or journal)"})
		}
		out = append(out, j)
	}
	return out, errors.Join(errs...)
}

// apply sets the keys k names on j, checking each; errors name src's file,
// the key's line and the key.
func apply(j *Jail, k jailKeys, src jailSource) error {
	var errs []error
	j.File = src.file
	bad := func(reason string, key ...string) {
		path := append([]string{j.Name}, key...)
		errs = append(errs, &Error{File: src.file, Line: tomlpos.Locate(src.data, path...), Key: strings.Join(path, "."), Reason: reason})
	}
	switch v := k.Enabled.(type) {
	case nil:
	case bool:
		j.Enabled = EnabledFalse
		if v {
			j.Enabled = EnabledTrue
		}
	case string:
		if v != "auto" {
			bad(fmt.Sprintf("%q: want true, false or \"auto\"", v), "enabled")
		}
		j.Enabled = EnabledAuto
	default:
		bad(fmt.Sprintf("%v: want true, false or \"auto\"", v), "enabled")
	}
	if k.Filter != nil {
		j.Filter = *k.Filter
	}
	if k.Logs != nil {
		seen := map[string]bool{}
		j.Logs = nil
		for _, p := range k.Logs {
			switch {
			case !filepath.IsAbs(p):
				bad(fmt.Sprintf("%q: logs are absolute paths", p), "logs")
			case IsPattern(p) && !validPattern(p):
				bad(fmt.Sprintf("%q is not a valid pattern", p), "logs")
			case IsPattern(filepath.Dir(p)):
				bad(fmt.Sprintf("%q: only the file name may be a pattern", p), "logs")
			case seen[filepath.Clean(p)]:
				bad(fmt.Sprintf("%q is listed twice", p), "logs")
			default:
				seen[filepath.Clean(p)] = true
				j.Logs = append(j.Logs, filepath.Clean(p))
			}
		}
	}
	if k.Journal != nil {
		j.Journal = nil
		for i, m := range k.Journal {
			switch {
			case m == "+" && (i == 0 || i == len(k.Journal)-1 || k.Journal[i-1] == "+"):
				bad(`"+" must stand between matches`, "journal")
			case m != "+" && !journalMatch.MatchString(m):
				bad(fmt.Sprintf("%q: want FIELD=value (a field name of capitals, digits and _), or \"+\"", m), "journal")
			default:
				j.Journal = append(j.Journal, m)
			}
		}
	}
	if k.Ports != nil {
		seen := map[int64]bool{}
		j.Ports = nil
		for _, p := range k.Ports {
			switch {
			case p < 1 || p > 65535:
				bad(fmt.Sprintf("%d is not a port", p), "ports")
			case seen[p]:
				bad(fmt.Sprintf("port %d is listed twice", p), "ports")
			default:
				seen[p] = true
				j.Ports = append(j.Ports, uint16(p))
			}
		}
		sort.Slice(j.Ports, func(a, b int) bool { return j.Ports[a] < j.Ports[b] })
	}
	if k.MaxStrikes != nil {
		if *k.MaxStrikes < 1 || *k.MaxStrikes > 1000 {
			bad(fmt.Sprintf("%d: want 1 to 1000", *k.MaxStrikes), "max_strikes")
		} else {
			j.MaxStrikes = int(*k.MaxStrikes)
		}
	}
	dur := func(p *string, min time.Duration, dst *time.Duration, key ...string) {
		if p == nil {
			return
		}
		d, err := ParseDuration(*p)
		if err != nil {
			bad(err.Error(), key...)
			return
		}
		if d < min {
			bad(fmt.Sprintf("%q is shorter than %s", *p, min), key...)
			return
		}
		*dst = d
	}
	dur(k.FindTime, time.Second, &j.FindTime, "find_time")
	dur(k.BanTime, time.Second, &j.BanTime, "ban_time")
	for name, w := range k.Weights {
		kind := event.Kind(name)
		switch {
		case !kind.Valid():
			var known []string
			for _, e := range event.Known {
				known = append(known, string(e))
			}
			bad(fmt.Sprintf("unknown event %q (events: %s)", name, strings.Join(known, ", ")), "weights", name)
		case kind == event.AuthSuccess && w != 0:
			bad("auth_success is never a strike", "weights", name)
		case w < 0 || w > 1000:
			bad(fmt.Sprintf("%d: want 0 (does not count) to 1000", w), "weights", name)
		default:
			j.Weights[kind.Index()] = w
		}
	}
	if k.Ignore != nil {
		ign, err := parsePrefixes(k.Ignore)
		if err != nil {
			bad(err.Error(), "ignore")
		}
		j.Ignore = ign
	}
	if k.Evidence != nil {
		if *k.Evidence < 0 || *k.Evidence > 1000 {
			bad(fmt.Sprintf("%d: want 0 to 1000", *k.Evidence), "evidence")
		} else {
			j.Evidence = int(*k.Evidence)
		}
	}
	if k.MaxTracked != nil {
		if *k.MaxTracked < 1000 || *k.MaxTracked > 100_000_000 {
			bad(fmt.Sprintf("%d: want 1000 to 100000000", *k.MaxTracked), "max_tracked")
		} else {
			j.MaxTracked = int(*k.MaxTracked)
		}
	}
	dur(k.Trust, 0, &j.Trust, "trust")
	if k.DNSBL != nil {
		j.DNSBL = nil
		for _, l := range k.DNSBL {
			if _, err := dnsbl.ParseList(l); err != nil {
				bad(err.Error(), "dnsbl")
				continue
			}
			j.DNSBL = append(j.DNSBL, l)
		}
	}
	if k.DNSBLWeight != nil {
		if *k.DNSBLWeight < 0 || *k.DNSBLWeight > 1000 {
			bad(fmt.Sprintf("%d: want 0 to 1000", *k.DNSBLWeight), "dnsbl_weight")
		} else {
			j.DNSBLWeight = int(*k.DNSBLWeight)
		}
	}
	if k.DNSServer != nil {
		j.DNSServer = *k.DNSServer
	}
	if k.ConnLimit != nil {
		if *k.ConnLimit == "" {
			j.ConnLimit = nil
		} else if rate, per, err := ParseRate(*k.ConnLimit); err != nil {
			bad(err.Error(), "conn_limit")
		} else {
			burst := uint32(5)
			if j.ConnLimit != nil {
				burst = j.ConnLimit.Burst
			}
			j.ConnLimit = &ConnLimit{Rate: rate, Per: per, Burst: burst}
		}
	}
	if k.Burst != nil {
		switch {
		case *k.Burst < 1 || *k.Burst > 100000:
			bad(fmt.Sprintf("%d: want 1 to 100000 connections", *k.Burst), "burst")
		case j.ConnLimit == nil:
			bad("burst needs conn_limit", "burst")
		default:
			j.ConnLimit.Burst = uint32(*k.Burst)
		}
	}
	if k.ConnLimitBan != nil {
		j.ConnLimitBan = *k.ConnLimitBan
	}
	if x := k.Instant; x != nil {
		if x.HELO != nil {
			j.Instant.HELO = x.HELO
		}
		if x.User != nil {
			j.Instant.User = x.User
		}
		if x.Events != nil {
			j.Instant.Events = nil
			for _, e := range x.Events {
				if kind := event.Kind(e); kind.Valid() && kind != event.AuthSuccess {
					j.Instant.Events = append(j.Instant.Events, kind)
				} else {
					bad(fmt.Sprintf("%q is not an event that can ban", e), "instant", "events")
				}
			}
		}
	}
	if x := k.Learn; x != nil {
		if x.Fields != nil {
			j.Learn.HELO, j.Learn.User = false, false
			for _, f := range x.Fields {
				switch f {
				case "helo":
					j.Learn.HELO = true
				case "user":
					j.Learn.User = true
				default:
					bad(fmt.Sprintf("%q: the fields are \"helo\" and \"user\"", f), "learn", "fields")
				}
			}
		}
		if x.Distinct != nil {
			if *x.Distinct != 0 && (*x.Distinct < 2 || *x.Distinct > 1000) {
				bad(fmt.Sprintf("%d: want 2 to 1000 addresses, or 0 for off", *x.Distinct), "learn", "distinct")
			} else {
				j.Learn.Distinct = int(*x.Distinct)
			}
		}
		dur(x.Window, time.Second, &j.Learn.Window, "learn", "window")
		dur(x.TTL, time.Second, &j.Learn.TTL, "learn", "ttl")
	}
	if x := k.Escalate; x != nil {
		if x.Factor != nil {
			if *x.Factor < 1 || *x.Factor > 100 {
				bad(fmt.Sprintf("%v: want 1 (off) to 100", *x.Factor), "escalate", "factor")
			} else {
				j.Escalate.Factor = *x.Factor
			}
		}
		dur(x.Max, time.Second, &j.Escalate.Max, "escalate", "max")
	}
	if x := k.Subnet; x != nil {
		bits := func(p *int64, key string, lo, hi int64, dst *int) {
			if p == nil {
				return
			}
			if *p != 0 && (*p < lo || *p > hi) {
				bad(fmt.Sprintf("%d: want %d to %d, or 0 for off", *p, lo, hi), "subnet", key)
				return
			}
			*dst = int(*p)
		}
		bits(x.V4, "v4", 8, 31, &j.Subnet.V4)
		bits(x.V6, "v6", 32, 127, &j.Subnet.V6)
		if x.Bans != nil {
			if *x.Bans != 0 && (*x.Bans < 2 || *x.Bans > 1000) {
				bad(fmt.Sprintf("%d: want 2 to 1000 banned addresses, or 0 for off", *x.Bans), "subnet", "bans")
			} else {
				j.Subnet.Bans = int(*x.Bans)
			}
		}
		dur(x.Window, time.Second, &j.Subnet.Window, "subnet", "window")
	}
	return errors.Join(errs...)
}

func validPattern(p string) bool {
	_, err := filepath.Match(p, "")
	return err == nil
}

// MinMemoryLimit is the smallest memory_limit taken.
const MinMemoryLimit = 64 << 20

// SQLiteMemory is what the store's SQLite may hold outside Go's heap (its
// page caches, at most 16 MiB for the writer and 2 MiB for each of four
// readers, and its own structures): memory_limit less this is Go's limit.
const SQLiteMemory = 32 << 20

// ParseSize reads a size in bytes: a whole number with an optional unit,
// B, KiB, MiB or GiB (powers of 1024), as in "512MiB".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q: want a size such as 512MiB (units B, KiB, MiB, GiB)", s)
	}
	return n * mult, nil
}
