// Package control is the protocol between banctl and banwatchd: HTTP with
// JSON on a unix socket. The daemon serves it (Server, over a Handler the
// daemon implements); banctl uses Client.
//
// Endpoints (all under /v1):
//
//	GET  /v1/status                       Status
//	GET  /v1/bans?jail=J&ip=ADDR|CIDR     active bans, JSON Lines of Ban
//	GET  /v1/history?ip=&jail=&since=&limit=  bans active and ended, newest first, JSON Lines of Ban
//	POST /v1/ban      BanRequest          {"bans":[Ban]}
//	POST /v1/bulkban  BulkBanRequest      BulkBanReply: many bans in one transaction and one firewall batch
//	POST /v1/unban    UnbanRequest        {"bans":[Ban]}
//	POST /v1/reload   no body, or {}      {} or an error
//	GET  /v1/fingerprints?jail=J          {"fingerprints":[Fingerprint]}
//	POST /v1/forget   ForgetRequest       {"fingerprints":[Fingerprint]} forgotten
//	GET  /v1/top?since=&n=                TopReply: the largest counts of addresses, prefixes, jails, fingerprints
//	GET  /v1/hours?since=&jail=           HoursReply: bans per hour and jail, events per hour and kind
//
// A since is an RFC 3339 time (absent: all the history).
//
// A request body is one JSON object of the request's fields, nothing else
// (no unknown field, no second value), of at most 64 KiB (a bulk ban's:
// MaxBulkBody). Errors are {"error":"reason"} with a 4xx status for a bad
// request (400 malformed, 404 unknown jail, 408 not sent in time, 409
// refused such as an ignored address, 413 too large) and 5xx when the
// daemon failed. A client has 10 s to send a request (a bulk ban's body a
// minute), and a kept-alive connection is closed after 30 s without one.
// The socket is mode 0600 (0660 for the configured group): the kernel
// keeps everyone else out. The server learns the peer's uid from the
// kernel (SO_PEERCRED) and records it as who unbanned.
package control

import (
	"fmt"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
)

// DefaultSocket is where banctl looks for the daemon without --socket or
// BANWATCH_SOCKET.
const DefaultSocket = "/run/banwatch/banwatch.sock"

// Ban is one ban as the protocol carries it.
type Ban struct {
	ID         int64      `json:"id"`
	IP         string     `json:"ip"`     // the address, or the CIDR of a subnet ban
	Prefix     string     `json:"prefix"` // always a CIDR: 203.0.113.7/32
	Jail       string     `json:"jail"`
	Origin     string     `json:"origin"` // "jail" or "manual"
	Since      time.Time  `json:"since"`
	Until      time.Time  `json:"until"`
	Strikes    int        `json:"strikes"`
	Reason     string     `json:"reason"`
	FirstEvent *time.Time `json:"first_event,omitempty"`
	LastEvent  *time.Time `json:"last_event,omitempty"`
	Ended      string     `json:"ended,omitempty"` // "", "expired", "unbanned", "replaced"
	EndedAt    *time.Time `json:"ended_at,omitempty"`
	EndedBy    string     `json:"ended_by,omitempty"`
	Evidence   []string   `json:"evidence,omitempty"`
	// Node is the cluster node that made the ban; a daemon in cluster
	// mode names itself for its own bans, one without leaves it out.
	Node string `json:"node,omitempty"`
}

// FromBan converts a stored ban; evidence is included when withEvidence.
func FromBan(b *ban.Ban, withEvidence bool) Ban {
	out := Ban{
		ID: b.ID, IP: ban.IP(b.Prefix), Prefix: b.Prefix.String(), Jail: b.Jail, Origin: b.Origin,
		Since: b.Start.UTC(), Until: b.End.UTC(), Strikes: b.Strikes, Reason: b.Reason,
		Ended: b.Ended, EndedBy: b.EndedBy, Node: b.Node,
	}
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	out.FirstEvent, out.LastEvent, out.EndedAt = opt(b.FirstEvent), opt(b.LastEvent), opt(b.EndedAt)
	if withEvidence {
		out.Evidence = b.Evidence
	}
	return out
}

// BanRequest asks for a manual ban.
type BanRequest struct {
	IP     string `json:"ip"`               // an address or a CIDR prefix
	Jail   string `json:"jail,omitempty"`   // default "manual": every port
	For    string `json:"for,omitempty"`    // a duration ("7d"); default the jail's ban_time
	Reason string `json:"reason,omitempty"` // recorded with the ban
	Force  bool   `json:"force,omitempty"`  // ban even an ignored address (never loopback)
}

// BulkBanRequest asks for many manual bans at once (banctl import). Each
// entry is checked as a BanRequest is (the address, the jail, the
// duration, the ignore lists unless Force, loopback always) and refused
// alone: a refused entry does not stop the others. An entry is also refused
// when its prefix is already banned in its jail until the entry's end or
// later (so that sending the same request twice changes nothing), or when
// an earlier entry has the same prefix and jail. The entries that pass are
// stored in one transaction and reach the kernel in one batch. At most
// MaxBulk entries and MaxBulkBody bytes.
type BulkBanRequest struct {
	Bans   []BulkBan `json:"bans"`
	Force  bool      `json:"force,omitempty"`   // ban even ignored addresses (never loopback)
	DryRun bool      `json:"dry_run,omitempty"` // check and answer as if, but change nothing
}

// BulkBan is one entry of a BulkBanRequest. Until, when set, is the ban's
// end (it must be at least a second ahead); otherwise For as in BanRequest.
type BulkBan struct {
	IP     string    `json:"ip"`
	Jail   string    `json:"jail,omitempty"` // default "manual": every port
	For    string    `json:"for,omitempty"`
	Until  time.Time `json:"until,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// Limits of a BulkBanRequest.
const (
	MaxBulk     = 100_000
	MaxBulkBody = 64 << 20
)

// BulkBanReply answers a BulkBanRequest: the bans made (or, in a dry run,
// that would be), in the order of the entries, and the entries refused.
type BulkBanReply struct {
	Bans    []Ban     `json:"bans"`
	Refused []Refusal `json:"refused"`
}

// Refusal is an entry of a BulkBanRequest that was not banned.
type Refusal struct {
	Index  int    `json:"index"` // the entry's index in the request
	IP     string `json:"ip"`
	Jail   string `json:"jail"`
	Code   string `json:"code"`   // one of the Refused* codes
	Reason string `json:"reason"` // as a BanRequest of the entry would be answered
}

// Codes of a Refusal.
const (
	RefusedInvalid     = "invalid"       // a bad address, duration or end
	RefusedUnknownJail = "unknown_jail"  // no such jail runs
	RefusedLoopback    = "loopback"      // loopback is never banned
	RefusedIgnored     = "ignored"       // on an ignore list, or of this host, and no Force
	RefusedBanned      = "banned_longer" // already banned in the jail as long or longer
	RefusedDuplicate   = "duplicate"     // an earlier entry has the same prefix and jail
)

// UnbanRequest asks to lift bans: of IP in Jail, of IP in every jail
// (AllJails), or every active ban (All, which IP must not accompany).
type UnbanRequest struct {
	IP       string `json:"ip,omitempty"`
	Jail     string `json:"jail,omitempty"`
	AllJails bool   `json:"all_jails,omitempty"`
	All      bool   `json:"all,omitempty"`
}

// BansReply answers ban and unban: the bans made or ended.
type BansReply struct {
	Bans []Ban `json:"bans"`
}

// Status is what banctl status shows.
type Status struct {
	Version  string       `json:"version"`
	Started  time.Time    `json:"started"`
	Uptime   float64      `json:"uptime_seconds"`
	Config   string       `json:"config"`
	StateDir string       `json:"state_dir"`
	Firewall string       `json:"firewall"`
	Table    string       `json:"table"`
	Skipped  int64        `json:"lines_skipped"`
	Jails    []JailStatus `json:"jails"`
	// Cluster is set in cluster mode.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// ClusterStatus is the state of cluster mode in Status.
type ClusterStatus struct {
	Node         string `json:"node"`
	ShareStrikes bool   `json:"share_strikes"`
	Connected    bool   `json:"connected"` // listening for other nodes' changes
	Pending      int    `json:"pending"`   // changes waiting to be sent
	Sent         int64  `json:"sent"`      // changes sent since the start
	Received     int64  `json:"received"`  // other nodes' changes applied since the start
	Cursor       int64  `json:"cursor"`    // the number of the last change applied
}

// JailStatus is one jail in Status.
type JailStatus struct {
	Name       string      `json:"name"`
	Enabled    string      `json:"enabled"` // "true", "false", "auto"
	Running    bool        `json:"running"`
	Filter     string      `json:"filter,omitempty"`
	Ports      []uint16    `json:"ports,omitempty"`
	MaxStrikes int         `json:"max_strikes,omitempty"`
	FindTime   string      `json:"find_time,omitempty"`
	BanTime    string      `json:"ban_time,omitempty"`
	Logs       []LogStatus `json:"logs,omitempty"`
	Lines      int64       `json:"lines"`
	Events     int64       `json:"events"`
	Unparsable int64       `json:"unparsable"`
	Strikes    int64       `json:"strikes"`
	// Tracked is how many addresses the jail counts strikes of now
	// (bounded by max_tracked), as of the processor's last batch.
	Tracked  int64 `json:"tracked"`
	Forgiven int64 `json:"forgiven_trusted"` // failed logins and bad HELOs of trusted clients, not counted
	BansRun  int64 `json:"bans_since_start"`
	Active   int   `json:"active_bans"`
	Total    int   `json:"bans_total"`
	// DNSBL counts the jail's block list look-ups, when it has lists.
	DNSBL *DNSBLStatus `json:"dnsbl,omitempty"`
	// ConnLimit is the jail's kernel connection limit, e.g. "10/1m0s burst 5".
	ConnLimit string `json:"conn_limit,omitempty"`
}

// DNSBLStatus counts a jail's DNSBL look-ups.
type DNSBLStatus struct {
	Lists     []string `json:"lists"`
	Lookups   uint64   `json:"lookups"`
	CacheHits uint64   `json:"cache_hits"`
	Listed    uint64   `json:"listed"`
	NotListed uint64   `json:"not_listed"`
	Refused   uint64   `json:"refused"`
	Errors    uint64   `json:"errors"`
	Dropped   uint64   `json:"dropped"`
}

// LogStatus is one followed log in JailStatus.
type LogStatus struct {
	Path    string `json:"path"`
	File    string `json:"file,omitempty"` // the file followed, for a pattern
	Open    bool   `json:"open"`
	Lines   int64  `json:"lines"`
	Skipped int64  `json:"skipped"`
	Offset  int64  `json:"offset"`
	Inode   uint64 `json:"inode,omitempty"`
}

// Fingerprint is a learned fingerprint: a HELO or user name many
// addresses failed with, which bans on sight until Until.
type Fingerprint struct {
	Jail  string    `json:"jail"`
	Value string    `json:"value"` // "helo=ylmf-pc", "user=admin"
	Until time.Time `json:"until,omitzero"`
}

// ForgetRequest asks to forget a learned fingerprint.
type ForgetRequest struct {
	Value string `json:"value"` // "helo=x", "user=x", or x for both
	Jail  string `json:"jail,omitempty"`
}

// Limits of a top request: how many entries each list has by default and
// at most.
const (
	DefaultTop = 10
	MaxTop     = 1000
)

// TopReply answers top: how many bans began since Since, and among them
// the largest counts of each kind, largest first (ties in key order: in
// address order for addresses and prefixes), at most n of each.
type TopReply struct {
	Since time.Time `json:"since"` // zero for all the history
	Bans  int       `json:"bans"`
	// Addresses ranks the addresses and prefixes as banned ("192.0.2.7",
	// "2001:db8::/64").
	Addresses []Count `json:"addresses"`
	// Nets24 and Nets64 rank the IPv4 /24s and IPv6 /64s the bans fall in
	// ("192.0.2.0/24"); a ban of a wider prefix counts under the /24 or
	// /64 of its first address.
	Nets24 []Count `json:"nets24"`
	Nets64 []Count `json:"nets64"`
	Jails  []Count `json:"jails"`
	// Fingerprints ranks the reasons of the bans made on sight: "instant
	// helo=x", "instant user=x", "instant KIND", and learned fingerprints
	// as "fingerprint helo=x".
	Fingerprints []Count `json:"fingerprints"`
}

// Count is an entry of a TopReply list: a key and its bans.
type Count struct {
	Key  string `json:"key"`
	Bans int    `json:"bans"`
}

// HoursReply answers hours: the bans and the events counted per hour,
// from the hour that holds the request's since. Hours without bans (or
// events) are left out.
type HoursReply struct {
	Since  time.Time   `json:"since"`  // the start of the first hour, UTC; zero for all the history
	Bans   []BanHour   `json:"bans"`   // by hour, then jail
	Events []EventHour `json:"events"` // by hour, then kind
}

// BanHour is how many bans of a jail began in an hour.
type BanHour struct {
	Hour time.Time `json:"hour"` // its start, UTC
	Jail string    `json:"jail"`
	Bans int       `json:"bans"`
}

// EventHour is how many events (strikes) of a kind the jails counted in an
// hour.
type EventHour struct {
	Hour   time.Time `json:"hour"` // its start, UTC
	Kind   string    `json:"kind"`
	Events int       `json:"events"`
}

// Error is a refusal or failure the daemon answered with.
type Error struct {
	Status int    // the HTTP status: 4xx refused, 5xx failed
	Msg    string // the daemon's reason
}

func (e *Error) Error() string { return e.Msg }

// Errorf returns an *Error with status and a formatted reason.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}
