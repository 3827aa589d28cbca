// Package logonly is a firewall backend that changes nothing: it logs what
// it is asked to do, for dry runs and for systems without a supported
// firewall. Check always reports that all is in place.
package logonly

import (
	"context"
	"log/slog"

	"github.com/banwatch/banwatch/pkg/firewall"
)

var _ firewall.Backend = (*Backend)(nil)

// sampleSize is how many entries an Info line shows.
const sampleSize = 3

// Backend logs bans instead of applying them. The zero value is not usable;
// create it with New.
type Backend struct {
	log *slog.Logger
}

// New returns a backend that logs to logger.
func New(logger *slog.Logger) *Backend {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Backend{log: logger.With("component", "logonly")}
}

// Setup logs the jails.
func (b *Backend) Setup(ctx context.Context, jails []firewall.Jail) error {
	names := make([]string, len(jails))
	for i, j := range jails {
		names[i] = j.Name
	}
	b.log.InfoContext(ctx, "firewall setup (log only)", "jails", names)
	return nil
}

// Add logs the bans it would add.
func (b *Backend) Add(ctx context.Context, entries []firewall.Entry) error {
	b.logEntries(ctx, "firewall add (log only)", entries)
	return nil
}

// Remove logs the bans it would remove.
func (b *Backend) Remove(ctx context.Context, entries []firewall.Entry) error {
	b.logEntries(ctx, "firewall remove (log only)", entries)
	return nil
}

// Reconcile logs the bans the kernel would hold.
func (b *Backend) Reconcile(ctx context.Context, entries []firewall.Entry) error {
	b.logEntries(ctx, "firewall reconcile (log only)", entries)
	return nil
}

// Check reports true: there is nothing that could have gone missing.
func (b *Backend) Check(context.Context) (bool, error) { return true, nil }

// Close does nothing.
func (b *Backend) Close() error { return nil }

// logEntries logs the count and a few entries at Info, and each entry at
// Debug.
func (b *Backend) logEntries(ctx context.Context, msg string, entries []firewall.Entry) {
	sample := make([]string, 0, sampleSize)
	for _, e := range entries[:min(len(entries), sampleSize)] {
		sample = append(sample, e.Jail+":"+e.Prefix.String())
	}
	b.log.InfoContext(ctx, msg, "entries", len(entries), "sample", sample)
	if !b.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	for _, e := range entries {
		b.log.DebugContext(ctx, msg, "jail", e.Jail, "prefix", e.Prefix, "expires", e.Expires)
	}
}
