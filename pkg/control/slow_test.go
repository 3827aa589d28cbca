package control

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testTimeouts are short enough for a test to wait out, with a bulk ban's
// own time far enough from the others' to tell them apart on a busy
// machine.
var testTimeouts = timeouts{
	header: 300 * time.Millisecond,
	body:   300 * time.Millisecond,
	bulk:   3 * time.Second,
	idle:   300 * time.Millisecond,
}

// slack is how much later than its timeout a busy machine may cut a
// client off.
const slack = 3 * time.Second

// dial connects to the socket at path.
func dial(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trickle writes parts to c with gap between them, until they are all
// written or a write fails (the server has hung up).
func trickle(c net.Conn, gap time.Duration, parts ...string) {
	go func() {
		for i, p := range parts {
			if i > 0 {
				time.Sleep(gap)
			}
			if _, err := io.WriteString(c, p); err != nil {
				return
			}
		}
	}()
}

// bytesOf splits s into its bytes, to trickle them one by one.
func bytesOf(s string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i : i+1]
	}
	return out
}

// waitClosed reads what the server sends on c until it hangs up, and
// fails the test if it has not within limit.
func waitClosed(t *testing.T, c net.Conn, limit time.Duration) (reply string, took time.Duration) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	data, err := io.ReadAll(c)
	took = time.Since(start)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server did not hang up within %v (got %q)", limit, data)
	}
	return string(data), took
}

func header(method, path string, length int) string {
	return method + " " + path + " HTTP/1.1\r\nHost: banwatchd\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(length) + "\r\n\r\n"
}

// TestSlowClients plays clients that send their request slowly or not at
// all (slowloris): each is cut off by the server's timeouts, without the
// handler hearing of it; a bulk ban's body has more time than the others;
// and a handler that runs longer than the timeouts is not cut short.
func TestSlowClients(t *testing.T) {
	ban := `{"ip":"192.0.2.1","jail":"postfix"}`
	bulk := `{"bans":[{"ip":"192.0.2.1"},{"ip":"192.0.2.2"}],"dry_run":true}`
	tests := []struct {
		name    string
		send    func(c net.Conn)
		timeout time.Duration // the one that must cut the client off; 0: none
		reply   string        // how the answer starts
		orNone  bool          // or no answer at all
		calls   []string
		wait    time.Duration // how long each handler call takes
	}{
		{
			name:    "headers stalled",
			send:    func(c net.Conn) { io.WriteString(c, "POST /v1/ban HTTP/1.1\r\nHost: banwatchd\r\nContent-") },
			timeout: testTimeouts.header,
			reply:   "HTTP/1.1 400 ",
			orNone:  true,
		},
		{
			name:    "headers trickled",
			send:    func(c net.Conn) { trickle(c, 30*time.Millisecond, bytesOf(header("POST", "/v1/ban", len(ban))+ban)...) },
			timeout: testTimeouts.header,
			reply:   "HTTP/1.1 400 ",
			orNone:  true,
		},
		{
			name:    "body stalled",
			send:    func(c net.Conn) { io.WriteString(c, header("POST", "/v1/ban", len(ban))+ban[:10]) },
			timeout: testTimeouts.body,
			reply:   "HTTP/1.1 408 ",
		},
		{
			name: "body trickled",
			send: func(c net.Conn) {
				io.WriteString(c, header("POST", "/v1/unban", len(ban)))
				trickle(c, 30*time.Millisecond, bytesOf(ban)...)
			},
			timeout: testTimeouts.body,
			reply:   "HTTP/1.1 408 ",
		},
		{
			name:    "reload body stalled",
			send:    func(c net.Conn) { io.WriteString(c, header("POST", "/v1/reload", 2)+"{") },
			timeout: testTimeouts.body,
			reply:   "HTTP/1.1 408 ",
		},
		{
			name:    "bulk body stalled",
			send:    func(c net.Conn) { io.WriteString(c, header("POST", "/v1/bulkban", len(bulk))+bulk[:20]) },
			timeout: testTimeouts.bulk,
			reply:   "HTTP/1.1 408 ",
		},
		{
			// Ten pieces over about a second: too slow for another request,
			// in time for a bulk ban.
			name: "bulk body slow but in time",
			send: func(c net.Conn) {
				io.WriteString(c, header("POST", "/v1/bulkban", len(bulk)))
				var parts []string
				for i := 0; i < len(bulk); i += len(bulk)/10 + 1 {
					parts = append(parts, bulk[i:min(i+len(bulk)/10+1, len(bulk))])
				}
				trickle(c, 100*time.Millisecond, parts...)
			},
			reply: "HTTP/1.1 200 ",
			calls: []string{"BulkBan"},
		},
		{
			name: "kept alive and idle",
			send: func(c net.Conn) {
				io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: banwatchd\r\n\r\n")
			},
			timeout: testTimeouts.idle,
			reply:   "HTTP/1.1 200 ",
			calls:   []string{"Status"},
		},
		{
			name:  "handler longer than the timeouts",
			send:  func(c net.Conn) { io.WriteString(c, header("POST", "/v1/ban", len(ban))+ban) },
			reply: "HTTP/1.1 200 ",
			calls: []string{"Ban"},
			wait:  4 * testTimeouts.body,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &fakeHandler{wait: tt.wait}
			path := startServer(t, newServer(h, slog.New(slog.DiscardHandler), testTimeouts), -1)
			c := dial(t, path)
			tt.send(c)
			var reply string
			if tt.timeout > 0 {
				var took time.Duration
				reply, took = waitClosed(t, c, tt.timeout+slack)
				if took < tt.timeout/2 {
					t.Errorf("cut off after %v, before its timeout %v", took, tt.timeout)
				}
			} else {
				c.SetReadDeadline(time.Now().Add(tt.wait + slack))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				resp.Body.Close()
				reply = "HTTP/1.1 " + resp.Status + " "
			}
			if !strings.HasPrefix(reply, tt.reply) && !(tt.orNone && reply == "") {
				t.Errorf("answer %q, want one starting %q", reply, tt.reply)
			}
			if calls := h.called(); !slices.Equal(calls, tt.calls) {
				t.Errorf("handler calls %v, want %v", calls, tt.calls)
			}
			for i, err := range h.ctxErrs {
				if err != nil {
					t.Errorf("call %s: its context ended: %v", h.calls[i], err)
				}
			}
		})
	}
}

// TestSlowClientsDoNotStopOthers holds many connections open with requests
// half sent, under the server's own timeouts, and checks that other
// clients are answered meanwhile.
func TestSlowClientsDoNotStopOthers(t *testing.T) {
	h := &fakeHandler{}
	path := startServer(t, NewServer(h, slog.New(slog.DiscardHandler)), -1)
	var slow []net.Conn
	for i := range 32 {
		c := dial(t, path)
		if i%2 == 0 {
			io.WriteString(c, "POST /v1/ban HTTP/1.1\r\nHost: banwatchd\r\n")
		} else {
			io.WriteString(c, header("POST", "/v1/ban", 100)+`{"ip":"192.0.2.1"`)
		}
		slow = append(slow, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := NewClient(path)
	if _, err := client.Status(ctx); err != nil {
		t.Fatalf("status beside slow clients: %v", err)
	}
	if _, err := client.Ban(ctx, BanRequest{IP: "192.0.2.7"}); err != nil {
		t.Fatalf("ban beside slow clients: %v", err)
	}
	if calls := h.called(); !slices.Equal(calls, []string{"Status", "Ban"}) {
		t.Errorf("handler calls %v, want the fast client's Status and Ban", calls)
	}
	// The slow ones are still connected: it was not their end that let the
	// others through.
	for _, c := range slow {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a slow client was cut off early: %v", err)
		}
	}
}
