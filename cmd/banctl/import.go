package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/fail2ban"
)

// importChunk is how many bans go in one request: each request is one
// store transaction and one firewall batch.
const importChunk = 10000

// jailMap is the repeatable --jail F2B=BW flag.
type jailMap map[string]string

func (m jailMap) String() string {
	var s []string
	for k, v := range m {
		s = append(s, k+"="+v)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func (m jailMap) Set(v string) error {
	f2b, bw, ok := strings.Cut(v, "=")
	if !ok || f2b == "" || bw == "" {
		return fmt.Errorf("want F2B=BW (a fail2ban jail and a banwatch jail), got %q", v)
	}
	m[f2b] = bw
	return nil
}

// skipLabels name the reasons an imported ban is left out, as the summary
// shows them.
var skipLabels = map[string]string{
	fail2ban.SkipExpired:       "expired",
	fail2ban.SkipInvalid:       "not an address",
	fail2ban.SkipDuplicate:     "banned longer in another fail2ban jail",
	control.RefusedLoopback:    "loopback",
	control.RefusedIgnored:     "on an ignore list",
	control.RefusedBanned:      "already banned as long",
	control.RefusedUnknownJail: "jail not running",
}

// importResult is one fail2ban ban in banctl import --json.
type importResult struct {
	Type         string     `json:"type"` // "ban"
	Fail2banJail string     `json:"fail2ban_jail"`
	IP           string     `json:"ip"`
	Jail         string     `json:"jail"`
	BannedAt     time.Time  `json:"banned_at"`
	Until        *time.Time `json:"until,omitempty"`
	Result       string     `json:"result"` // "imported", "would_import", "skipped"
	Skip         string     `json:"skip,omitempty"`
	Why          string     `json:"why,omitempty"`
	Reason       string     `json:"reason,omitempty"`
}

func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("import", "fail2ban [--db PATH] [--jail F2B=BW]... [--default-for 7d] [--permanent-for 3650d] [--dry-run] [--json]",
		"Imports fail2ban's active bans into banwatchd, with the time each has left, through the daemon's\n"+
			"socket (stored and in the kernel at once). The database is read read-only. A fail2ban jail goes to\n"+
			"the banwatch jail of its name if that runs, else to the shipped jail for fail2ban's mail and ssh\n"+
			"jails (postfix, postfix-sasl, postfix-rbl, postscreen: postfix; exim, exim-spam: exim; dovecot,\n"+
			"sieve: dovecot; sshd: sshd), else to the manual jail (every port), unless --jail says otherwise.\n"+
			"Expired bans, values that are not addresses, loopback and ignored addresses are skipped and\n"+
			"reported. Permanent fail2ban bans last --permanent-for; bans of older fail2ban versions, which\n"+
			"stored no length, last --default-for from their time. Running it again imports nothing twice.",
		"  banctl import fail2ban --dry-run\n  banctl import fail2ban\n"+
			"  banctl import fail2ban --db /root/fail2ban.sqlite3 --jail recidive=manual --jail nginx-http-auth=manual\n", stderr)
	db := fs.String("db", fail2ban.DefaultDB, "fail2ban's database `PATH`")
	m := jailMap{}
	fs.Var(m, "jail", "send fail2ban jail F2B to banwatch jail BW (`F2B=BW`, repeatable)")
	defFor := fs.String("default-for", "7d", "the length of bans fail2ban stored none for (before 0.11), from their time: a `DURATION`")
	permFor := fs.String("permanent-for", "3650d", "the length of permanent fail2ban bans (bantime -1), from their ban time: a `DURATION`")
	dryRun := fs.Bool("dry-run", false, "show what would be imported (the daemon checks each ban) and change nothing")
	rest, code, ok := parse(fs, args, 1, 1)
	if !ok {
		return code
	}
	if rest[0] != "fail2ban" {
		fmt.Fprintf(stderr, "banctl import: %q: only fail2ban can be imported\n", rest[0])
		return 2
	}
	opt := fail2ban.Options{Map: m, Running: map[string]bool{}}
	for _, f := range []struct {
		name string
		v    string
		dst  *time.Duration
	}{{"default-for", *defFor, &opt.DefaultFor}, {"permanent-for", *permFor, &opt.PermanentFor}} {
		d, err := config.ParseDuration(f.v)
		if err != nil || d < time.Second {
			fmt.Fprintf(stderr, "banctl import: --%s: %q: want a duration of a second or more: 12h, 7d, 3650d\n", f.name, f.v)
			return 2
		}
		*f.dst = d
	}

	client := control.NewClient(*c.socket)
	st, err := client.Status(ctx)
	if err != nil {
		return fail(stderr, "import", err)
	}
	var running []string
	for _, j := range st.Jails {
		if j.Running {
			opt.Running[j.Name] = true
			running = append(running, j.Name)
		}
	}
	for f2b, bw := range m {
		if !opt.Running[bw] {
			fmt.Fprintf(stderr, "banctl import: --jail %s=%s: no jail %q is running (jails: %s)\n", f2b, bw, bw, strings.Join(running, ", "))
			return 2
		}
	}

	d, err := fail2ban.Open(ctx, *db)
	if err != nil {
		fmt.Fprintf(stderr, "banctl import: %v\n", err)
		return 2
	}
	bans, err := d.Bans(ctx)
	d.Close()
	if err != nil {
		fmt.Fprintf(stderr, "banctl import: %v\n", err)
		return 2
	}
	start := time.Now()
	opt.Now = start
	plan := fail2ban.Plan(bans, opt)

	// The bans to send, in chunks; the daemon's refusals come back by
	// index.
	skip := make([]string, len(plan))
	why := make([]string, len(plan))
	var send []int
	for i := range plan {
		skip[i], why[i] = plan[i].Skip, plan[i].Detail
		if plan[i].Skip == "" {
			send = append(send, i)
		}
	}
	for lo := 0; lo < len(send); lo += importChunk {
		part := send[lo:min(lo+importChunk, len(send))]
		req := control.BulkBanRequest{DryRun: *dryRun, Bans: make([]control.BulkBan, len(part))}
		for k, i := range part {
			e := &plan[i]
			req.Bans[k] = control.BulkBan{IP: e.Prefix.String(), Jail: e.Jail, Until: e.Until, Reason: e.Reason}
			if e.Prefix.IsSingleIP() {
				req.Bans[k].IP = e.Prefix.Addr().String()
			}
		}
		rep, err := client.BulkBan(ctx, req)
		if err != nil {
			if lo > 0 {
				fmt.Fprintf(stderr, "banctl import: %d bans were imported before this error\n", lo)
			}
			return fail(stderr, "import", err)
		}
		for _, r := range rep.Refused {
			if r.Index >= 0 && r.Index < len(part) {
				skip[part[r.Index]], why[part[r.Index]] = r.Code, r.Reason
			}
		}
	}
	took := time.Since(start)
	sums := fail2ban.Summarize(plan, opt, func(i int) string { return skip[i] })

	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	imported, permanent, unknown := 0, 0, 0
	for i := range plan {
		if skip[i] == "" {
			imported++
			if plan[i].Ban.Permanent {
				permanent++
			}
			if plan[i].Ban.Unknown {
				unknown++
			}
		}
	}
	if *c.json {
		enc := json.NewEncoder(w)
		for i := range plan {
			e := &plan[i]
			r := importResult{Type: "ban", Fail2banJail: e.Ban.Jail, IP: e.Ban.IP, Jail: e.Jail, BannedAt: e.Ban.Time.UTC(),
				Result: "imported", Skip: skip[i], Why: why[i], Reason: e.Reason}
			if !e.Until.IsZero() {
				u := e.Until.UTC()
				r.Until = &u
			}
			switch {
			case skip[i] != "":
				r.Result, r.Reason = "skipped", ""
			case *dryRun:
				r.Result = "would_import"
			}
			enc.Encode(r)
		}
		for _, s := range sums {
			enc.Encode(struct {
				Type string `json:"type"`
				fail2ban.Summary
			}{"jail", s})
		}
		enc.Encode(map[string]any{"type": "summary", "db": *db, "schema": d.Version, "bans": len(plan), "imported": imported,
			"skipped": len(plan) - imported, "permanent": permanent, "unknown_length": unknown, "dry_run": *dryRun, "seconds": took.Seconds()})
		return 0
	}
	fmt.Fprintf(w, "fail2ban database %s (schema %d): %d bans in %d jails\n", *db, d.Version, len(plan), len(sums))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	verb := "IMPORTED"
	if *dryRun {
		verb = "WOULD IMPORT"
	}
	fmt.Fprintf(tw, "FAIL2BAN JAIL\tBANWATCH JAIL\t%s\tSKIPPED\t\n", verb)
	for _, s := range sums {
		var parts []string
		for code, n := range s.Skipped {
			parts = append(parts, fmt.Sprintf("%d %s", n, label(code)))
		}
		sort.Strings(parts)
		jail := s.Jail
		if s.Note != "" {
			jail += " (" + s.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t\n", s.Fail2banJail, jail, s.Imported, strings.Join(parts, ", "))
	}
	tw.Flush()
	for i := range plan {
		switch skip[i] {
		case "", fail2ban.SkipExpired, control.RefusedBanned, fail2ban.SkipDuplicate:
		default:
			fmt.Fprintf(w, "skipped %s (fail2ban jail %s): %s\n", plan[i].Ban.IP, plan[i].Ban.Jail, why[i])
		}
	}
	if *dryRun {
		fmt.Fprintf(w, "would import %d bans (dry run: nothing changed)", imported)
	} else {
		fmt.Fprintf(w, "imported %d bans in %s", imported, took.Round(time.Millisecond))
	}
	var notes []string
	if permanent > 0 {
		notes = append(notes, fmt.Sprintf("%d permanent in fail2ban, here for %s", permanent, config.FormatDuration(opt.PermanentFor)))
	}
	if unknown > 0 {
		notes = append(notes, fmt.Sprintf("%d of a length fail2ban did not store, taken as %s from their time (--default-for)", unknown, config.FormatDuration(opt.DefaultFor)))
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(notes, "; "))
	}
	fmt.Fprintln(w)
	return 0
}

func label(code string) string {
	if l, ok := skipLabels[code]; ok {
		return l
	}
	return code
}
