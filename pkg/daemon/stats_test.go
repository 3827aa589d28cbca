package daemon

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/control"
)

// TestControlTopAndHours asks a running daemon for its top lists and
// hours after a jail's ban (of five failed logins) and a manual one.
func TestControlTopAndHours(t *testing.T) {
	e, c, stop := startWithClient(t)
	defer stop()
	ctx := context.Background()
	since := time.Now().Add(-time.Hour)

	if _, err := c.Ban(ctx, control.BanRequest{IP: "198.51.100.0/24", Reason: "scanner network"}); err != nil {
		t.Fatal(err)
	}
	e.appendLines(failures("203.0.113.7", 5)...)
	e.waitBanned("203.0.113.7")

	top, err := c.Top(ctx, since, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := &control.TopReply{
		Since: since.UTC(), Bans: 2,
		Addresses:    []control.Count{{Key: "198.51.100.0/24", Bans: 1}, {Key: "203.0.113.7", Bans: 1}},
		Nets24:       []control.Count{{Key: "198.51.100.0/24", Bans: 1}, {Key: "203.0.113.0/24", Bans: 1}},
		Nets64:       []control.Count{},
		Jails:        []control.Count{{Key: "manual", Bans: 1}, {Key: "postfix", Bans: 1}},
		Fingerprints: []control.Count{},
	}
	if !reflect.DeepEqual(top, want) {
		t.Errorf("top:\n got %+v\nwant %+v", top, want)
	}
	if top, err := c.Top(ctx, time.Now().Add(time.Hour), 10); err != nil || top.Bans != 0 || len(top.Addresses) != 0 {
		t.Errorf("top of the next hour: %+v, %v", top, err)
	}

	// The log lines' times and the bans' starts are this hour's (or the
	// last one's, the test running across the hour): count per key.
	for _, tc := range []struct {
		jail   string
		bans   map[string]int
		events map[string]int
	}{
		{"", map[string]int{"manual": 1, "postfix": 1}, map[string]int{"auth_failure": 5}},
		{"postfix", map[string]int{"postfix": 1}, map[string]int{"auth_failure": 5}},
		{"nope", map[string]int{}, map[string]int{"auth_failure": 5}},
	} {
		h, err := c.Hours(ctx, since, tc.jail)
		if err != nil {
			t.Fatal(err)
		}
		if !h.Since.Equal(since.Truncate(time.Hour)) {
			t.Errorf("hours since %v, want %v", h.Since, since.Truncate(time.Hour))
		}
		bans, events := map[string]int{}, map[string]int{}
		for _, b := range h.Bans {
			if b.Hour.Before(h.Since) || b.Hour.After(time.Now()) || !b.Hour.Equal(b.Hour.Truncate(time.Hour)) {
				t.Errorf("bans of hour %v", b.Hour)
			}
			bans[b.Jail] += b.Bans
		}
		for _, ev := range h.Events {
			events[ev.Kind] += ev.Events
		}
		if !reflect.DeepEqual(bans, tc.bans) || !reflect.DeepEqual(events, tc.events) {
			t.Errorf("hours of jail %q: bans %v, events %v; want %v, %v", tc.jail, bans, events, tc.bans, tc.events)
		}
	}
}
