// Package daemon wires banwatch together: it follows the configured logs,
// matches their lines with the jails' filters, counts strikes in the jails,
// and commits what it learns (read positions, strikes, bans) to the store
// before it installs the bans in the firewall.
//
// The pipeline, made and owned by a generation (one run of one
// configuration; a reload starts the next):
//
//	sources ──lines──► processor (filters, jails) ──batches──► committer ──► store, then firewall
//
// The processor is the only goroutine that touches the jails; the committer
// is the only one that touches the firewall. At start the store's active
// bans are installed with their remaining time (Reconcile), and the jails'
// windows are rebuilt from the stored strikes, so a restart neither forgets
// a ban nor counts a line twice.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/firewall/logonly"
	"github.com/banwatch/banwatch/pkg/firewall/nft"
	"github.com/banwatch/banwatch/pkg/store"
)

// DBFile is the database's name inside the state directory.
const DBFile = "banwatch.db"

// Options configures Run.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// Reload delivers reload requests (SIGHUP). Each one reloads the
	// configuration with LoadConfig; a configuration that does not load is
	// refused and the running one goes on.
	Reload     <-chan struct{}
	LoadConfig func() (*config.Config, error)
	// Poll makes the sources poll their files instead of using inotify.
	Poll bool
	// Backend, when set, is used instead of the one the configuration names
	// (tests).
	Backend firewall.Backend
	// Ready, when set, is called once the first generation runs: bans
	// restored, logs being followed.
	Ready func()
}

// Run runs the daemon until ctx is done, then commits what it has read and
// returns nil; the kernel keeps its bans (they expire on their own). It
// returns an error when it cannot start (no database, no firewall) or the
// firewall fails for good.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := opts.Config
	if err := os.MkdirAll(cfg.Daemon.StateDir, 0o700); err != nil {
		return fmt.Errorf("daemon: state directory: %w", err)
	}
	st, err := store.Open(ctx, filepath.Join(cfg.Daemon.StateDir, DBFile), log.With("component", "store"))
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	defer st.Close()

	backend := opts.Backend
	if backend == nil {
		backend, err = newBackend(cfg, log)
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
	}
	defer backend.Close()

	ready := opts.Ready
	for {
		g := &generation{cfg: cfg, log: log, store: st, backend: backend, poll: opts.Poll}
		reload, err := g.run(ctx, opts.Reload, ready)
		ready = nil
		if err != nil {
			return err
		}
		if !reload {
			return nil
		}
		if opts.LoadConfig == nil {
			log.Warn("reload asked for, but no way to load the configuration; going on")
			continue
		}
		next, err := opts.LoadConfig()
		if err != nil {
			log.Error("reload refused: the new configuration has errors; the running one goes on", "err", err)
			continue
		}
		if next.Daemon.StateDir != cfg.Daemon.StateDir || next.Daemon.Firewall != cfg.Daemon.Firewall ||
			next.Daemon.Table != cfg.Daemon.Table {
			log.Warn("state_dir, firewall and nft_table change only with a restart; keeping the running ones")
			next.Daemon.StateDir, next.Daemon.Firewall, next.Daemon.Table = cfg.Daemon.StateDir, cfg.Daemon.Firewall, cfg.Daemon.Table
		}
		cfg = next
		log.Info("configuration reloaded", "jails", len(cfg.Jails))
	}
}

func newBackend(cfg *config.Config, log *slog.Logger) (firewall.Backend, error) {
	switch cfg.Daemon.Firewall {
	case "log":
		return logonly.New(log), nil
	case "nftables":
		return nft.New(log, nft.Options{Table: cfg.Daemon.Table})
	}
	return nil, errors.New("unknown firewall " + cfg.Daemon.Firewall)
}

// ownAddrs returns the host's own addresses, which are never banned.
func ownAddrs(log *slog.Logger) []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		log.Warn("cannot list the host's addresses; only loopback and the ignore lists protect them", "err", err)
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out
}

// now is the clock; a variable so that nothing else calls time.Now.
var now = time.Now
