// Package web serves banwatchd's read-only history page: bans and events
// per hour over the last 7 days as server-rendered SVG charts, the top
// addresses, prefixes, jails and fingerprints, the active bans, the
// learned fingerprints in force, and a searchable, paginated ban history
// with each ban's evidence.
//
// Everything the page uses (templates, style sheet) is embedded in the
// binary; it loads nothing from elsewhere and runs no script. It changes
// nothing: actions are banctl's.
//
// # Speed
//
// The page must stay fast over a history of millions of bans. Every
// request reads only index ranges bounded by what it shows: the charts
// from the store's counts per hour (a few hundred rows a week), a page of
// history from its cursor, one ban. What takes the whole history (the top
// lists, seconds over a million bans) or every active ban (their counts)
// is computed in the background when the server starts and again when a
// request finds it older than its age (Options.Refresh for the top lists,
// 10 s for the counts); meanwhile requests get the last one with the time
// it is from. The very first requests, before the first top lists are
// there, do not wait for them: the overview shows the rest, says that the
// lists are being computed, and asks the browser to load it again a few
// seconds later. Only the very first count of the active bans, quick, is
// waited for.
//
// # Security
//
// Log lines and ban reasons are written by attackers: every text goes
// through html/template. Responses carry a Content-Security-Policy that
// allows nothing but the page's own style sheet and images, forbid
// framing and sniffing, and send no referrer. With Options.User and
// Options.PasswordHash set, every request needs HTTP basic authentication
// (see auth.go for how the bcrypt checks are kept cheap for the admin and
// dear for a guesser). The page speaks plain HTTP: beyond loopback it
// belongs behind a TLS proxy.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/store"
)

// Source is what the page reads. A *store.Store has every method but
// Fingerprints, which the daemon's running jails answer.
//
// Its methods are called concurrently, from the requests and from the
// background computations; an error fails the request it was for (a
// background computation keeps its last good result). Times are UTC.
type Source interface {
	// BanHours counts the bans begun per hour (UTC hour starts) and jail
	// since since's hour, ordered by hour then jail; hours without bans
	// are absent.
	BanHours(ctx context.Context, since time.Time) ([]store.HourCount, error)
	// EventHours counts the events (strikes) per hour and kind, as
	// BanHours does.
	EventHours(ctx context.Context, since time.Time) ([]store.HourCount, error)
	// Top ranks the bans begun since since: the n largest counts of each
	// list. It may take seconds over a large history.
	Top(ctx context.Context, since time.Time, n int) (*store.Top, error)
	// HistoryPage returns one page of history, newest first, without
	// evidence.
	HistoryPage(ctx context.Context, q store.PageQuery) ([]ban.Ban, error)
	// BanByID returns one ban with its evidence; false when there is none.
	BanByID(ctx context.Context, id int64) (ban.Ban, bool, error)
	// CountActive counts the active bans per jail at now.
	CountActive(ctx context.Context, now time.Time) (map[string]int, error)
	// Fingerprints returns the learned fingerprints in force, in every
	// jail.
	Fingerprints(ctx context.Context) ([]control.Fingerprint, error)
}

// Defaults of Options.
const (
	DefaultRefresh  = time.Minute
	DefaultPageSize = 50
)

// activeRefresh is the age at which a request has the active bans counted
// again.
const activeRefresh = 10 * time.Second

// Window is how far back the charts and top lists look.
const Window = 7 * 24 * time.Hour

// TopN is the length of each top list.
const TopN = 10

// Options configures New.
type Options struct {
	Source Source
	// Logger, when set, is told of failed requests and background
	// computations; nil discards.
	Logger *slog.Logger
	// Host is the name the page gives this server (the node's name).
	Host string
	// User and PasswordHash (a bcrypt hash), when set, make every request
	// need HTTP basic authentication with that user name and password.
	// Both or neither.
	User         string
	PasswordHash string
	// Location is the time zone the page shows times in; nil: the
	// server's (time.Local).
	Location *time.Location
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Refresh is the age at which a request has the top lists computed
	// again; 0: DefaultRefresh.
	Refresh time.Duration
	// PageSize is the number of bans on a page of history; 0:
	// DefaultPageSize.
	PageSize int
}

// Server serves the page. Make one with New; its methods are safe for
// concurrent use.
type Server struct {
	src      Source
	log      *slog.Logger
	host     string
	loc      *time.Location
	zone     string // the time zone's name for the page, when known
	now      func() time.Time
	pageSize int
	auth     *basicAuth // nil: no authentication
	top      *refresher[*store.Top]
	active   *refresher[map[string]int]
	mux      *http.ServeMux
	tmpl     map[string]*template.Template
}

// New checks opts and makes a Server. It does not start the background
// computations: Serve does.
func New(opts Options) (*Server, error) {
	if opts.Source == nil {
		return nil, errors.New("web: no source")
	}
	s := &Server{src: opts.Source, log: opts.Logger, host: opts.Host, loc: opts.Location, now: opts.Now, pageSize: opts.PageSize}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.loc == nil {
		s.loc = time.Local
	}
	s.zone = zoneName(s.loc)
	if s.now == nil {
		s.now = time.Now
	}
	if s.pageSize <= 0 {
		s.pageSize = DefaultPageSize
	}
	if (opts.User == "") != (opts.PasswordHash == "") {
		return nil, errors.New("web: user and password hash go together")
	}
	if opts.User != "" {
		a, err := newBasicAuth(opts.User, opts.PasswordHash)
		if err != nil {
			return nil, err
		}
		s.auth = a
	}
	refresh := opts.Refresh
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	s.top = newRefresher("top lists", func(ctx context.Context, t time.Time) (*store.Top, error) {
		return s.src.Top(ctx, t.Add(-Window), TopN)
	}, s.now, refresh, s.log)
	s.active = newRefresher("active bans' counts", s.src.CountActive, s.now, activeRefresh, s.log)
	var err error
	if s.tmpl, err = parseTemplates(s.loc); err != nil {
		return nil, err
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /{$}", s.overview)
	s.mux.HandleFunc("GET /history", s.history)
	s.mux.HandleFunc("GET /ban/{id}", s.detail)
	s.mux.HandleFunc("GET /style.css", s.style)
	return s, nil
}

// Server timeouts: a client gets this long to send its request and to
// read the answer, and an idle connection is closed after IdleTimeout.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// requestTimeout bounds a request's reading of the source.
	requestTimeout = 20 * time.Second
)

// Serve serves the page on ln, and computes the top lists and the active
// bans' counts in the background, until ctx is done; it then stops taking requests, waits up
// to 5 s for those in flight, closes ln and returns nil. Any other error
// of the listener is returned.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	cctx, stopRefreshers := context.WithCancel(ctx)
	refreshed := make(chan struct{})
	go func() {
		defer close(refreshed)
		s.refreshers(cctx)
	}()
	defer func() {
		stopRefreshers()
		<-refreshed
	}()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("web: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("web: %w", err)
	}
	return nil
}

// refreshers computes the cached values in the background until ctx is
// done.
func (s *Server) refreshers(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.top.run(ctx) })
	wg.Go(func() { s.active.run(ctx) })
	wg.Wait()
}

// The security headers of every answer. The policy allows the page's own
// style sheet and images (the charts are inline SVG; data: is for none
// yet, and harmless), no script, no frame, no form sent elsewhere.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// ServeHTTP implements http.Handler: the security headers, then the
// authentication, then the page's routes (GET only; other methods get
// 405).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if s.auth != nil && !s.auth.check(r) {
		s.log.Debug("web: authentication failed", "remote", r.RemoteAddr, "path", r.URL.Path)
		h.Set("WWW-Authenticate", `Basic realm="banwatch", charset="UTF-8"`)
		http.Error(w, "401 authentication required", http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

//go:embed templates/*.html static/style.css
var files embed.FS

// style serves the embedded style sheet.
func (s *Server) style(w http.ResponseWriter, r *http.Request) {
	data, err := files.ReadFile("static/style.css")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_, _ = w.Write(data)
}
