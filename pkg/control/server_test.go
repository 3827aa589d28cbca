package control

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// padded is a well-formed request for path, padded with blanks inside the
// object to size bytes: too large only by its size.
func padded(path string, size int) string {
	inner := map[string]string{
		"/v1/ban":     `"ip":"192.0.2.1"`,
		"/v1/unban":   `"ip":"192.0.2.1"`,
		"/v1/forget":  `"value":"helo=x"`,
		"/v1/reload":  ``,
		"/v1/bulkban": `"bans":[{"ip":"192.0.2.1"}]`,
	}[path]
	return "{" + inner + strings.Repeat(" ", max(0, size-len(inner)-2)) + "}"
}

// serve sends one request straight to the server's handler, as the peer
// uid 0, and returns the answer.
func serve(s *Server, method, path string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://banwatch"+path, body)
	req = req.WithContext(context.WithValue(req.Context(), peerKey{}, Peer{UID: 0}))
	w := httptest.NewRecorder()
	s.srv.Handler.ServeHTTP(w, req)
	return w
}

// TestRejectedRequests sends each route bodies a client must not get
// through: too large, malformed, with trailing data, of the wrong types or
// with unknown fields. Each is refused with a 4xx and the handler is never
// called.
func TestRejectedRequests(t *testing.T) {
	posts := []string{"/v1/ban", "/v1/unban", "/v1/forget", "/v1/reload", "/v1/bulkban"}
	type tc struct {
		name, method, path, body string
		status                   int
	}
	var tests []tc
	for _, p := range posts {
		limit := maxBody
		if p == "/v1/bulkban" {
			limit = MaxBulkBody
		}
		tests = append(tests,
			tc{"oversized", "POST", p, padded(p, limit+1), http.StatusRequestEntityTooLarge},
			tc{"oversized string", "POST", p, `{"x":"` + strings.Repeat("a", limit) + `"}`, http.StatusRequestEntityTooLarge},
			tc{"truncated", "POST", p, `{"ip":`, http.StatusBadRequest},
			tc{"not JSON", "POST", p, `ip=192.0.2.1`, http.StatusBadRequest},
			tc{"null", "POST", p, `null`, http.StatusBadRequest},
			tc{"array", "POST", p, `[]`, http.StatusBadRequest},
			tc{"string", "POST", p, `"192.0.2.1"`, http.StatusBadRequest},
			tc{"two objects", "POST", p, `{} {}`, http.StatusBadRequest},
			tc{"trailing garbage", "POST", p, `{}x`, http.StatusBadRequest},
			tc{"trailing bracket", "POST", p, `{}]`, http.StatusBadRequest},
			tc{"unknown field", "POST", p, `{"nope":1}`, http.StatusBadRequest},
			tc{"invalid UTF-8", "POST", p, "\xff\xfe{", http.StatusBadRequest},
			tc{"NUL", "POST", p, "{\x00}", http.StatusBadRequest},
		)
		if p != "/v1/reload" {
			tests = append(tests, tc{"empty", "POST", p, ``, http.StatusBadRequest})
		}
	}
	tests = append(tests,
		tc{"wrong type", "POST", "/v1/ban", `{"ip":3232235777}`, http.StatusBadRequest},
		tc{"wrong type", "POST", "/v1/ban", `{"ip":"192.0.2.1","force":"yes"}`, http.StatusBadRequest},
		tc{"wrong type", "POST", "/v1/unban", `{"all":1}`, http.StatusBadRequest},
		tc{"wrong type", "POST", "/v1/forget", `{"value":["helo=x"]}`, http.StatusBadRequest},
		tc{"wrong type", "POST", "/v1/bulkban", `{"bans":{"ip":"192.0.2.1"}}`, http.StatusBadRequest},
		tc{"wrong type", "POST", "/v1/bulkban", `{"bans":[{"ip":"192.0.2.1","until":"tomorrow"}]}`, http.StatusBadRequest},
		tc{"unknown nested field", "POST", "/v1/bulkban", `{"bans":[{"ip":"192.0.2.1","nope":1}]}`, http.StatusBadRequest},
		tc{"too many bans", "POST", "/v1/bulkban", `{"bans":[` + strings.Repeat(`{},`, MaxBulk) + `{}]}`, http.StatusRequestEntityTooLarge},
		tc{"wrong method", "PUT", "/v1/ban", `{"ip":"192.0.2.1"}`, http.StatusMethodNotAllowed},
		tc{"wrong method", "GET", "/v1/reload", ``, http.StatusMethodNotAllowed},
		tc{"unknown route", "POST", "/v1/ban/", `{"ip":"192.0.2.1"}`, http.StatusNotFound},
	)
	for _, tt := range tests {
		t.Run(tt.path+"/"+tt.name, func(t *testing.T) {
			h := &fakeHandler{}
			s := NewServer(h, slog.New(slog.DiscardHandler))
			w := serve(s, tt.method, tt.path, strings.NewReader(tt.body))
			if w.Code != tt.status {
				t.Errorf("status %d %s, want %d", w.Code, strings.TrimSpace(w.Body.String()), tt.status)
			}
			if calls := h.called(); len(calls) != 0 {
				t.Errorf("the handler was called: %v", calls)
			}
		})
	}
}

// TestAcceptedRequests is TestRejectedRequests' control: requests just
// within the limits reach the handler once, with what the client sent.
func TestAcceptedRequests(t *testing.T) {
	tests := []struct {
		name, path, body, call string
	}{
		{"ban at the limit", "/v1/ban", padded("/v1/ban", maxBody), "Ban"},
		{"unban with a newline", "/v1/unban", "{\"ip\":\"192.0.2.1\",\"jail\":\"postfix\"}\n", "Unban"},
		{"forget", "/v1/forget", `{"value":"helo=ylmf-pc","jail":"postfix"}`, "Forget"},
		{"reload without a body", "/v1/reload", ``, "Reload"},
		{"reload with an empty object", "/v1/reload", `{}`, "Reload"},
		// A bulk ban takes more than other requests.
		{"bulk ban above the small limit", "/v1/bulkban", padded("/v1/bulkban", 4*maxBody), "BulkBan"},
		{"bulk ban of the most entries", "/v1/bulkban", `{"bans":[` + strings.Repeat(`{},`, MaxBulk-1) + `{}]}`, "BulkBan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHandler{}
			s := NewServer(h, slog.New(slog.DiscardHandler))
			w := serve(s, "POST", tt.path, strings.NewReader(tt.body))
			if w.Code != http.StatusOK {
				t.Errorf("status %d %s, want 200", w.Code, strings.TrimSpace(w.Body.String()))
			}
			if calls := h.called(); !slices.Equal(calls, []string{tt.call}) {
				t.Errorf("calls %v, want %s once", calls, tt.call)
			}
		})
	}
	h := &fakeHandler{}
	s := NewServer(h, slog.New(slog.DiscardHandler))
	serve(s, "POST", "/v1/ban", strings.NewReader(`{"ip":"192.0.2.0/24","jail":"postfix","for":"7d","reason":"r","force":true}`))
	want := BanRequest{IP: "192.0.2.0/24", Jail: "postfix", For: "7d", Reason: "r", Force: true}
	if len(h.bans) != 1 || h.bans[0] != want {
		t.Errorf("the handler got %+v, want %+v", h.bans, want)
	}
}

// tempSocketDir makes a directory for a socket that every user may enter,
// so that what keeps a peer out is the socket's own mode.
func tempSocketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "banwatch-control")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startServer serves s on a fresh socket until the test ends and returns
// the socket's path.
func startServer(t *testing.T, s *Server, gid int) string {
	t.Helper()
	path := filepath.Join(tempSocketDir(t), "banwatch.sock")
	l, err := Listen(path, gid)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return path
}
