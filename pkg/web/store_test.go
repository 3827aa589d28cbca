package web

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/store"
	"github.com/banwatch/banwatch/pkg/web/webtest"
)

// storeSource is a real store with fixed learned fingerprints, as the
// daemon's adapter adds the running jails'.
type storeSource struct {
	*store.Store
	fps []control.Fingerprint
}

var _ Source = storeSource{}

func (s storeSource) Fingerprints(context.Context) ([]control.Fingerprint, error) { return s.fps, nil }

// openHistory writes a generated history into a new store.
func openHistory(t *testing.T, spec webtest.Spec) (*store.Store, *webtest.History) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "banwatch.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h, err := webtest.Write(context.Background(), st, spec)
	if err != nil {
		t.Fatal(err)
	}
	return st, h
}

// The page over a real store shows the numbers of the history written into
// it: every bar segment, the totals, the top lists' leaders, the active
// bans; the history pages through every ban of a search exactly once,
// newest first.
func TestStorePages(t *testing.T) {
	st, h := openHistory(t, webtest.Spec{Now: now, Bans: 3000, Strikes: 2000, Evidence: 2, Seed: 1})
	s := start(t, storeSource{Store: st}, &clock{t: now}, Options{PageSize: 20})
	ready(s)
	_, body := get(t, s, "GET", "/")

	type hk struct {
		hour, key string
		n         int
	}
	expect := func(m map[time.Time]map[string]int) []hk {
		var out []hk
		for hour, keys := range m {
			for k, n := range keys {
				out = append(out, hk{hour.Format(time.RFC3339), k, n})
			}
		}
		slices.SortFunc(out, func(a, b hk) int { return strings.Compare(a.hour+a.key, b.hour+b.key) })
		return out
	}
	shown := func(id string) []hk {
		var out []hk
		for _, sg := range segments(t, body, id) {
			out = append(out, hk{sg.hour, sg.key, sg.n})
		}
		slices.SortFunc(out, func(a, b hk) int { return strings.Compare(a.hour+a.key, b.hour+b.key) })
		return out
	}
	if got, want := shown("bans"), expect(h.Hours); !slices.Equal(got, want) {
		t.Errorf("bans chart: %d segments, want %d\n got %v\nwant %v", len(got), len(want), got, want)
	}
	if got, want := shown("events"), expect(h.Events); !slices.Equal(got, want) {
		t.Errorf("events chart: %d segments, want %d", len(got), len(want))
	}
	topAddr, top24, top64 := webtest.Top(h.Addrs), webtest.Top(h.Nets24), webtest.Top(h.Nets64)
	if topAddr.Key != webtest.TopAddr.String() || top24.Key != webtest.Top24.String() || top64.Key != webtest.Top64.String() {
		t.Fatalf("the history's leaders are %v %v %v", topAddr, top24, top64)
	}
	fp := webtest.Top(h.Fingerprints)
	checks := []struct{ marker, attr, want string }{
		{`data-chart="bans"`, "data-total", "3000"},
		{`data-chart="events"`, "data-total", "2000"},
		{`id="week"`, "data-total", "3000"},
		{`id="asof"`, "data-bans", "3000"},
		{`id="active"`, "data-total", strconv.Itoa(webtest.Total(h.Active))},
		{`<li data-key="postfix"`, "data-total", strconv.Itoa(h.Jails["postfix"])},
		{`<tr data-key="postfix" data-n="` + strconv.Itoa(h.Active["postfix"]) + `"`, "data-n", strconv.Itoa(h.Active["postfix"])},
	}
	for _, c := range checks {
		if got := attr(t, body, c.marker, c.attr); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.marker, c.attr, got, c.want)
		}
	}
	// Each list's first row is its leader, with its count.
	for id, want := range map[string]store.KeyCount{"addrs": topAddr, "nets24": top24, "nets64": top64, "fingerprints": fp} {
		i := strings.Index(body, `id="top-`+id+`"`)
		m := regexp.MustCompile(`<tr data-key="([^"]+)" data-n="(\d+)"`).FindStringSubmatch(body[i:])
		if m == nil || m[1] != want.Key || m[2] != strconv.Itoa(want.N) {
			t.Errorf("top %s leads with %v, want %v", id, m, want)
		}
	}
	if !strings.Contains(body, `<code>instant helo=&lt;script&gt;alert(1)&lt;/script&gt; from [1.2.3.4]</code>`) || strings.Contains(body, "<script") {
		t.Error("the attacker's HELO is not shown as text among the fingerprints")
	}

	overview := body

	// The first page begins with the newest ban.
	_, body = get(t, s, "GET", "/history")
	rows := historyRowRE.FindAllStringSubmatch(body, -1)
	if len(rows) != 20 || rows[0][1] != strconv.FormatInt(h.Newest.ID, 10) {
		t.Fatalf("first page: %d rows, first %v; want 20 from ban %d", len(rows), rows[:min(1, len(rows))], h.Newest.ID)
	}
	// The overview's latest bans are the same 20 (a page of history is 20
	// here too), with the same link to the older ones.
	latest := within(t, overview, `<section class="latest" id="latest">`, "</section>")
	if got := historyRowRE.FindAllStringSubmatch(latest, -1); !slices.EqualFunc(got, rows, slices.Equal) {
		t.Errorf("the overview's latest bans:\n got %v\nwant %v", got, rows)
	}
	if got, want := attr(t, latest, `id="older"`, "href"), attr(t, body, `id="older"`, "href"); got != want {
		t.Errorf("the overview's older link %q, the history's %q", got, want)
	}

	// Every ban of a search, once, newest first, across the pages.
	n24 := h.Addrs[webtest.Top24.String()] // the bans of the /24 itself
	searches := []struct {
		query string
		want  int
		check func(id, addr, jail, ended string) bool
	}{
		{"?addr=" + webtest.Top24.String(), h.Nets24[webtest.Top24.String()], func(_, addr, _, _ string) bool {
			p, err := ban.ParsePrefix(addr)
			return err == nil && webtest.Top24.Overlaps(p)
		}},
		// An address's bans and those of the /24 bans covering it.
		{"?addr=" + webtest.TopAddr.String(), h.Addrs[webtest.TopAddr.String()] + n24, func(_, addr, _, _ string) bool {
			return addr == webtest.TopAddr.String() || addr == webtest.Top24.String()
		}},
		{"?jail=sshd&ended=unbanned", -1, func(_, _, jail, ended string) bool { return jail == "sshd" && ended == ban.EndUnbanned }},
		{"?ended=unbanned", h.Ended[ban.EndUnbanned], func(_, _, _, ended string) bool { return ended == ban.EndUnbanned }},
		{"?ended=active&jail=manual", h.Active["manual"], func(_, _, jail, ended string) bool { return jail == "manual" && ended == "active" }},
	}
	for _, c := range searches {
		t.Run(c.query, func(t *testing.T) {
			seen := map[string]bool{}
			path := "/history" + c.query
			pages := 0
			for path != "" {
				pages++
				res, body := get(t, s, "GET", path)
				if res.StatusCode != 200 {
					t.Fatalf("%s: status %d", path, res.StatusCode)
				}
				for _, m := range historyRowRE.FindAllStringSubmatch(body, -1) {
					if seen[m[1]] {
						t.Fatalf("ban %s on two pages", m[1])
					}
					seen[m[1]] = true
					if !c.check(m[1], m[2], m[3], m[4]) {
						t.Errorf("ban %s (%s %s %s) does not match", m[1], m[2], m[3], m[4])
					}
				}
				path = ""
				if strings.Contains(body, `id="older"`) {
					path = attr(t, body, `id="older"`, "href")
				}
			}
			if c.want >= 0 && len(seen) != c.want {
				t.Errorf("%d bans in %d pages, want %d", len(seen), pages, c.want)
			}
		})
	}

	// The newest ban's page: its evidence, the attacker's line as text.
	res, body := get(t, s, "GET", fmt.Sprintf("/ban/%d", h.Newest.ID))
	if res.StatusCode != 200 {
		t.Fatalf("ban %d: status %d", h.Newest.ID, res.StatusCode)
	}
	if got := strings.Count(body, "<li><code>"); got != 3 {
		t.Errorf("%d evidence lines, want 3", got)
	}
	if !strings.Contains(body, `SASL PLAIN authentication failed: &lt;script&gt;alert(1)&lt;/script&gt; from [1.2.3.4]</code></li>`) ||
		strings.Contains(body, "<script") {
		t.Error("the evidence is not shown as text")
	}
	if want := `data-addr="` + ban.IP(h.Newest.Prefix) + `" data-jail="` + h.Newest.Jail + `"`; !strings.Contains(body, want) {
		t.Errorf("the ban's page lacks %s", want)
	}
}
