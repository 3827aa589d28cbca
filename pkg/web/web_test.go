package web

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Paris wherever the tests run

	"golang.org/x/crypto/bcrypt"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/store"
)

var update = flag.Bool("update", false, "write the golden pages in testdata/")

// fakeSource is a Source over fixed data, that records what it was asked.
type fakeSource struct {
	mu          sync.Mutex
	banHours    []store.HourCount
	eventHours  []store.HourCount
	top         *store.Top
	topErr      error
	topGate     chan struct{} // when set, Top waits until it is closed
	topCalls    int
	topSince    []time.Time
	page        []ban.Ban
	queries     []store.PageQuery
	bans        map[int64]ban.Ban
	active      map[string]int
	activeCalls int
	fps         []control.Fingerprint
	fpErr       error
	hoursSince  []time.Time
}

var _ Source = (*fakeSource)(nil)

func hoursSince(hs []store.HourCount, since time.Time) []store.HourCount {
	var out []store.HourCount
	for _, h := range hs {
		if !h.Hour.Before(since.UTC().Truncate(time.Hour)) {
			out = append(out, h)
		}
	}
	return out
}

func (f *fakeSource) BanHours(_ context.Context, since time.Time) ([]store.HourCount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hoursSince = append(f.hoursSince, since)
	return hoursSince(f.banHours, since), nil
}

func (f *fakeSource) EventHours(_ context.Context, since time.Time) ([]store.HourCount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return hoursSince(f.eventHours, since), nil
}

func (f *fakeSource) Top(ctx context.Context, since time.Time, n int) (*store.Top, error) {
	f.mu.Lock()
	gate := f.topGate
	f.topCalls++
	f.topSince = append(f.topSince, since)
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.topErr != nil {
		return nil, f.topErr
	}
	if n != TopN {
		return nil, fmt.Errorf("top %d, want %d", n, TopN)
	}
	t := *f.top
	t.Since = since
	return &t, nil
}

func (f *fakeSource) HistoryPage(_ context.Context, q store.PageQuery) ([]ban.Ban, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	return slices.Clone(f.page[:min(len(f.page), q.Limit)]), nil
}

func (f *fakeSource) BanByID(_ context.Context, id int64) (ban.Ban, bool, error) {
	b, ok := f.bans[id]
	return b, ok, nil
}

func (f *fakeSource) CountActive(_ context.Context, now time.Time) (map[string]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.activeCalls++
	return maps.Clone(f.active), nil
}

func (f *fakeSource) Fingerprints(context.Context) ([]control.Fingerprint, error) {
	return f.fps, f.fpErr
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var paris = func() *time.Location {
	l, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err)
	}
	return l
}()

// now is the tests' time: Saturday 28 November 2026, 14:25 in Paris.
var now = time.Date(2026, 11, 28, 13, 25, 0, 0, time.UTC)

// hour is the start of the hour h hours before now's.
func hour(h int) time.Time { return now.Truncate(time.Hour).Add(-time.Duration(h) * time.Hour) }

// evil is text an attacker writes into a log line: it must reach the page
// as text.
const evil = `<script>alert(1)</script> [1.2.3.4] "quoted" & 'single'`

// newFake returns a source with a week of data.
func newFake() *fakeSource {
	f := &fakeSource{
		banHours: []store.HourCount{
			{Hour: hour(168), Key: "postfix", N: 999}, // before the chart's first hour
			{Hour: hour(167), Key: "postfix", N: 3},   // its first hour
			{Hour: hour(30), Key: "dovecot", N: 4},
			{Hour: hour(30), Key: "postfix", N: 12},
			{Hour: hour(1), Key: "postfix", N: 37},
			{Hour: hour(1), Key: "sshd", N: 1},
			{Hour: hour(0), Key: "postfix", N: 5}, // the current hour: read live
		},
		eventHours: []store.HourCount{
			{Hour: hour(2), Key: "auth_failure", N: 120},
			{Hour: hour(2), Key: "bad_helo", N: 30},
			{Hour: hour(0), Key: "pregreet", N: 7},
		},
		top: &store.Top{
			Bans:   60,
			Addrs:  []store.KeyCount{{Key: "203.0.113.7", N: 9}, {Key: "2001:db8:1:2::/64", N: 4}, {Key: "198.51.100.9", N: 2}},
			Nets24: []store.KeyCount{{Key: "203.0.113.0/24", N: 14}, {Key: "198.51.100.0/24", N: 2}},
			Nets64: []store.KeyCount{{Key: "2001:db8:1:2::/64", N: 4}},
			Jails:  []store.KeyCount{{Key: "postfix", N: 57}, {Key: "dovecot", N: 4}, {Key: "sshd", N: 1}},
			Fingerprints: []store.KeyCount{{Key: "instant helo=ylmf-pc", N: 20}, {Key: "fingerprint helo=" + evil, N: 3},
				{Key: "instant pregreet", N: 2}},
		},
		active: map[string]int{"postfix": 41, "dovecot": 2},
		fps: []control.Fingerprint{{Jail: "postfix", Value: "helo=ylmf-pc", Until: now.Add(6 * 24 * time.Hour)},
			{Jail: "postfix", Value: "user=" + evil, Until: now.Add(time.Hour)}},
		bans: map[int64]ban.Ban{},
	}
	for i := range 4 {
		id := int64(100 - i)
		b := ban.Ban{ID: id, Prefix: netip.MustParsePrefix(fmt.Sprintf("203.0.113.%d/32", 7+i)), Jail: "postfix", Origin: ban.OriginJail,
			Start: now.Add(-time.Duration(i+1) * time.Hour), Strikes: 5, Reason: "auth_failure",
			FirstEvent: now.Add(-time.Duration(i+1)*time.Hour - time.Minute), LastEvent: now.Add(-time.Duration(i+1) * time.Hour)}
		b.End = b.Start.Add(7 * 24 * time.Hour)
		switch i {
		case 1:
			b.Ended, b.EndedAt, b.EndedBy = ban.EndUnbanned, now.Add(-10*time.Minute), "uid 0"
		case 2:
			b.Ended, b.EndedAt = ban.EndReplaced, now.Add(-30*time.Minute)
			b.Prefix = netip.MustParsePrefix("2001:db8:1:2::/64")
			b.Reason = "subnet: 3 addresses of 2001:db8:1:2::/64 banned"
		case 3:
			b.Reason = "instant helo=" + evil
		}
		f.page = append(f.page, b)
		b.Evidence = []string{"Nov 28 13:24:01 mx postfix/smtpd[2001]: warning: unknown[203.0.113.7]: SASL LOGIN authentication failed: " + evil,
			"Nov 28 13:24:02 mx postfix/smtpd[2002]: warning: unknown[203.0.113.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"}
		f.bans[id] = b
	}
	return f
}

// start makes a Server over src at the tests' time and runs its
// background computations; ready waits for them.
func start(t *testing.T, src Source, c *clock, opts Options) *Server {
	t.Helper()
	opts.Source = src
	if opts.Host == "" {
		opts.Host = "mx1"
	}
	opts.Location = paris
	opts.Now = c.Now
	if opts.PageSize == 0 {
		opts.PageSize = 3
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.refreshers(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return s
}

// ready waits until nothing is being computed in the background.
func ready(s *Server) {
	<-s.top.idle()
	<-s.active.idle()
}

// get requests path from h and returns the status and the body.
func get(t *testing.T, h http.Handler, method, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// rectRE finds a chart's bar segments.
var rectRE = regexp.MustCompile(`<rect [^>]*data-hour="([^"]+)" data-key="([^"]*)" data-n="(\d+)"><title>([^<]*)</title>`)

// segment is a bar segment as the page shows it.
type segment struct {
	hour, key string
	n         int
	title     string
}

// segments returns the bar segments of the chart with id in body.
func segments(t *testing.T, body, id string) []segment {
	t.Helper()
	start := strings.Index(body, `<figure class="chart" id="chart-`+id+`">`)
	if start < 0 {
		t.Fatalf("no chart %q", id)
	}
	end := strings.Index(body[start:], "</figure>")
	var out []segment
	for _, m := range rectRE.FindAllStringSubmatch(body[start:start+end], -1) {
		n, _ := strconv.Atoi(m[3])
		out = append(out, segment{hour: m[1], key: html.UnescapeString(m[2]), n: n, title: html.UnescapeString(m[4])})
	}
	return out
}

// attr returns the value of attribute name in the first tag of body that
// holds marker.
func attr(t *testing.T, body, marker, name string) string {
	t.Helper()
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no %q in the page", marker)
	}
	tagStart := strings.LastIndex(body[:i+1], "<")
	tag := body[tagStart : tagStart+strings.Index(body[tagStart:], ">")]
	m := regexp.MustCompile(` ` + regexp.QuoteMeta(name) + `="([^"]*)"`).FindStringSubmatch(tag)
	if m == nil {
		t.Fatalf("%s has no %s", tag, name)
	}
	return html.UnescapeString(m[1])
}

// within returns the part of body from the first start to the end after
// it, both included.
func within(t *testing.T, body, start, end string) string {
	t.Helper()
	i := strings.Index(body, start)
	if i < 0 {
		t.Fatalf("no %q in the page", start)
	}
	j := strings.Index(body[i:], end)
	if j < 0 {
		t.Fatalf("no %q after %q", end, start)
	}
	return body[i : i+j+len(end)]
}

// The security headers are on every answer, the pages' and the errors'.
func TestHeaders(t *testing.T) {
	s := start(t, newFake(), &clock{t: now}, Options{})
	ready(s)
	cases := []struct {
		method, path string
		status       int
	}{
		{"GET", "/", 200},
		{"HEAD", "/", 200},
		{"GET", "/history", 200},
		{"GET", "/ban/100", 200},
		{"GET", "/style.css", 200},
		{"POST", "/", 405},
		{"POST", "/history", 405},
		{"DELETE", "/ban/100", 405},
		{"PUT", "/style.css", 405},
		{"GET", "/unban", 404},
		{"GET", "/ban/", 404},
		{"GET", "/ban/abc", 400},
		{"GET", "/ban/7", 404},
		{"GET", "/history?ended=forgotten", 400},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			res, body := get(t, s, c.method, c.path)
			if res.StatusCode != c.status {
				t.Errorf("status %d, want %d\n%s", res.StatusCode, c.status, body)
			}
			want := map[string]string{
				"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			}
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if c.status == 405 && !strings.Contains(res.Header.Get("Allow"), "GET") {
				t.Errorf("405 without Allow: GET: %q", res.Header.Get("Allow"))
			}
			if c.method == "HEAD" && body != "" {
				t.Errorf("HEAD has a body of %d bytes", len(body))
			}
			if strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") && strings.Contains(body, "<script") {
				t.Errorf("the page holds a script element")
			}
		})
	}
}

// The overview shows the numbers it was given: the charts' bars at their
// local hours, their totals, the top lists, the active bans and the learned
// fingerprints, with the attackers' text escaped.
func TestOverview(t *testing.T) {
	f := newFake()
	s := start(t, f, &clock{t: now}, Options{})
	ready(s)
	res, body := get(t, s, "GET", "/")
	if res.StatusCode != 200 {
		t.Fatalf("status %d\n%s", res.StatusCode, body)
	}

	wantBans := []segment{
		{hour(167).Format(time.RFC3339), "postfix", 3, "Sat 21 Nov 15:00 postfix: 3 bans"},
		{hour(30).Format(time.RFC3339), "postfix", 12, "Fri 27 Nov 08:00 postfix: 12 bans"},
		{hour(30).Format(time.RFC3339), "dovecot", 4, "Fri 27 Nov 08:00 dovecot: 4 bans"},
		{hour(1).Format(time.RFC3339), "postfix", 37, "Sat 28 Nov 13:00 postfix: 37 bans"},
		{hour(1).Format(time.RFC3339), "sshd", 1, "Sat 28 Nov 13:00 sshd: 1 ban"},
		{hour(0).Format(time.RFC3339), "postfix", 5, "Sat 28 Nov 14:00 postfix: 5 bans"},
	}
	if got := segments(t, body, "bans"); !slices.Equal(got, wantBans) {
		t.Errorf("bans chart:\n got %v\nwant %v", got, wantBans)
	}
	if got := attr(t, body, `data-chart="bans"`, "data-total"); got != "62" {
		t.Errorf("bans chart total %s, want 62 (the hour before the chart's first left out)", got)
	}
	if got := attr(t, body, `data-chart="bans"`, "data-hours"); got != "168" {
		t.Errorf("bans chart of %s hours, want 168", got)
	}
	if got := attr(t, body, `<li data-key="postfix"`, "data-total"); got != "57" {
		t.Errorf("legend: postfix %s, want 57", got)
	}
	wantEvents := []segment{
		{hour(2).Format(time.RFC3339), "auth_failure", 120, "Sat 28 Nov 12:00 auth_failure: 120 events"},
		{hour(2).Format(time.RFC3339), "bad_helo", 30, "Sat 28 Nov 12:00 bad_helo: 30 events"},
		{hour(0).Format(time.RFC3339), "pregreet", 7, "Sat 28 Nov 14:00 pregreet: 7 events"},
	}
	if got := segments(t, body, "events"); !slices.Equal(got, wantEvents) {
		t.Errorf("events chart:\n got %v\nwant %v", got, wantEvents)
	}

	checks := []struct{ marker, attr, want string }{
		{`id="active"`, "data-total", "43"},
		{`<tr data-key="postfix" data-n="41"`, "data-n", "41"},
		{`id="week"`, "data-total", "62"},
		{`id="asof"`, "data-bans", "60"},
		{`<tr data-key="203.0.113.7"`, "data-n", "9"},
		{`<tr data-key="203.0.113.0/24"`, "data-n", "14"},
		{`<tr data-key="2001:db8:1:2::/64"`, "data-n", "4"},
		{`<tr data-key="instant helo=ylmf-pc"`, "data-n", "20"},
		{`<a href="/history?ended=active&amp;jail=dovecot">`, "href", "/history?ended=active&jail=dovecot"},
		{`<tr data-jail="postfix" data-value="helo=ylmf-pc"`, "data-value", "helo=ylmf-pc"},
		{`<time id="now"`, "datetime", "2026-11-28T13:25:00Z"},
	}
	for _, c := range checks {
		if got := attr(t, body, c.marker, c.attr); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.marker, c.attr, got, c.want)
		}
	}
	// The top lists link to the history (the latest bans do too: look in
	// the lists only).
	tops := within(t, body, `<section class="tops" id="top">`, "</section>")
	if got := attr(t, within(t, tops, `id="top-nets24"`, "</table>"), `<a href=`, "href"); got != "/history?addr=203.0.113.0%2F24" {
		t.Errorf("the top /24 links to %q", got)
	}
	for _, want := range []string{
		"Sat 28 Nov 2026 14:25 CET",
		"times in CET, UTC&#43;01:00, Europe/Paris",
		`<span class="host" id="host">mx1</span>`,
		"fingerprint helo=&lt;script&gt;alert(1)&lt;/script&gt; [1.2.3.4] &#34;quoted&#34; &amp; &#39;single&#39;",
		"user=&lt;script&gt;alert(1)&lt;/script&gt;",
		`<text class="day" x=`, ">Fri 27 Nov</text>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("an attacker's <script> is in the page as markup")
	}
	if strings.Contains(body, `http-equiv="refresh"`) {
		t.Error("a complete page asks to be reloaded")
	}
	if got := f.hoursSince; len(got) != 1 || !got[0].Equal(hour(167)) {
		t.Errorf("the hours were read since %v, want [%v]", got, hour(167))
	}
}

// The overview shows the history's first page: the newest 20 bans, newest
// first, with their links, read in one query of 21; a link to the older
// ones goes on where it stops, and the search form and a link lead to the
// history page.
func TestOverviewLatest(t *testing.T) {
	f := newFake()
	for i := range 21 { // 25 bans: the fake's 4, then older ones in sshd
		b := f.page[0]
		b.ID = int64(96 - i)
		b.Prefix = netip.MustParsePrefix(fmt.Sprintf("198.51.100.%d/32", i+1))
		b.Jail = "sshd"
		b.Start = now.Add(-time.Duration(5+i) * time.Hour)
		b.End = b.Start.Add(24 * time.Hour)
		f.page = append(f.page, b)
	}
	s := start(t, f, &clock{t: now}, Options{})
	ready(s)
	res, body := get(t, s, "GET", "/")
	if res.StatusCode != 200 {
		t.Fatalf("status %d\n%s", res.StatusCode, body)
	}
	if want := []store.PageQuery{{Limit: 21}}; !slices.Equal(f.queries, want) {
		t.Errorf("queries %+v, want %+v", f.queries, want)
	}
	if !strings.Contains(body, `</section>
<section class="latest" id="latest">
<h2>Latest bans</h2>`) || strings.Index(body, `id="latest"`) < strings.Index(body, `id="top"`) {
		t.Error("the latest bans are not after the top lists")
	}
	latest := within(t, body, `<section class="latest" id="latest">`, "</section>")
	var rows [][]string
	for _, m := range historyRowRE.FindAllStringSubmatch(latest, -1) {
		rows = append(rows, m[1:])
	}
	want := [][]string{
		{"100", "203.0.113.7", "postfix", "active"},
		{"99", "203.0.113.8", "postfix", "unbanned"},
		{"98", "2001:db8:1:2::/64", "postfix", "replaced"},
		{"97", "203.0.113.10", "postfix", "active"},
	}
	for i := range 16 {
		want = append(want, []string{strconv.Itoa(96 - i), fmt.Sprintf("198.51.100.%d", i+1), "sshd", "active"})
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("rows %v,\nwant %v", rows, want)
	}
	for _, w := range []string{
		`<a href="/ban/100">203.0.113.7</a>`,
		`<a href="/ban/81">198.51.100.16</a>`,
		`<a href="/history?addr=198.51.100.0%2F24">198.51.100.0/24</a>`,
		`<td class="how unbanned">unbanned <span class="detail">by uid 0</span></td>`,
		`<td class="reason">instant helo=&lt;script&gt;alert(1)&lt;/script&gt; [1.2.3.4]`,
		`<option value="sshd"></option>`,
	} {
		if !strings.Contains(latest, w) {
			t.Errorf("the latest bans lack %q", w)
		}
	}
	if strings.Contains(latest, "198.51.100.17") || strings.Contains(latest, `id="first"`) || strings.Contains(latest, `id="error"`) {
		t.Error("the latest bans show a 21st ban, a link to the first page, or an error")
	}
	if got := attr(t, latest, `<form class="search"`, "action"); got != "/history" {
		t.Errorf("the search goes to %q", got)
	}
	if got := attr(t, latest, `id="all"`, "href"); got != "/history" {
		t.Errorf("the whole history: %q", got)
	}
	twentieth := f.page[19]
	older := attr(t, latest, `id="older"`, "href")
	if want := fmt.Sprintf("/history?before=%d.81", twentieth.Start.UnixNano()); older != want {
		t.Errorf("older: %q, want %q", older, want)
	}
	res, _ = get(t, s, "GET", older)
	if res.StatusCode != 200 || len(f.queries) != 2 || f.queries[1] != (store.PageQuery{Before: store.Cursor{Start: twentieth.Start, ID: 81}, Limit: 4}) {
		t.Errorf("the older page: status %d, queries %+v", res.StatusCode, f.queries)
	}

	// Exactly 20 bans: no older ones; none: said so.
	f.page = f.page[:20]
	_, body = get(t, s, "GET", "/")
	latest = within(t, body, `<section class="latest" id="latest">`, "</section>")
	if n := len(historyRowRE.FindAllString(latest, -1)); n != 20 || strings.Contains(latest, `id="older"`) {
		t.Errorf("20 bans: %d rows, or a link to older ones", n)
	}
	f.page = nil
	_, body = get(t, s, "GET", "/")
	latest = within(t, body, `<section class="latest" id="latest">`, "</section>")
	if !strings.Contains(latest, `<p class="none" id="none">No bans.</p>`) || strings.Contains(latest, `id="older"`) || !strings.Contains(latest, `id="all"`) {
		t.Errorf("no bans:\n%s", latest)
	}
}

// Until the first top lists are computed the overview does not wait for them:
// it shows the rest, says so and asks to be loaded again. Once computed
// the lists are served until a request finds them older than Refresh; that
// request and the next ones get the stale ones, with their time, while new
// ones are computed.
func TestTopListsLifecycle(t *testing.T) {
	f := newFake()
	gate := make(chan struct{})
	f.topGate = gate
	c := &clock{t: now}
	s := start(t, f, c, Options{})

	res, body := get(t, s, "GET", "/")
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	for _, want := range []string{`id="computing"`, `<meta http-equiv="refresh" content="5">`, `id="active" data-total="43"`,
		`data-value="helo=ylmf-pc"`, `data-chart="bans" data-total="62"`} {
		if !strings.Contains(body, want) {
			t.Errorf("first page lacks %q", want)
		}
	}
	if strings.Contains(body, `id="top-addrs"`) {
		t.Error("first page shows top lists before they are computed")
	}

	close(gate)
	ready(s)
	_, body = get(t, s, "GET", "/")
	if !strings.Contains(body, `as of <time datetime="2026-11-28T13:25:00Z">14:25:00</time>.</p>`) || strings.Contains(body, `http-equiv="refresh"`) {
		t.Errorf("no as-of time, or a reload:\n%s", body)
	}

	// 59 s later the lists are fresh; at a minute they are stale.
	c.Add(59 * time.Second)
	get(t, s, "GET", "/")
	ready(s)
	if f.topCalls != 1 {
		t.Fatalf("Top called %d times within the minute, want 1", f.topCalls)
	}
	gate2 := make(chan struct{})
	f.mu.Lock()
	f.topGate = gate2
	f.mu.Unlock()
	c.Add(time.Second)
	_, body = get(t, s, "GET", "/")
	if !strings.Contains(body, `as of <time datetime="2026-11-28T13:25:00Z">14:25:00</time>; being refreshed.`) {
		t.Errorf("the stale lists are not shown as such while refreshing")
	}
	_, body = get(t, s, "GET", "/") // a second request does not start a second computation
	if !strings.Contains(body, `id="top-addrs"`) {
		t.Error("no top lists while refreshing")
	}
	close(gate2)
	ready(s)
	if f.topCalls != 2 {
		t.Errorf("Top called %d times, want 2", f.topCalls)
	}
	if want := now.Add(time.Minute - Window); !f.topSince[1].Equal(want) {
		t.Errorf("Top since %v, want %v", f.topSince[1], want)
	}
	_, body = get(t, s, "GET", "/")
	if !strings.Contains(body, `as of <time datetime="2026-11-28T13:26:00Z">14:26:00</time>.`) {
		t.Error("the new lists are not shown")
	}

	// A failed refresh keeps the last lists, and says so.
	f.mu.Lock()
	f.topErr = errors.New("disk I/O error")
	f.mu.Unlock()
	c.Add(time.Minute)
	get(t, s, "GET", "/")
	ready(s)
	_, body = get(t, s, "GET", "/")
	if !strings.Contains(body, `as of <time datetime="2026-11-28T13:26:00Z">14:26:00</time>; <span class="warn">the last refresh failed`) {
		t.Error("a failed refresh is not shown with the last lists")
	}
}

// The active bans are counted in the background too, at most every 10 s:
// a request gets the last count with its time.
func TestActiveRefresh(t *testing.T) {
	f := newFake()
	c := &clock{t: now}
	s := start(t, f, c, Options{})
	ready(s)
	_, body := get(t, s, "GET", "/")
	if !strings.Contains(body, `id="active" data-total="43"`) || !strings.Contains(body, `counted at <time datetime="2026-11-28T13:25:00Z">`) {
		t.Fatal("no active count")
	}
	f.mu.Lock()
	f.active["postfix"] = 50
	f.mu.Unlock()
	c.Add(9 * time.Second)
	_, body = get(t, s, "GET", "/")
	ready(s)
	if !strings.Contains(body, `id="active" data-total="43"`) || f.activeCalls != 1 {
		t.Errorf("counted again within 10 s (%d counts)", f.activeCalls)
	}
	c.Add(time.Second)
	_, body = get(t, s, "GET", "/") // the stale count, and a new one asked for
	if !strings.Contains(body, `id="active" data-total="43"`) {
		t.Error("the request waited for the new count")
	}
	ready(s)
	_, body = get(t, s, "GET", "/")
	if !strings.Contains(body, `id="active" data-total="52"`) || !strings.Contains(body, `counted at <time datetime="2026-11-28T13:25:10Z">`) {
		t.Errorf("the new count is not shown (%d counts)", f.activeCalls)
	}
}

// The history's search and cursor become the store's query; what is wrong
// with them is a 400 that says what.
func TestHistoryQuery(t *testing.T) {
	at := time.Date(2026, 11, 27, 8, 0, 0, 123, time.UTC)
	cases := []struct {
		query  string
		status int
		want   store.PageQuery // Limit is the page size + 1
		err    string
	}{
		{"", 200, store.PageQuery{}, ""},
		{"?addr=203.0.113.0/24&jail=postfix&ended=unbanned", 200,
			store.PageQuery{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Jail: "postfix", Ended: ban.EndUnbanned}, ""},
		{"?addr=+2001:db8::1+", 200, store.PageQuery{Prefix: netip.MustParsePrefix("2001:db8::1/128")}, ""},
		{"?addr=::ffff:192.0.2.7", 200, store.PageQuery{Prefix: netip.MustParsePrefix("192.0.2.7/32")}, ""},
		{"?ended=active", 200, store.PageQuery{Ended: "active"}, ""},
		{"?before=" + strconv.FormatInt(at.UnixNano(), 10) + ".77&jail=sshd", 200,
			store.PageQuery{Jail: "sshd", Before: store.Cursor{Start: at, ID: 77}}, ""},
		{"?addr=203.0.113.7/24", 400, store.PageQuery{}, `address: &#34;203.0.113.7/24&#34; has host bits set; did you mean 203.0.113.0/24?`},
		{"?addr=mx.example.org", 400, store.PageQuery{}, `address: &#34;mx.example.org&#34; is not an address or CIDR prefix`},
		{"?ended=forever", 400, store.PageQuery{}, `ended: &#34;forever&#34;: want one of active, expired, unbanned, replaced`},
		{"?before=12", 400, store.PageQuery{}, `before: not a place in the history`},
		{"?before=x.1", 400, store.PageQuery{}, `before: not a place in the history`},
		{"?jail=" + strings.Repeat("j", 101), 400, store.PageQuery{}, `a search field is too long`},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			f := newFake()
			s := start(t, f, &clock{t: now}, Options{})
			res, body := get(t, s, "GET", "/history"+c.query)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d", res.StatusCode, c.status)
			}
			if c.err != "" {
				if !strings.Contains(body, `<p class="error" id="error">`+c.err) {
					t.Errorf("no error %q in\n%s", c.err, body)
				}
				if len(f.queries) > 0 {
					t.Errorf("a refused search was run: %+v", f.queries)
				}
				return
			}
			c.want.Limit = 4
			if len(f.queries) != 1 || f.queries[0] != c.want {
				t.Errorf("queries %+v, want %+v", f.queries, c.want)
			}
		})
	}
}

// historyRowRE finds the history table's rows.
var historyRowRE = regexp.MustCompile(`<tr data-id="(\d+)" data-addr="([^"]+)" data-jail="([^"]+)" data-ended="([^"]+)">`)

// The history table shows a page of bans with how each ended, and links to
// the older ones and back to the first page, keeping the search.
func TestHistoryPages(t *testing.T) {
	f := newFake()
	s := start(t, f, &clock{t: now}, Options{})
	_, body := get(t, s, "GET", "/history?jail=postfix")
	var rows [][]string
	for _, m := range historyRowRE.FindAllStringSubmatch(body, -1) {
		rows = append(rows, m[1:])
	}
	want := [][]string{
		{"100", "203.0.113.7", "postfix", "active"},
		{"99", "203.0.113.8", "postfix", "unbanned"},
		{"98", "2001:db8:1:2::/64", "postfix", "replaced"},
	}
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("rows %v, want %v", rows, want)
	}
	for _, w := range []string{
		`<td class="how active">active <span class="detail">6d 23h left</span></td>`,
		`<td class="how unbanned">unbanned <span class="detail">by uid 0</span></td>`,
		`<a href="/history?addr=203.0.113.0%2F24">203.0.113.0/24</a>`,
		`<a href="/ban/99">203.0.113.8</a>`,
		`<td><time datetime="2026-11-28T12:25:00Z">2026-11-28 13:25:00</time></td>`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("the page lacks %q", w)
		}
	}
	third := f.page[2]
	older := attr(t, body, `id="older"`, "href")
	if want := fmt.Sprintf("/history?before=%d.98&jail=postfix", third.Start.UnixNano()); older != want {
		t.Errorf("older: %q, want %q", older, want)
	}
	if strings.Contains(body, `id="first"`) {
		t.Error("the first page links to the first page")
	}

	f.page = f.page[3:]
	_, body = get(t, s, "GET", older)
	if got := f.queries[1].Before; got.ID != 98 || !got.Start.Equal(third.Start) {
		t.Errorf("the older page was read before %+v, want ban 98 at %v", got, third.Start)
	}
	if got := attr(t, body, `id="first"`, "href"); got != "/history?jail=postfix" {
		t.Errorf("first: %q", got)
	}
	if strings.Contains(body, `id="older"`) {
		t.Error("the last page links to an older one")
	}
	if !strings.Contains(body, `<td class="reason">instant helo=&lt;script&gt;alert(1)&lt;/script&gt; [1.2.3.4]`) {
		t.Error("the reason is not shown as escaped text")
	}

	f.page = nil
	_, body = get(t, s, "GET", "/history?addr=192.0.2.1")
	if !strings.Contains(body, `<p class="none" id="none">No bans match.</p>`) {
		t.Error("an empty result is not said")
	}
}

// A ban's page shows its fields and its evidence, as text.
func TestDetail(t *testing.T) {
	f := newFake()
	s := start(t, f, &clock{t: now}, Options{})
	res, body := get(t, s, "GET", "/ban/97")
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	for _, want := range []string{
		`<table class="fields" id="ban" data-id="97" data-addr="203.0.113.10" data-jail="postfix" data-ended="active">`,
		`<tr><th>reason</th><td class="reason">instant helo=&lt;script&gt;alert(1)&lt;/script&gt; [1.2.3.4] &#34;quoted&#34; &amp; &#39;single&#39;</td></tr>`,
		`<li><code>Nov 28 13:24:01 mx postfix/smtpd[2001]: warning: unknown[203.0.113.7]: SASL LOGIN authentication failed: &lt;script&gt;alert(1)&lt;/script&gt; [1.2.3.4] &#34;quoted&#34; &amp; &#39;single&#39;</code></li>`,
		`<a href="/history?addr=203.0.113.0%2F24">203.0.113.0/24</a>`,
		`(7d)`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the evidence's <script> is in the page as markup")
	}
	res, body = get(t, s, "GET", "/ban/98")
	if res.StatusCode != 200 || !strings.Contains(body, `replaced at <time datetime="2026-11-28T12:55:00Z">2026-11-28 13:55:00</time>`) {
		t.Errorf("ban 98: %d, no replaced time", res.StatusCode)
	}
	res, body = get(t, s, "GET", "/ban/12345")
	if res.StatusCode != 404 || !strings.Contains(body, "There is no ban 12345") {
		t.Errorf("a missing ban: %d\n%s", res.StatusCode, body)
	}
}

// With a user and password hash every request needs them; once a pair
// passed bcrypt it is remembered, and only that pair.
func TestBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, newFake(), &clock{t: now}, Options{User: "admin", PasswordHash: string(hash)})
	ready(s)
	basic := func(user, password string) []string {
		req := httptest.NewRequest("GET", "/", nil)
		req.SetBasicAuth(user, password)
		return []string{"Authorization", req.Header.Get("Authorization")}
	}
	cases := []struct {
		name   string
		path   string
		header []string
		status int
	}{
		{"none", "/", nil, 401},
		{"none on an unknown path", "/nothing", nil, 401},
		{"none on the style sheet", "/style.css", nil, 401},
		{"wrong password", "/", basic("admin", "s3cret"), 401},
		{"wrong user", "/", basic("root", "s3cret-pw"), 401},
		{"user in another case", "/", basic("Admin", "s3cret-pw"), 401},
		{"not basic", "/", []string{"Authorization", "Bearer s3cret-pw"}, 401},
		{"right", "/", basic("admin", "s3cret-pw"), 200},
		{"right again (remembered)", "/history", basic("admin", "s3cret-pw"), 200},
		{"wrong after right", "/", basic("admin", "s3cret-pw "), 401},
		{"right user and password swapped", "/", basic("s3cret-pw", "admin"), 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, body := get(t, s, "GET", c.path, c.header...)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d", res.StatusCode, c.status)
			}
			if c.status == 401 {
				if got := res.Header.Get("WWW-Authenticate"); got != `Basic realm="banwatch", charset="UTF-8"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
				if strings.Contains(body, "mx1") || strings.Contains(body, "203.0.113") {
					t.Errorf("a 401 shows the page: %s", body)
				}
				if res.Header.Get("Content-Security-Policy") == "" {
					t.Error("a 401 without the security headers")
				}
			}
		})
	}
	if g := s.auth.good.Load(); g == nil || *g != pairSum("admin", "s3cret-pw") {
		t.Error("the right pair is not remembered")
	}
	if pairSum("ab", "c") == pairSum("a", "bc") {
		t.Error("two pairs have the same sum")
	}
	if _, err := New(Options{Source: newFake(), User: "admin", PasswordHash: "s3cret-pw"}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a password for a hash: %v", err)
	}
	if _, err := New(Options{Source: newFake(), User: "admin"}); err == nil {
		t.Error("a user without a hash is taken")
	}
}

// A source that fails makes a 500 that does not show its error; the
// learned fingerprints failing (the jails restarting) leaves the rest, and
// so does the history failing on the overview, whose latest bans say
// so while the log has the error.
func TestSourceErrors(t *testing.T) {
	f := newFake()
	f.fpErr = errors.New("banwatchd is restarting its pipeline; try again")
	var logged bytes.Buffer
	s := start(t, &failing{fakeSource: f}, &clock{t: now}, Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	ready(s)
	res, body := get(t, s, "GET", "/history")
	if res.StatusCode != 500 || strings.Contains(body, "database is locked") || !strings.Contains(body, "log says why") {
		t.Errorf("history: %d\n%s", res.StatusCode, body)
	}
	logged.Reset()
	res, body = get(t, s, "GET", "/")
	if res.StatusCode != 200 || strings.Contains(body, "database is locked") {
		t.Errorf("overview without the history: %d\n%s", res.StatusCode, body)
	}
	latest := within(t, body, `<section class="latest" id="latest">`, "</section>")
	for _, want := range []string{`<p class="error" id="error">The latest bans cannot be read now; banwatchd&#39;s log says why.</p>`,
		`<form class="search" method="get" action="/history">`, `id="all"`} {
		if !strings.Contains(latest, want) {
			t.Errorf("the latest bans lack %q:\n%s", want, latest)
		}
	}
	for _, want := range []string{`data-chart="bans" data-total="62"`, `id="top-addrs"`, `id="active" data-total="43"`} {
		if !strings.Contains(body, want) {
			t.Errorf("overview without the history lacks %q", want)
		}
	}
	if !strings.Contains(logged.String(), "web: latest bans") || !strings.Contains(logged.String(), "database is locked") {
		t.Errorf("the error is not logged: %q", logged.String())
	}
	s = start(t, f, &clock{t: now}, Options{})
	ready(s)
	res, body = get(t, s, "GET", "/")
	if res.StatusCode != 200 || !strings.Contains(body, "not available now (banwatchd is restarting its pipeline; try again)") {
		t.Errorf("overview without fingerprints: %d", res.StatusCode)
	}
}

// failing is a source whose history cannot be read.
type failing struct{ *fakeSource }

func (failing) HistoryPage(context.Context, store.PageQuery) ([]ban.Ban, error) {
	return nil, errors.New("store: history page: database is locked")
}

// The pages as the fake's data makes them, against testdata/*.golden.html
// (go test -run TestGolden -update ./pkg/web writes them): to review the
// markup whole.
func TestGolden(t *testing.T) {
	s := start(t, newFake(), &clock{t: now}, Options{})
	ready(s)
	for _, c := range []struct{ name, path string }{
		{"overview", "/"}, {"history", "/history?jail=postfix"}, {"ban", "/ban/97"}, {"problem", "/ban/5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, body := get(t, s, "GET", c.path)
			path := filepath.Join("testdata", c.name+".golden.html")
			if *update {
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -run TestGolden -update ./pkg/web writes it)", err)
			}
			if !bytes.Equal([]byte(body), want) {
				t.Errorf("%s differs from %s (-update writes it):\n%s", c.path, path, body)
			}
		})
	}
}
