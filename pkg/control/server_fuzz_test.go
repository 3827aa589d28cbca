package control

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var fuzzRoutes = []struct{ method, path string }{
	{"GET", "/v1/status"}, {"GET", "/v1/bans"}, {"GET", "/v1/history"}, {"POST", "/v1/ban"},
	{"POST", "/v1/bulkban"}, {"POST", "/v1/unban"}, {"POST", "/v1/reload"}, {"GET", "/v1/fingerprints"},
	{"POST", "/v1/forget"}, {"PUT", "/v1/ban"}, {"GET", "/v2/x"}, {"GET", "/v1/top"}, {"GET", "/v1/hours"},
}

// strictRequest decodes body as the server must take it: one JSON object
// of v's fields and nothing after it but blanks, at most limit bytes.
func strictRequest(body string, v any, limit int) bool {
	if len(body) > limit || !strings.HasPrefix(strings.TrimLeft(body, " \t\r\n"), "{") {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(v) != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

// FuzzServer sends the control API's routes hostile query strings and
// bodies: the server never panics and never fails with a 5xx of its own
// (the fake handler never fails); a POST reaches the handler exactly when
// its body is one JSON object of the request's fields (reload: no body or
// an empty object), and then with that request.
func FuzzServer(f *testing.F) {
	for i := range fuzzRoutes {
		f.Add(uint8(i), "", "")
	}
	f.Add(uint8(3), "", `{"ip":"192.0.2.1","jail":"postfix","for":"7d"}`)
	f.Add(uint8(3), "", `{"ip":"192.0.2.1"} {"ip":"192.0.2.2"}`)
	f.Add(uint8(3), "", `{"ip":"192.0.2.1","nope":1}`)
	f.Add(uint8(4), "", `{"bans":[{"ip":"192.0.2.1"},{"ip":"::1"}]}`)
	f.Add(uint8(1), "jail=postfix&ip=192.0.2.0/24", "")
	f.Add(uint8(2), "ip=not-an-ip&since=-5d&limit=99999999999999999999", "")
	f.Add(uint8(5), "", `{"ip":"0.0.0.0/0","all":true}`)
	f.Add(uint8(8), "", "\xff\xfe{")
	f.Add(uint8(11), "since=2026-11-28T00:00:00Z&n=1000", "")
	f.Add(uint8(11), "n=-1&n=5", "")
	f.Add(uint8(12), "since=2026-11-28T00:00:00%2B01:00&jail=postfix", "")
	f.Fuzz(func(t *testing.T, route uint8, query, body string) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		h := &fakeHandler{}
		s := NewServer(h, slog.New(slog.DiscardHandler))
		target := r.path
		if query != "" {
			target += "?" + strings.NewReplacer("#", "%23", " ", "%20", "\n", "%0A", "\r", "%0D").Replace(query)
		}
		req, err := http.NewRequest(r.method, "http://banwatch"+target, strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req = req.WithContext(context.WithValue(req.Context(), peerKey{}, Peer{UID: 0}))
		w := httptest.NewRecorder()
		s.srv.Handler.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", r.method, target, body, w.Code, w.Body)
		}
		if r.path == "/v1/top" || r.path == "/v1/hours" {
			// Answered exactly when the handler was asked, with a
			// number of entries within the limits.
			h.mu.Lock()
			stats := slices.Clone(h.stats)
			h.mu.Unlock()
			switch {
			case w.Code == http.StatusOK && len(stats) != 1:
				t.Fatalf("%s %q: answered %d, the handler got %+v", r.path, query, w.Code, stats)
			case w.Code != http.StatusOK && len(stats) != 0:
				t.Fatalf("%s %q: refused with %d, yet the handler got %+v", r.path, query, w.Code, stats)
			case w.Code == http.StatusOK && r.path == "/v1/top" && (stats[0].N < 1 || stats[0].N > MaxTop):
				t.Fatalf("%s %q: the handler got n = %d", r.path, query, stats[0].N)
			}
		}
		if r.method != "POST" {
			return
		}
		var want, got any
		var ok bool
		switch r.path {
		case "/v1/ban":
			var v BanRequest
			ok, want = strictRequest(body, &v, maxBody), []BanRequest{v}
			got = h.bans
		case "/v1/bulkban":
			var v BulkBanRequest
			ok, want = strictRequest(body, &v, MaxBulkBody) && len(v.Bans) <= MaxBulk, []BulkBanRequest{v}
			got = h.bulk
		case "/v1/unban":
			var v UnbanRequest
			ok, want = strictRequest(body, &v, maxBody), []UnbanRequest{v}
			got = h.unbans
		case "/v1/forget":
			var v ForgetRequest
			ok, want = strictRequest(body, &v, maxBody), []ForgetRequest{v}
			got = h.forgets
		case "/v1/reload":
			ok = body == "" || strictRequest(body, &struct{}{}, maxBody)
		}
		calls := h.called()
		switch {
		case ok && len(calls) != 1:
			t.Fatalf("%s %q: the handler was called %v, want once", r.path, body, calls)
		case !ok && len(calls) != 0:
			t.Fatalf("%s %q: the handler got %v from a body that is no single request", r.path, body, calls)
		case ok && want != nil && !reflect.DeepEqual(got, want):
			t.Fatalf("%s %q: the handler got %+v, want %+v", r.path, body, got, want)
		case !ok && w.Code < 400:
			t.Fatalf("%s %q: refused with %d", r.path, body, w.Code)
		}
	})
}
