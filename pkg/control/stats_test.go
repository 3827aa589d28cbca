package control

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestStatsQueries sends top and hours requests: good ones reach the
// handler with the values asked for (and the defaults), bad ones are
// refused with a 400 that names the parameter, and the handler is not
// called.
func TestStatsQueries(t *testing.T) {
	since := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name, target string
		status       int
		want         statsCall // what the handler got, when 200
		reason       string    // in the error, when not 200
	}{
		{"top defaults", "/v1/top", 200, statsCall{N: DefaultTop}, ""},
		{"top", "/v1/top?since=2026-11-28T03:00:00Z&n=3", 200, statsCall{Since: since, N: 3}, ""},
		{"top since in a zone", "/v1/top?since=2026-11-28T04:00:00%2B01:00", 200, statsCall{Since: since, N: DefaultTop}, ""},
		{"top most", "/v1/top?n=1000", 200, statsCall{N: MaxTop}, ""},
		{"top n 0", "/v1/top?n=0", 400, statsCall{}, "n: want a number from 1 to 1000"},
		{"top n too large", "/v1/top?n=1001", 400, statsCall{}, "n: want a number from 1 to 1000"},
		{"top n not a number", "/v1/top?n=ten", 400, statsCall{}, `got "ten"`},
		{"top since a duration", "/v1/top?since=24h", 400, statsCall{}, `since: want an RFC 3339 time, got "24h"`},
		{"hours defaults", "/v1/hours", 200, statsCall{}, ""},
		{"hours", "/v1/hours?since=2026-11-28T03:00:00Z&jail=postfix", 200, statsCall{Since: since, Jail: "postfix"}, ""},
		{"hours since a date", "/v1/hours?since=2026-11-28", 400, statsCall{}, "since: want an RFC 3339 time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHandler{}
			s := NewServer(h, slog.New(slog.DiscardHandler))
			w := serve(s, "GET", tt.target, nil)
			if w.Code != tt.status {
				t.Fatalf("status %d %s, want %d", w.Code, strings.TrimSpace(w.Body.String()), tt.status)
			}
			if tt.status != http.StatusOK {
				var e struct{ Error string }
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tt.reason) {
					t.Errorf("answer %s, want an error with %q", w.Body, tt.reason)
				}
				if calls := h.called(); len(calls) != 0 {
					t.Errorf("the handler was called: %v", calls)
				}
				return
			}
			if len(h.stats) != 1 || !h.stats[0].Since.Equal(tt.want.Since) || h.stats[0].N != tt.want.N || h.stats[0].Jail != tt.want.Jail {
				t.Errorf("the handler got %+v, want %+v", h.stats, tt.want)
			}
		})
	}
}

// TestStatsAnswers checks the JSON of top and hours: lower_snake names,
// and lists that are [] rather than null when empty.
func TestStatsAnswers(t *testing.T) {
	hour := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	h := &fakeHandler{
		top: &TopReply{Since: hour, Bans: 3, Addresses: []Count{{Key: "192.0.2.7", Bans: 2}, {Key: "2001:db8::/64", Bans: 1}},
			Jails: []Count{{Key: "postfix", Bans: 3}}},
		hours: &HoursReply{Since: hour, Bans: []BanHour{{Hour: hour, Jail: "postfix", Bans: 3}}},
	}
	s := NewServer(h, slog.New(slog.DiscardHandler))
	for _, c := range []struct{ target, want string }{
		{"/v1/top", `{"since":"2026-11-28T03:00:00Z","bans":3,"addresses":[{"key":"192.0.2.7","bans":2},{"key":"2001:db8::/64","bans":1}],` +
			`"nets24":[],"nets64":[],"jails":[{"key":"postfix","bans":3}],"fingerprints":[]}`},
		{"/v1/hours", `{"since":"2026-11-28T03:00:00Z","bans":[{"hour":"2026-11-28T03:00:00Z","jail":"postfix","bans":3}],"events":[]}`},
	} {
		w := serve(s, "GET", c.target, nil)
		if got := strings.TrimSpace(w.Body.String()); w.Code != http.StatusOK || got != c.want {
			t.Errorf("%s: %d\n got %s\nwant %s", c.target, w.Code, got, c.want)
		}
	}
}

// TestStatsClient asks through the socket: the client sends what it is
// given and reads back what the handler answered; a refusal is an *Error.
func TestStatsClient(t *testing.T) {
	hour := time.Date(2026, 11, 28, 3, 0, 0, 0, time.UTC)
	top := &TopReply{Since: hour, Bans: 7, Addresses: []Count{{Key: "192.0.2.7", Bans: 7}}, Nets24: []Count{{Key: "192.0.2.0/24", Bans: 7}},
		Nets64: []Count{}, Jails: []Count{{Key: "postfix", Bans: 7}}, Fingerprints: []Count{{Key: "instant helo=ylmf-pc", Bans: 2}}}
	hours := &HoursReply{Since: hour,
		Bans:   []BanHour{{Hour: hour, Jail: "postfix", Bans: 5}, {Hour: hour.Add(time.Hour), Jail: "postfix", Bans: 2}},
		Events: []EventHour{{Hour: hour, Kind: "auth_failure", Events: 40}}}
	h := &fakeHandler{top: top, hours: hours}
	c := NewClient(startServer(t, NewServer(h, slog.New(slog.DiscardHandler)), -1))
	ctx := context.Background()

	// A since in a zone goes as the same instant.
	since := hour.Add(30 * time.Minute).In(time.FixedZone("X", -5*3600))
	got, err := c.Top(ctx, since, 3)
	if err != nil || !reflect.DeepEqual(got, top) {
		t.Errorf("Top: %+v, %v; want %+v", got, err, top)
	}
	gotH, err := c.Hours(ctx, since, "postfix")
	if err != nil || !reflect.DeepEqual(gotH, hours) {
		t.Errorf("Hours: %+v, %v; want %+v", gotH, err, hours)
	}
	if _, err := c.Top(ctx, time.Time{}, 0); err != nil {
		t.Errorf("Top with the defaults: %v", err)
	}
	want := []statsCall{{Since: since, N: 3}, {Since: since, Jail: "postfix"}, {N: DefaultTop}}
	h.mu.Lock()
	stats := h.stats
	h.mu.Unlock()
	if len(stats) != len(want) {
		t.Fatalf("the handler got %+v, want %+v", stats, want)
	}
	for i := range want {
		if !stats[i].Since.Equal(want[i].Since) || stats[i].N != want[i].N || stats[i].Jail != want[i].Jail {
			t.Errorf("call %d: the handler got %+v, want %+v", i, stats[i], want[i])
		}
	}

	var e *Error
	if _, err := c.Top(ctx, time.Time{}, MaxTop+1); !errors.As(err, &e) || e.Status != http.StatusBadRequest || !strings.Contains(e.Msg, "n: ") {
		t.Errorf("Top(n = %d): %v, want a 400 about n", MaxTop+1, err)
	}
}
