package control

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/banwatch/banwatch/pkg/ban"
)

// fakeHandler answers every request with nothing, and remembers what the
// server handed it.
type fakeHandler struct {
	calls int
	bans  []BanRequest
}

func (f *fakeHandler) Status(context.Context) (*Status, error) { f.calls++; return &Status{}, nil }
func (f *fakeHandler) Active(context.Context, string, netip.Prefix, func(*ban.Ban) error) error {
	f.calls++
	return nil
}
func (f *fakeHandler) History(context.Context, HistoryQuery, func(*ban.Ban) error) error {
	f.calls++
	return nil
}
func (f *fakeHandler) Ban(_ context.Context, req BanRequest, _ Peer) ([]ban.Ban, error) {
	f.calls++
	f.bans = append(f.bans, req)
	return nil, nil
}
func (f *fakeHandler) BulkBan(context.Context, BulkBanRequest, Peer) ([]ban.Ban, []Refusal, error) {
	f.calls++
	return nil, nil, nil
}
func (f *fakeHandler) Unban(context.Context, UnbanRequest, Peer) ([]ban.Ban, error) {
	f.calls++
	return nil, nil
}
func (f *fakeHandler) Reload(context.Context) error { f.calls++; return nil }
func (f *fakeHandler) Fingerprints(context.Context, string) ([]Fingerprint, error) {
	f.calls++
	return nil, nil
}
func (f *fakeHandler) Forget(context.Context, string, string, Peer) ([]Fingerprint, error) {
	f.calls++
	return nil, nil
}

var fuzzRoutes = []struct{ method, path string }{
	{"GET", "/v1/status"}, {"GET", "/v1/bans"}, {"GET", "/v1/history"}, {"POST", "/v1/ban"},
	{"POST", "/v1/bulkban"}, {"POST", "/v1/unban"}, {"POST", "/v1/reload"}, {"GET", "/v1/fingerprints"},
	{"POST", "/v1/forget"}, {"PUT", "/v1/ban"}, {"GET", "/v2/x"},
}

// FuzzServer sends the control API's routes hostile query strings and
// bodies: the server never panics and never fails with a 5xx of its own
// (the fake handler never fails); a ban request reaches the handler only
// when its body is one JSON object of the request's fields.
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
		if r.path == "/v1/ban" && r.method == "POST" {
			var want BanRequest
			dec := json.NewDecoder(strings.NewReader(body))
			dec.DisallowUnknownFields()
			ok := dec.Decode(&want) == nil
			if _, err := dec.Token(); err != io.EOF {
				ok = false // trailing values
			}
			if len(h.bans) == 1 && !ok {
				t.Fatalf("the handler got %+v from a body that is no single ban request: %q", h.bans[0], body)
			}
		}
	})
}
