package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
)

// common holds the options every daemon command takes.
type common struct {
	socket *string
	json   *bool
}

// newFlags makes a command's flag set with --socket and --json, and its
// usage text with examples.
func newFlags(name, synopsis, about, examples string, stderr io.Writer) (*flag.FlagSet, common) {
	fs := flag.NewFlagSet("banctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("BANWATCH_SOCKET")
	if def == "" {
		def = control.DefaultSocket
	}
	c := common{
		socket: fs.String("socket", def, "the daemon's control socket `PATH` (also BANWATCH_SOCKET)"),
		json:   fs.Bool("json", false, "print JSON Lines: one object per line"),
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: banctl %s %s\n%s\n\noptions:\n", name, synopsis, about)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nexamples:\n%s", examples)
	}
	return fs, c
}

// parse parses args; it returns the positional arguments, or an exit
// status when the command is done (0 for --help, 2 for bad usage).
func parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, int, bool) {
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		return nil, 2, false
	}
	if len(rest) < minArgs || maxArgs >= 0 && len(rest) > maxArgs {
		fmt.Fprintf(fs.Output(), "%s: wrong number of arguments\n", fs.Name())
		fs.Usage()
		return nil, 2, false
	}
	return rest, 0, true
}

// fail reports err and returns the exit status: 1 when the daemon refused
// or failed, 2 when it could not be reached.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "banctl %s: %v\n", cmd, err)
	if errors.Is(err, control.ErrUnreachable) {
		return 2
	}
	return 1
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("status", "[--json]", "Shows the daemon's version and uptime, the firewall, and per jail its logs and counts.",
		"  banctl status\n  banctl status --json | jq '.jails[] | {name, active_bans}'\n", stderr)
	if _, code, ok := parse(fs, args, 0, 0); !ok {
		return code
	}
	st, err := control.NewClient(*c.socket).Status(ctx)
	if err != nil {
		return fail(stderr, "status", err)
	}
	if *c.json {
		json.NewEncoder(stdout).Encode(st)
		return 0
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	fmt.Fprintf(w, "banwatchd %s, up %s (since %s)\n", st.Version, roundDur(time.Duration(st.Uptime*float64(time.Second))),
		st.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "firewall %s, table inet %s; config %s; state %s\n", st.Firewall, st.Table, st.Config, st.StateDir)
	if c := st.Cluster; c != nil {
		conn := "connected"
		if !c.Connected {
			conn = "NOT connected (banning locally; changes wait in the store)"
		}
		strikes := ""
		if c.ShareStrikes {
			strikes = ", strikes shared"
		}
		fmt.Fprintf(w, "cluster node %s%s: %s; %d changes waiting to be sent, %d sent and %d received since the start (last change %d)\n",
			c.Node, strikes, conn, c.Pending, c.Sent, c.Received, c.Cursor)
	}
	if st.Skipped > 0 {
		fmt.Fprintf(w, "lines skipped as too long: %d\n", st.Skipped)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JAIL\tSTATE\tACTIVE\tTOTAL\tLINES\tEVENTS\tSTRIKES\tBANS SINCE START\t")
	for _, j := range st.Jails {
		state := "disabled"
		if j.Running {
			state = "running"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", j.Name, state, j.Active, j.Total, j.Lines, j.Events, j.Strikes, j.BansRun)
	}
	tw.Flush()
	for _, j := range st.Jails {
		if !j.Running || j.Name == config.ManualJail {
			continue
		}
		fmt.Fprintf(w, "\n%s: filter %s, %d strikes in %s ban for %s, ports %s\n", j.Name, j.Filter, j.MaxStrikes, j.FindTime, j.BanTime, config.FormatPorts(j.Ports))
		fmt.Fprintf(w, "  %d addresses tracked\n", j.Tracked)
		if j.Forgiven > 0 {
			fmt.Fprintf(w, "  %d failed logins and bad HELOs of trusted clients forgiven\n", j.Forgiven)
		}
		if j.ConnLimit != "" {
			fmt.Fprintf(w, "  kernel connection limit %s\n", j.ConnLimit)
		}
		if d := j.DNSBL; d != nil {
			fmt.Fprintf(w, "  dnsbl %s: %d look-ups (%d cached), %d listed, %d not, %d refused, %d errors, %d dropped\n",
				strings.Join(d.Lists, " "), d.Lookups, d.CacheHits, d.Listed, d.NotListed, d.Refused, d.Errors, d.Dropped)
		}
		for _, l := range j.Logs {
			state := "waiting for it to appear"
			if l.Open {
				state = fmt.Sprintf("%d lines read, at byte %d", l.Lines, l.Offset)
				if l.Skipped > 0 {
					state += fmt.Sprintf(", %d skipped", l.Skipped)
				}
			}
			name := l.Path
			if l.File != "" {
				name += " → " + l.File
			}
			fmt.Fprintf(w, "  log %s: %s\n", name, state)
		}
	}
	return 0
}

func roundDur(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return config.FormatDuration(d.Round(time.Minute))
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

func cmdList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("list", "[--jail J] [--ip ADDR|CIDR] [--json]",
		"Lists the active bans: address or prefix, jail, since, until (time left), strikes, reason.",
		"  banctl list\n  banctl list --jail postfix --ip 203.0.113.0/24\n  banctl list --json | wc -l\n", stderr)
	jail := fs.String("jail", "", "only the bans of jail `J`")
	ip := fs.String("ip", "", "only bans of `ADDR` or inside (or covering) CIDR")
	if _, code, ok := parse(fs, args, 0, 0); !ok {
		return code
	}
	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	var tw *tabwriter.Writer
	// A daemon in cluster mode names the node of every ban: the NODE
	// column is there when the first ban has one.
	withNode := false
	header := func(node bool) {
		if tw == nil && !*c.json {
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			withNode = node
			if node {
				fmt.Fprint(tw, "NODE\t")
			}
			fmt.Fprintln(tw, "IP\tJAIL\tSINCE\tUNTIL\tLEFT\tSTRIKES\tREASON\t")
		}
	}
	t := time.Now()
	n := 0
	err := control.NewClient(*c.socket).List(ctx, *jail, *ip, func(b *control.Ban, raw []byte) error {
		n++
		if *c.json {
			w.Write(raw)
			return w.WriteByte('\n')
		}
		if n == 1 {
			header(b.Node != "")
		}
		if withNode {
			fmt.Fprintf(tw, "%s\t", cmp.Or(b.Node, "-"))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", b.IP, b.Jail, stamp(b.Since), stamp(b.Until),
			roundDur(b.Until.Sub(t).Truncate(time.Second)), b.Strikes, b.Reason)
		return nil
	})
	header(false)
	if tw != nil {
		tw.Flush()
	}
	if err != nil {
		w.Flush()
		return fail(stderr, "list", err)
	}
	if !*c.json {
		fmt.Fprintf(w, "%d active bans\n", n)
	}
	return 0
}

func stamp(t time.Time) string { return local(t).Format("2006-01-02 15:04:05") }

func cmdBan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("ban", "ADDR|CIDR [--jail J] [--for 7d] [--reason TEXT] [--force]",
		"Bans an address or a prefix by hand: stored first, then in the kernel. Without --jail the ban\n"+
			"covers every port (jail \"manual\"); with it, the jail's ports. Ignored addresses (banwatch.toml's\n"+
			"ignore, this host's addresses) are refused unless --force; loopback always is.",
		"  banctl ban 203.0.113.7\n  banctl ban 198.51.100.0/24 --for 30d --reason \"scanner network\"\n"+
			"  banctl ban 2001:db8::/64 --jail postfix\n", stderr)
	jail := fs.String("jail", "", "the jail `J` whose ports the ban covers (default: manual, every port)")
	dur := fs.String("for", "", "how long: a `DURATION` such as 12h, 7d, 2w (default: the jail's ban_time, 7d for manual)")
	reason := fs.String("reason", "", "why, recorded with the ban (default: who banned)")
	force := fs.Bool("force", false, "ban even an address on the ignore list")
	rest, code, ok := parse(fs, args, 1, 1)
	if !ok {
		return code
	}
	bans, err := control.NewClient(*c.socket).Ban(ctx, control.BanRequest{IP: rest[0], Jail: *jail, For: *dur, Reason: *reason, Force: *force})
	if err != nil {
		return fail(stderr, "ban", err)
	}
	printBans(stdout, *c.json, "banned", bans)
	return 0
}

func printBans(stdout io.Writer, asJSON bool, verb string, bans []control.Ban) {
	enc := json.NewEncoder(stdout)
	for _, b := range bans {
		if asJSON {
			enc.Encode(b)
			continue
		}
		until := ""
		if verb == "banned" {
			until = fmt.Sprintf(" until %s (%s)", stamp(b.Until), config.FormatDuration(b.Until.Sub(b.Since)))
		}
		fmt.Fprintf(stdout, "%s %s in jail %s%s\n", verb, b.IP, b.Jail, until)
	}
}

func cmdUnban(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("unban", "ADDR|CIDR [--jail J | --all-jails] | --all --yes",
		"Lifts bans: removes them from the kernel and closes them in the history, recording who and when.\n"+
			"Without --jail, an address banned in one jail is unbanned there; one banned in several needs\n"+
			"--jail or --all-jails. A CIDR lifts the ban of exactly that prefix.",
		"  banctl unban 203.0.113.7\n  banctl unban 203.0.113.7 --jail postfix\n  banctl unban 198.51.100.0/24 --all-jails\n"+
			"  banctl unban --all --yes\n", stderr)
	jail := fs.String("jail", "", "only in jail `J`")
	allJails := fs.Bool("all-jails", false, "in every jail")
	all := fs.Bool("all", false, "lift every active ban (needs --yes)")
	yes := fs.Bool("yes", false, "confirm --all")
	maxArgs := 1
	if containsFlag(args, "all") {
		maxArgs = 0
	}
	rest, code, ok := parse(fs, args, 1-maxArgs, maxArgs)
	if !ok {
		return code
	}
	req := control.UnbanRequest{Jail: *jail, AllJails: *allJails, All: *all}
	if *all {
		if !*yes {
			fmt.Fprintln(stderr, "banctl unban: --all lifts every active ban; add --yes if you mean it")
			return 2
		}
	} else {
		req.IP = rest[0]
	}
	bans, err := control.NewClient(*c.socket).Unban(ctx, req)
	if err != nil {
		return fail(stderr, "unban", err)
	}
	printBans(stdout, *c.json, "unbanned", bans)
	if *all && !*c.json {
		fmt.Fprintf(stdout, "%d bans lifted\n", len(bans))
	}
	return 0
}

// containsFlag reports whether args hold the boolean flag --name.
func containsFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-"+name || a == "--"+name || a == "--"+name+"=true" || a == "-"+name+"=true" {
			return true
		}
	}
	return false
}

func cmdHistory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("history", "[ADDR|CIDR] [--jail J] [--since 30d] [--limit N] [--json] | --chart [--jail J] [--since 7d] [--json]",
		"Lists past and present bans, newest first, with how each ended (expired, unbanned by whom,\n"+
			"replaced by a newer ban). With --chart, draws the bans begun per hour instead: up to 48 hours\n"+
			"a row per hour with a bar, a longer period a row per day with a cell per hour, in the local\n"+
			"time zone; --json then gives the daemon's counts of bans per hour and jail and of events\n"+
			"per hour and kind.",
		"  banctl history\n  banctl history 203.0.113.7\n  banctl history 198.51.100.0/24 --jail postfix --since 7d\n"+
			"  banctl history --chart\n  banctl history --chart --since 24h --jail postfix\n", stderr)
	jail := fs.String("jail", "", "only the bans of jail `J`")
	since := fs.String("since", "", "only bans that started within `DURATION` (30d, 12h; with --chart, default 7d)")
	limit := fs.Int("limit", 1000, "at most `N` bans (0: all)")
	chart := fs.Bool("chart", false, "draw the bans per hour as a chart")
	rest, code, ok := parse(fs, args, 0, 1)
	if !ok {
		return code
	}
	if *chart {
		if len(rest) > 0 {
			fmt.Fprintln(stderr, "banctl history: --chart counts the bans of every address; it takes no ADDR|CIDR")
			return 2
		}
		return chartHistory(ctx, c, *jail, cmp.Or(*since, "7d"), stdout, stderr)
	}
	return history(ctx, "history", c, rest, *jail, *since, *limit, false, stdout, stderr)
}

func cmdShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("show", "ADDR|CIDR [--jail J] [--json]",
		"Shows every ban of an address or prefix with the log lines (evidence) that caused it.",
		"  banctl show 203.0.113.7\n", stderr)
	jail := fs.String("jail", "", "only the bans of jail `J`")
	limit := fs.Int("limit", 100, "at most `N` bans (0: all)")
	rest, code, ok := parse(fs, args, 1, 1)
	if !ok {
		return code
	}
	return history(ctx, "show", c, rest, *jail, "", *limit, true, stdout, stderr)
}

func history(ctx context.Context, cmd string, c common, rest []string, jail, since string, limit int, evidence bool, stdout, stderr io.Writer) int {
	var ip string
	if len(rest) > 0 {
		ip = rest[0]
	}
	var from time.Time
	if since != "" {
		d, err := config.ParseDuration(since)
		if err != nil {
			fmt.Fprintf(stderr, "banctl %s: --since: %v\n", cmd, err)
			return 2
		}
		from = time.Now().Add(-d)
	}
	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	n := 0
	err := control.NewClient(*c.socket).History(ctx, jail, ip, from, limit, evidence, func(b *control.Ban, raw []byte) error {
		n++
		if *c.json {
			w.Write(raw)
			return w.WriteByte('\n')
		}
		writeHistoryBan(w, b, evidence)
		return nil
	})
	if err != nil {
		w.Flush()
		return fail(stderr, cmd, err)
	}
	if !*c.json {
		if n == 0 {
			fmt.Fprintln(w, "no bans")
		} else if n == limit {
			fmt.Fprintf(w, "(the %d newest; --limit 0 for all)\n", n)
		}
	}
	return 0
}

func writeHistoryBan(w io.Writer, b *control.Ban, evidence bool) {
	how := "active, until " + stamp(b.Until)
	switch b.Ended {
	case "expired":
		how = "expired " + stamp(b.Until)
	case "unbanned":
		how = fmt.Sprintf("unbanned %s by %s", stamp(*b.EndedAt), b.EndedBy)
	case "replaced":
		how = "replaced by a newer ban " + stamp(*b.EndedAt)
	}
	strikes := ""
	if b.Origin == "jail" {
		strikes = fmt.Sprintf(", %d strikes", b.Strikes)
	}
	node := ""
	if b.Node != "" {
		node = " on " + b.Node
	}
	fmt.Fprintf(w, "%s  %s  %s  %s ban%s%s: %s; %s\n", stamp(b.Since), b.IP, b.Jail, b.Origin, node, strikes, b.Reason, how)
	if evidence {
		for _, l := range b.Evidence {
			fmt.Fprintf(w, "    %s\n", l)
		}
		if len(b.Evidence) == 0 {
			fmt.Fprintln(w, "    (no log lines: a manual ban)")
		}
	}
}

func cmdReload(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("reload", "", "Makes the daemon load its configuration again (as SIGHUP does). A configuration with\n"+
		"errors is refused, the errors are printed, and the running one goes on.", "  banctl reload\n", stderr)
	if _, code, ok := parse(fs, args, 0, 0); !ok {
		return code
	}
	if err := control.NewClient(*c.socket).Reload(ctx); err != nil {
		return fail(stderr, "reload", err)
	}
	if !*c.json {
		fmt.Fprintln(stdout, "configuration reloaded")
	}
	return 0
}

func cmdFingerprints(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("fingerprints", "[--jail J] [--json]",
		"Lists the learned fingerprints: HELO and user names that many addresses failed with, which ban\n"+
			"any address presenting them until they expire.",
		"  banctl fingerprints\n  banctl fingerprints --jail postfix --json\n", stderr)
	jail := fs.String("jail", "", "only jail `J`")
	if _, code, ok := parse(fs, args, 0, 0); !ok {
		return code
	}
	fps, err := control.NewClient(*c.socket).Fingerprints(ctx, *jail)
	if err != nil {
		return fail(stderr, "fingerprints", err)
	}
	enc := json.NewEncoder(stdout)
	for _, fp := range fps {
		if *c.json {
			enc.Encode(fp)
			continue
		}
		fmt.Fprintf(stdout, "%-10s %-40s until %s\n", fp.Jail, fp.Value, stamp(fp.Until))
	}
	if !*c.json {
		fmt.Fprintf(stdout, "%d learned fingerprints\n", len(fps))
	}
	return 0
}

func cmdForget(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, c := newFlags("forget", "VALUE [--jail J]",
		"Forgets a learned fingerprint (helo=NAME, user=NAME, or NAME for both) and keeps it from being\n"+
			"learned again: a name legitimate clients share. Bans already made stay; lift them with unban.",
		"  banctl forget user=info\n  banctl forget ylmf-pc --jail exim\n", stderr)
	jail := fs.String("jail", "", "only in jail `J`")
	rest, code, ok := parse(fs, args, 1, 1)
	if !ok {
		return code
	}
	fps, err := control.NewClient(*c.socket).Forget(ctx, control.ForgetRequest{Value: rest[0], Jail: *jail})
	if err != nil {
		return fail(stderr, "forget", err)
	}
	enc := json.NewEncoder(stdout)
	for _, fp := range fps {
		if *c.json {
			enc.Encode(fp)
		} else {
			fmt.Fprintf(stdout, "forgot %s in jail %s\n", fp.Value, fp.Jail)
		}
	}
	return 0
}
