package web

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/store"
)

// page is what every page shows in its frame.
type page struct {
	Title   string
	Section string // "overview", "history": the navigation's current entry
	Host    string
	Now     time.Time // in the page's zone
	Zone    string    // "CET, UTC+01:00, Europe/Paris"
	Refresh int       // seconds after which the browser loads the page again; 0: never
}

// page makes the frame of a page titled title.
func (s *Server) page(title, section string, now time.Time) page {
	t := now.In(s.loc)
	return page{Title: title, Section: section, Host: s.host, Now: t, Zone: zoneLabel(t, s.zone)}
}

// zoneLabel names t's zone for the page: its abbreviation, its offset
// from UTC, and its IANA name when known ("CET, UTC+01:00, Europe/Paris"),
// or just "UTC".
func zoneLabel(t time.Time, name string) string {
	abbr := t.Format("MST")
	_, offset := t.Zone()
	if offset == 0 && abbr == "UTC" && (name == "" || slices.Contains([]string{"UTC", "Etc/UTC", "Etc/UCT", "Universal", "Zulu"}, name)) {
		return "UTC"
	}
	label := abbr + ", UTC" + t.Format("-07:00")
	if name != "" && name != abbr {
		label += ", " + name
	}
	return label
}

// zoneName is loc's IANA name when it can be told ("Europe/Paris"), or "".
// For time.Local that is TZ, or where /etc/localtime links to.
func zoneName(loc *time.Location) string {
	if loc != time.Local {
		return loc.String()
	}
	if tz, ok := os.LookupEnv("TZ"); ok {
		return strings.TrimPrefix(tz, ":")
	}
	if l, err := os.Readlink("/etc/localtime"); err == nil {
		if _, name, ok := strings.Cut(filepath.ToSlash(l), "zoneinfo/"); ok {
			return name
		}
	}
	return ""
}

// overviewView is the overview's data.
type overviewView struct {
	page
	Active       int
	ActiveJails  []keyCount
	ActiveAsOf   time.Time // when the active bans were counted
	Computing    bool      // no top lists yet: they are being computed
	Started      time.Time // when the running computation started
	TopErr       bool      // the last computation failed (the stale lists, if any, are shown)
	AsOf         time.Time // the top lists' time
	Refreshing   bool
	Bans, Events *chart
	Top          *topView
	Fingerprints []fingerprint
	FPErr        string // the learned fingerprints cannot be read now
	Latest       historyTable
}

// keyCount is a jail and its count, with a link.
type keyCount struct {
	Key  string
	N    int
	Link string
}

// fingerprint is a learned fingerprint in force.
type fingerprint struct {
	Jail, Value string
	Until       time.Time
}

// topView is the top lists.
type topView struct {
	Since time.Time
	Bans  int
	Lists []topList
}

type topList struct {
	ID, Title string
	Rows      []topRow
}

type topRow struct {
	Key  string
	N    int
	Link string  // the history of the key; "" for none
	Pct  float64 // the bar's length: N against the list's first
}

// latestN is the number of bans the overview shows: the history's first
// page, smaller than the history page's.
const latestN = 20

// overview serves /: the active bans, the charts, the top lists, the
// learned fingerprints and the latest bans, with the history's search.
func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	now := s.now()
	v := overviewView{page: s.page("Overview", "overview", now)}
	// The active bans' counts, at most activeRefresh old: the first
	// request waits for the first count (milliseconds).
	act := s.active.first(ctx)
	if act.cur == nil {
		s.fail(w, r, fmt.Errorf("active bans: %w", cmp.Or(act.err, ctx.Err())))
		return
	}
	v.ActiveAsOf = act.cur.asOf
	for j, n := range act.cur.v {
		v.Active += n
		v.ActiveJails = append(v.ActiveJails, keyCount{Key: j, N: n, Link: historyURL(url.Values{"jail": {j}, "ended": {"active"}})})
	}
	slices.SortFunc(v.ActiveJails, func(a, b keyCount) int { return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Key, b.Key)) })

	// The learned fingerprints come from the running jails, which may be
	// restarting for a reload: the page goes on without them then.
	fctx, fcancel := context.WithTimeout(ctx, 2*time.Second)
	fps, err := s.src.Fingerprints(fctx)
	fcancel()
	if err != nil {
		s.log.Warn("web: learned fingerprints", "err", err)
		v.FPErr = "not available now (" + errText(err) + ")"
	}
	for _, f := range fps {
		v.Fingerprints = append(v.Fingerprints, fingerprint{Jail: f.Jail, Value: f.Value, Until: f.Until})
	}

	// The charts: the store keeps counts per hour, a few hundred rows a
	// week.
	since := now.UTC().Truncate(time.Hour).Add(time.Hour - Window)
	banHours, err := s.src.BanHours(ctx, since)
	if err != nil {
		s.fail(w, r, fmt.Errorf("bans per hour: %w", err))
		return
	}
	eventHours, err := s.src.EventHours(ctx, since)
	if err != nil {
		s.fail(w, r, fmt.Errorf("events per hour: %w", err))
		return
	}
	v.Bans = buildChart("bans", "Bans per hour, by jail", "bans", banHours, since, now, s.loc)
	v.Events = buildChart("events", "Events per hour, by kind", "events", eventHours, since, now, s.loc)

	st := s.top.get()
	v.Refreshing, v.Started, v.TopErr = st.running, st.started, st.err != nil
	if st.cur == nil {
		v.Computing = true
		v.Refresh = 5
	} else {
		v.AsOf = st.cur.asOf
		v.Top = newTopView(st.cur.v)
	}

	// The latest bans: the history's first page, read from its index. The
	// page goes on without them when they cannot be read.
	v.Latest = historyTable{Endings: endings, Jails: jailNames(st), All: historyURL(nil)}
	bans, err := s.src.HistoryPage(ctx, store.PageQuery{Limit: latestN + 1})
	if err != nil {
		if r.Context().Err() == nil {
			s.log.Error("web: latest bans", "err", err)
		}
		v.Latest.Err = "The latest bans cannot be read now; banwatchd's log says why."
	} else {
		v.Latest.fill(bans, latestN, nil, now)
	}
	s.render(w, r, http.StatusOK, "overview", v)
}

// jailNames are the jails of the top lists, if any, sorted: the jail
// field's suggestions.
func jailNames(st snapshot[*store.Top]) []string {
	if st.cur == nil {
		return nil
	}
	var out []string
	for _, j := range st.cur.v.Jails {
		out = append(out, j.Key)
	}
	slices.Sort(out)
	return out
}

// newTopView lays out the top lists.
func newTopView(t *store.Top) *topView {
	v := &topView{Since: t.Since, Bans: t.Bans}
	add := func(id, title, param string, kcs []store.KeyCount) {
		l := topList{ID: id, Title: title}
		for _, kc := range kcs {
			row := topRow{Key: kc.Key, N: kc.N}
			if param != "" {
				row.Link = historyURL(url.Values{param: {kc.Key}})
			}
			if first := kcs[0].N; first > 0 {
				row.Pct = float64(kc.N) / float64(first) * 100
			}
			l.Rows = append(l.Rows, row)
		}
		v.Lists = append(v.Lists, l)
	}
	add("addrs", "Addresses", "addr", t.Addrs)
	add("nets24", "IPv4 /24s", "addr", t.Nets24)
	add("nets64", "IPv6 /64s", "addr", t.Nets64)
	add("jails", "Jails", "jail", t.Jails)
	add("fingerprints", "Fingerprints", "", t.Fingerprints)
	return v
}

// historyURL is the history page's URL with the query q.
func historyURL(q url.Values) string {
	if len(q) == 0 {
		return "/history"
	}
	return "/history?" + q.Encode()
}

// historyView is the history page's data.
type historyView struct {
	page
	Table historyTable
	Limit int
}

// historyTable is the history's search form and a page of its table, as
// the history page and the overview's latest bans show them.
type historyTable struct {
	Addr, Jail, Ended string // the search, as given
	Err               string // what is wrong with the search, or why the history cannot be shown
	Endings           []string
	Jails             []string // for the jail field's suggestions
	Rows              []banRow
	Older             string // the next page's URL; "" on the last
	First             string // the first page's URL; "" on the first
	All               string // the whole history's URL: on the overview
}

// fill lays out bans, read with a limit of limit+1, as a page of at most
// limit rows, with the link to the older ones that keeps search.
func (t *historyTable) fill(bans []ban.Ban, limit int, search url.Values, now time.Time) {
	if len(bans) > limit {
		bans = bans[:limit]
		last := bans[len(bans)-1]
		older := url.Values{"before": {formatCursor(store.Cursor{Start: last.Start, ID: last.ID})}}
		for k, val := range search {
			older[k] = val
		}
		t.Older = historyURL(older)
	}
	for i := range bans {
		t.Rows = append(t.Rows, newBanRow(&bans[i], now))
	}
}

// banRow is a ban as the history table shows it.
type banRow struct {
	ID        int64
	Link      string
	Addr      string // the address or prefix banned
	Net       string // the /24 or /64 it is in (or itself when wider)
	NetLink   string
	Jail      string
	Reason    string
	Start     time.Time
	End       time.Time // when it ended, or will
	How       string    // "active", "expired", "unbanned", "replaced"
	HowDetail string    // "3d 4h left", "by uid 0"
}

// endings are the values of the ended filter, in the order offered.
var endings = []string{"active", ban.EndExpired, ban.EndUnbanned, ban.EndReplaced}

// maxParam is the longest query parameter taken.
const maxParam = 100

// history serves /history: a page of bans, newest first, searched by
// address or prefix, jail and how they ended, from a cursor.
func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	now := s.now()
	q := r.URL.Query()
	v := historyView{page: s.page("History", "history", now), Limit: s.pageSize}
	t := &v.Table
	*t = historyTable{Endings: endings, Jails: jailNames(s.top.get()),
		Addr: strings.TrimSpace(q.Get("addr")), Jail: strings.TrimSpace(q.Get("jail")), Ended: q.Get("ended")}
	pq := store.PageQuery{Jail: t.Jail, Ended: t.Ended, Limit: s.pageSize + 1}
	var errs []string
	if len(t.Addr) > maxParam || len(t.Jail) > maxParam {
		errs = append(errs, "a search field is too long")
	} else if t.Addr != "" {
		p, err := ban.ParsePrefix(t.Addr)
		if err != nil {
			errs = append(errs, "address: "+err.Error())
		}
		pq.Prefix = p
	}
	if t.Ended != "" && !slices.Contains(endings, t.Ended) {
		errs = append(errs, fmt.Sprintf("ended: %q: want one of %s", t.Ended, strings.Join(endings, ", ")))
	}
	if b := q.Get("before"); b != "" {
		c, err := parseCursor(b)
		if err != nil {
			errs = append(errs, err.Error())
		}
		pq.Before = c
	}
	if len(errs) > 0 {
		t.Err = strings.Join(errs, "; ")
		s.render(w, r, http.StatusBadRequest, "history", v)
		return
	}
	bans, err := s.src.HistoryPage(ctx, pq)
	if err != nil {
		s.fail(w, r, fmt.Errorf("history: %w", err))
		return
	}
	search := url.Values{}
	for k, val := range map[string]string{"addr": t.Addr, "jail": t.Jail, "ended": t.Ended} {
		if val != "" {
			search.Set(k, val)
		}
	}
	t.fill(bans, s.pageSize, search, now)
	if !pq.Before.Start.IsZero() || pq.Before.ID != 0 {
		t.First = historyURL(search)
	}
	s.render(w, r, http.StatusOK, "history", v)
}

// newBanRow lays out a ban for the table.
func newBanRow(b *ban.Ban, now time.Time) banRow {
	row := banRow{ID: b.ID, Link: "/ban/" + strconv.FormatInt(b.ID, 10), Addr: ban.IP(b.Prefix), Jail: b.Jail,
		Reason: b.Reason, Start: b.Start}
	row.How, row.HowDetail, row.End = ending(b, now)
	if n := netOf(b.Prefix); n.IsValid() {
		row.Net = n.String()
		row.NetLink = historyURL(url.Values{"addr": {row.Net}})
	}
	return row
}

// ending says how b ended (or that it is active), with a detail, and when
// it ended or will.
func ending(b *ban.Ban, now time.Time) (how, detail string, at time.Time) {
	switch b.Ended {
	case ban.EndActive:
		if b.End.After(now) {
			return "active", duration(b.End.Sub(now)) + " left", b.End
		}
		return ban.EndExpired, "", b.End
	case ban.EndUnbanned:
		if b.EndedBy != "" {
			detail = "by " + b.EndedBy
		}
		return b.Ended, detail, b.EndedAt
	}
	return b.Ended, "", b.EndedAt
}

// netOf returns the IPv4 /24 or IPv6 /64 that p is in, or p itself when it
// is wider.
func netOf(p netip.Prefix) netip.Prefix {
	bits := 24
	if p.Addr().Is6() {
		bits = 64
	}
	if p.Bits() <= bits {
		return p
	}
	n, _ := p.Addr().Prefix(bits)
	return n
}

// The cursor of the history's next page: the last ban shown, as
// "START.ID" (Unix nanoseconds, row id).
func formatCursor(c store.Cursor) string {
	return strconv.FormatInt(c.Start.UnixNano(), 10) + "." + strconv.FormatInt(c.ID, 10)
}

func parseCursor(s string) (store.Cursor, error) {
	bad := errors.New("before: not a place in the history (follow the page's links)")
	ns, id, ok := strings.Cut(s, ".")
	if !ok {
		return store.Cursor{}, bad
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil {
		return store.Cursor{}, bad
	}
	i, err := strconv.ParseInt(id, 10, 64)
	if err != nil || i < 0 {
		return store.Cursor{}, bad
	}
	return store.Cursor{Start: time.Unix(0, n).UTC(), ID: i}, nil
}

// detailView is a ban's page.
type detailView struct {
	page
	Ban       ban.Ban
	Addr      string
	Net       string
	NetLink   string
	AddrLink  string
	How       string
	HowDetail string
	EndAt     time.Time
	Duration  string
}

// detail serves /ban/{id}: one ban with its evidence.
func (s *Server) detail(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	now := s.now()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.problem(w, r, http.StatusBadRequest, "A ban's page is /ban/ID, ID a number from the history.")
		return
	}
	b, ok, err := s.src.BanByID(ctx, id)
	if err != nil {
		s.fail(w, r, fmt.Errorf("ban %d: %w", id, err))
		return
	}
	if !ok {
		s.problem(w, r, http.StatusNotFound, fmt.Sprintf("There is no ban %d (the history keeps ended bans for [daemon] history).", id))
		return
	}
	v := detailView{page: s.page(fmt.Sprintf("Ban %d", id), "history", now), Ban: b, Addr: ban.IP(b.Prefix),
		Duration: duration(b.End.Sub(b.Start))}
	v.AddrLink = historyURL(url.Values{"addr": {v.Addr}})
	if n := netOf(b.Prefix); n.IsValid() && n != b.Prefix {
		v.Net = n.String()
		v.NetLink = historyURL(url.Values{"addr": {v.Net}})
	}
	v.How, v.HowDetail, v.EndAt = ending(&b, now)
	s.render(w, r, http.StatusOK, "ban", v)
}

// problemView is an error page.
type problemView struct {
	page
	Status  int
	Message string
}

// problem answers with an error page: status and a message for the admin.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "problem", problemView{page: s.page(http.StatusText(status), "", s.now()), Status: status, Message: msg})
}

// fail logs err and answers 500 without it: the log has the details.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	s.log.Error("web: request failed", "path", r.URL.Path, "err", err)
	s.problem(w, r, http.StatusInternalServerError, "The history cannot be read now; banwatchd's log says why.")
}

// render executes the page's template into a buffer, so that a template
// error is a clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := s.tmpl[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("web: template", "page", name, "err", err)
		http.Error(w, "500 internal error (see banwatchd's log)", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// errText is an error's text for the page: the first line, short.
func errText(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// duration writes d as an admin reads it: "7d", "3d 4h", "45m", "12s".
func duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Minute {
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	days, h, m := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var parts []string
	for _, p := range []struct {
		n    int
		unit string
	}{{days, "d"}, {h, "h"}, {m, "m"}} {
		if p.n > 0 {
			parts = append(parts, strconv.Itoa(p.n)+p.unit)
		}
		if len(parts) == 2 {
			break
		}
	}
	if len(parts) == 0 {
		return "0m"
	}
	return strings.Join(parts, " ")
}

// parseTemplates parses each page's template with the frame, with the
// functions the templates use; times are shown in loc.
func parseTemplates(loc *time.Location) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"px":        px,
		"thousands": thousands,
		"count":     count,
		"add":       func(a, b float64) float64 { return a + b },
		// datetime is a time for the datetime attribute and machines.
		"datetime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		// local is a time as the tables show it.
		"local": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.In(loc).Format("2006-01-02 15:04:05")
		},
		"clock": func(t time.Time) string { return t.In(loc).Format("15:04:05") },
		"day":   func(t time.Time) string { return t.In(loc).Format("Mon 2 Jan 2006 15:04 MST") },
	}
	// Each page is the frame, its content, and the files whose other
	// templates it uses: the overview uses history.html's "bans" (the
	// search and the table), and redefines its "content", as its file
	// comes after.
	pages := map[string][]string{"overview": {"history", "overview"}, "history": {"history"}, "ban": {"ban"}, "problem": {"problem"}}
	out := map[string]*template.Template{}
	for name, names := range pages {
		patterns := []string{"templates/layout.html"}
		for _, n := range names {
			patterns = append(patterns, "templates/"+n+".html")
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(files, patterns...)
		if err != nil {
			return nil, fmt.Errorf("web: templates: %w", err)
		}
		out[name] = t
	}
	return out, nil
}
