package daemon

import (
	"context"
	"fmt"
	"net"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/store"
	"github.com/banwatch/banwatch/pkg/web"
)

// webSource is what the history page reads: the store, and the running
// jails' learned fingerprints.
type webSource struct {
	*store.Store
	d *daemon
}

// The daemon feeds the history page.
var _ web.Source = webSource{}

// Fingerprints implements web.Source: the learned fingerprints in force in
// every running jail.
func (s webSource) Fingerprints(ctx context.Context) ([]control.Fingerprint, error) {
	return s.d.Fingerprints(ctx, "")
}

// startWeb serves the history page of [web], when it is set, until stop is
// called, which waits for it (5 s at most for the requests in flight). The
// page outlives generations, like the control socket: [web] changes only
// with a restart (keepWeb). An address it cannot listen on is an error, as
// for the metrics.
func (d *daemon) startWeb(ctx context.Context, cfg *config.Config) (stop func(), err error) {
	w := cfg.Daemon.Web
	if !w.Enabled() {
		return func() {}, nil
	}
	log := d.log.With("component", "web")
	srv, err := web.New(web.Options{Source: webSource{Store: d.store, d: d}, Logger: log,
		Host: nodeName(cfg.Daemon.Cluster), User: w.User, PasswordHash: w.PasswordHash})
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	ln, err := net.Listen("tcp", w.Listen)
	if err != nil {
		return nil, fmt.Errorf("daemon: web: %w", err)
	}
	if !w.Auth() && !w.Loopback() {
		log.Warn("the history page listens beyond loopback without a password: whoever reaches it sees every ban and its log lines; "+
			"set [web] user and password_hash, or listen on 127.0.0.1", "addr", ln.Addr().String())
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(wctx, ln); err != nil {
			log.Error("history page stopped", "err", err)
		}
	}()
	log.Info("history page ready", "url", "http://"+ln.Addr().String()+"/", "auth", w.Auth())
	return func() {
		cancel()
		<-done
	}, nil
}

// keepWeb keeps the running [web] in next, the configuration a reload
// takes: the page changes only with a restart.
func (d *daemon) keepWeb(cur, next *config.Config) {
	if !next.Daemon.Web.Equal(&cur.Daemon.Web) {
		d.log.Warn("[web] changes only with a restart; keeping the running history page")
		next.Daemon.Web = cur.Daemon.Web
	}
}
