package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/banwatch/banwatch/pkg/ban"
)

// Handler is what the daemon offers the control socket. Methods are called
// concurrently, one goroutine per request. An error that is an *Error is
// answered with its status; any other error is a 500.
type Handler interface {
	Status(ctx context.Context) (*Status, error)
	// Active calls fn with each active ban of jail ("" for all) inside or
	// covering p (the zero prefix for all), until fn returns an error.
	Active(ctx context.Context, jail string, p netip.Prefix, fn func(*ban.Ban) error) error
	// History calls fn with bans active and ended, newest first.
	History(ctx context.Context, q HistoryQuery, fn func(*ban.Ban) error) error
	Ban(ctx context.Context, req BanRequest, peer Peer) ([]ban.Ban, error)
	// BulkBan makes the bans of req that pass its checks and returns them
	// with the entries refused; an error means none was made.
	BulkBan(ctx context.Context, req BulkBanRequest, peer Peer) ([]ban.Ban, []Refusal, error)
	Unban(ctx context.Context, req UnbanRequest, peer Peer) ([]ban.Ban, error)
	// Reload loads the configuration again; a refused one is an error
	// whose text names the problems.
	Reload(ctx context.Context) error
	// Fingerprints lists the learned fingerprints of jail ("" for all).
	Fingerprints(ctx context.Context, jail string) ([]Fingerprint, error)
	// Forget drops a learned fingerprint and keeps it from being learned
	// again; it returns those forgotten.
	Forget(ctx context.Context, value, jail string, peer Peer) ([]Fingerprint, error)
	// Top ranks the bans begun at or after since (the zero time for all
	// the history): see TopReply; n, from 1 to MaxTop, is how many
	// entries each list has at most. It reads what is stored and does
	// not wait for the daemon's pipeline: the bans of the batch being
	// stored may be missing.
	Top(ctx context.Context, since time.Time, n int) (*TopReply, error)
	// Hours counts the bans (of jail only, when not "") and the events per
	// hour, from the hour that holds since (the zero time for all the
	// history): see HoursReply. Like Top it reads what is stored.
	Hours(ctx context.Context, since time.Time, jail string) (*HoursReply, error)
}

// HistoryQuery selects history: bans of jail ("" for all), inside or
// covering Prefix (zero for all), started at or after Since, at most Limit
// (0 for no limit).
type HistoryQuery struct {
	Prefix netip.Prefix
	Jail   string
	Since  time.Time
	Limit  int
}

// Peer is who is on the other end of the socket, as the kernel tells.
type Peer struct {
	UID, GID, PID int
}

// String names the peer as the history records who unbanned: "uid 0 (root)".
func (p Peer) String() string {
	s := "uid " + strconv.Itoa(p.UID)
	if u, err := user.LookupId(strconv.Itoa(p.UID)); err == nil {
		s += " (" + u.Username + ")"
	}
	return s
}

type peerKey struct{}

// PeerFrom returns the peer of a request's context.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// Server serves the control protocol.
type Server struct {
	h   Handler
	log *slog.Logger
	srv *http.Server
	tm  timeouts
}

// maxBody is the largest request body taken.
const maxBody = 64 << 10

// timeouts bound how long a client may take to send a request, so that a
// client that stalls (or trickles its request byte by byte) holds a
// connection for a bounded time. A handler, once it has the request, is
// not limited: a bulk ban or a long history takes what it takes.
type timeouts struct {
	header time.Duration // the request line and headers
	body   time.Duration // the whole request, headers and body (ReadTimeout)
	bulk   time.Duration // a bulk ban's body, from the end of its headers
	idle   time.Duration // a kept-alive connection between two requests
}

// defaultTimeouts are the server's. A request body other than a bulk
// ban's is at most maxBody (64 KiB), sent whole by banctl: 10 s is ample.
// A bulk ban of MaxBulk entries with 140-character reasons (24 MB) took
// 1 s from banctl's call to the answer on a busy two-core test machine,
// and one of MaxBulkBody (64 MiB) about 3.5 s: a minute leaves some
// twenty times that. banctl opens a connection per command, so a short
// idle time costs nothing.
var defaultTimeouts = timeouts{
	header: 10 * time.Second,
	body:   10 * time.Second,
	bulk:   time.Minute,
	idle:   30 * time.Second,
}

// NewServer returns a server answering with h.
func NewServer(h Handler, logger *slog.Logger) *Server {
	return newServer(h, logger, defaultTimeouts)
}

// newServer returns a server with the given timeouts (tests shorten them).
func newServer(h Handler, logger *slog.Logger, tm timeouts) *Server {
	s := &Server{h: h, log: logger, tm: tm}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/bans", s.list)
	mux.HandleFunc("GET /v1/history", s.history)
	mux.HandleFunc("POST /v1/ban", s.ban)
	mux.HandleFunc("POST /v1/bulkban", s.bulkBan)
	mux.HandleFunc("POST /v1/unban", s.unban)
	mux.HandleFunc("POST /v1/reload", s.reload)
	mux.HandleFunc("GET /v1/fingerprints", s.fingerprints)
	mux.HandleFunc("POST /v1/forget", s.forget)
	mux.HandleFunc("GET /v1/top", s.top)
	mux.HandleFunc("GET /v1/hours", s.hours)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: tm.header,
		ReadTimeout:       tm.body,
		IdleTimeout:       tm.idle,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if p, ok := peerOf(c); ok {
				return context.WithValue(ctx, peerKey{}, p)
			}
			return ctx
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	return s
}

// Listen makes the socket at path: its directory (0755) if missing, a stale
// socket of a dead daemon removed, mode 0600, or 0660 with group gid when
// gid >= 0. A socket a live daemon answers on is left alone: an error.
func Listen(path string, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s: another banwatchd answers there", path)
		}
		os.Remove(path)
	}
	// The socket is made with no permissions for anyone but root, so that
	// there is no moment in which others could connect.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	if gid >= 0 {
		if err := os.Chown(path, 0, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("control: %w", err)
		}
		if err := os.Chmod(path, 0o660); err != nil {
			l.Close()
			return nil, fmt.Errorf("control: %w", err)
		}
	}
	return l, nil
}

// Serve answers on l until ctx is done, then shuts down, letting requests
// in flight finish for a few seconds.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("control: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control: %w", err)
	}
	return nil
}

func peerOf(c net.Conn) (Peer, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, false
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return Peer{}, false
	}
	return Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}, true
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	var e *Error
	if errors.As(err, &e) {
		status = e.Status
	} else {
		s.log.Error("control request failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.h.Status(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// prefixParam reads the ip query parameter (absent: the zero prefix).
func prefixParam(r *http.Request) (netip.Prefix, error) {
	v := r.URL.Query().Get("ip")
	if v == "" {
		return netip.Prefix{}, nil
	}
	p, err := ban.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, Errorf(http.StatusBadRequest, "ip: %v", err)
	}
	return p, nil
}

// sinceParam reads the since query parameter (absent: the zero time).
func sinceParam(r *http.Request) (time.Time, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, Errorf(http.StatusBadRequest, "since: want an RFC 3339 time, got %q", v)
	}
	return t, nil
}

// stream writes bans as JSON Lines; an error before the first line is an
// error answer, after it the stream just ends (the client sees no final
// newline-terminated summary and reports it).
func (s *Server) stream(w http.ResponseWriter, r *http.Request, run func(fn func(*ban.Ban) error) error, evidence bool) {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	started := false
	err := run(func(b *ban.Ban) error {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		return enc.Encode(FromBan(b, evidence))
	})
	if err != nil && !started {
		s.fail(w, r, err)
		return
	}
	if !started {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
	}
	if err == nil {
		// The last line says the stream is whole.
		enc.Encode(map[string]bool{"end": true})
	}
	bw.Flush()
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	p, err := prefixParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	jail := r.URL.Query().Get("jail")
	s.stream(w, r, func(fn func(*ban.Ban) error) error { return s.h.Active(r.Context(), jail, p, fn) }, false)
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	p, err := prefixParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := HistoryQuery{Prefix: p, Jail: r.URL.Query().Get("jail")}
	if q.Since, err = sinceParam(r); err != nil {
		s.fail(w, r, err)
		return
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, r, Errorf(http.StatusBadRequest, "limit: want a number, got %q", v))
			return
		}
		q.Limit = n
	}
	evidence := r.URL.Query().Get("evidence") == "1"
	s.stream(w, r, func(fn func(*ban.Ban) error) error { return s.h.History(r.Context(), q, fn) }, evidence)
}

// decode reads a JSON request body strictly.
func decode(r *http.Request, v any) error { return decodeMax(r, v, maxBody) }

// decodeMax reads a JSON request body of at most limit bytes strictly: one
// JSON object (not null, nor anything else) without unknown fields.
func decodeMax(r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, limit))
	err := dec.Decode(&object{v})
	if err == nil {
		// One object: a second one would be ignored, not acted on.
		if _, err = dec.Token(); err == io.EOF {
			return nil
		} else if err == nil {
			return Errorf(http.StatusBadRequest, "malformed request: more than one JSON value")
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return Errorf(http.StatusRequestEntityTooLarge, "request larger than %d bytes: send it in parts", limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Errorf(http.StatusRequestTimeout, "request not received in time")
	}
	return Errorf(http.StatusBadRequest, "malformed request: %v", err)
}

// object decodes a JSON object into v strictly. (A Decoder's
// DisallowUnknownFields does not reach into an Unmarshaler, so object
// applies it itself.)
type object struct{ v any }

func (o *object) UnmarshalJSON(data []byte) error {
	if len(data) == 0 || data[0] != '{' {
		return errors.New("the request is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(o.v)
}

// decodeEmpty reads a request body that may be absent or an empty JSON
// object, as for reload.
func decodeEmpty(r *http.Request) error {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	return decode(r, &struct{}{})
}

func (s *Server) bulkBan(w http.ResponseWriter, r *http.Request) {
	// A bulk ban's body may be large: it has its own time, from now. (A
	// writer without a connection, as in tests, cannot set it and keeps
	// the server's ReadTimeout.)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.tm.bulk))
	var req BulkBanRequest
	if err := decodeMax(r, &req, MaxBulkBody); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.Bans) > MaxBulk {
		s.fail(w, r, Errorf(http.StatusRequestEntityTooLarge, "%d bans in one request, at most %d: send them in parts", len(req.Bans), MaxBulk))
		return
	}
	peer, _ := PeerFrom(r.Context())
	bans, refused, err := s.h.BulkBan(r.Context(), req, peer)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := BulkBanReply{Bans: make([]Ban, 0, len(bans)), Refused: append([]Refusal{}, refused...)}
	for i := range bans {
		out.Bans = append(out.Bans, FromBan(&bans[i], false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) ban(w http.ResponseWriter, r *http.Request) {
	var req BanRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	peer, _ := PeerFrom(r.Context())
	bans, err := s.h.Ban(r.Context(), req, peer)
	s.answerBans(w, r, bans, err)
}

func (s *Server) unban(w http.ResponseWriter, r *http.Request) {
	var req UnbanRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	peer, _ := PeerFrom(r.Context())
	bans, err := s.h.Unban(r.Context(), req, peer)
	s.answerBans(w, r, bans, err)
}

func (s *Server) answerBans(w http.ResponseWriter, r *http.Request, bans []ban.Ban, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := BansReply{Bans: make([]Ban, 0, len(bans))}
	for i := range bans {
		out.Bans = append(out.Bans, FromBan(&bans[i], false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if err := decodeEmpty(r); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.h.Reload(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{})
}

// FingerprintsReply answers fingerprints and forget.
type FingerprintsReply struct {
	Fingerprints []Fingerprint `json:"fingerprints"`
}

func (s *Server) fingerprints(w http.ResponseWriter, r *http.Request) {
	fps, err := s.h.Fingerprints(r.Context(), r.URL.Query().Get("jail"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, FingerprintsReply{Fingerprints: append([]Fingerprint{}, fps...)})
}

func (s *Server) forget(w http.ResponseWriter, r *http.Request) {
	var req ForgetRequest
	if err := decode(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	peer, _ := PeerFrom(r.Context())
	fps, err := s.h.Forget(r.Context(), req.Value, req.Jail, peer)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, FingerprintsReply{Fingerprints: fps})
}

func (s *Server) top(w http.ResponseWriter, r *http.Request) {
	since, err := sinceParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n := DefaultTop
	if v := r.URL.Query().Get("n"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > MaxTop {
			s.fail(w, r, Errorf(http.StatusBadRequest, "n: want a number from 1 to %d, got %q", MaxTop, v))
			return
		}
	}
	top, err := s.h.Top(r.Context(), since, n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := *top
	for _, l := range []*[]Count{&out.Addresses, &out.Nets24, &out.Nets64, &out.Jails, &out.Fingerprints} {
		if *l == nil {
			*l = []Count{} // a list is [] in JSON, never null
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) hours(w http.ResponseWriter, r *http.Request) {
	since, err := sinceParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h, err := s.h.Hours(r.Context(), since, r.URL.Query().Get("jail"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := *h
	if out.Bans == nil {
		out.Bans = []BanHour{}
	}
	if out.Events == nil {
		out.Events = []EventHour{}
	}
	writeJSON(w, http.StatusOK, out)
}
