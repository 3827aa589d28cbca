//go:build !linux

package nft

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/banwatch/banwatch/pkg/firewall"
)

var (
	_ firewall.Backend       = (*Backend)(nil)
	_ firewall.Watcher       = (*Backend)(nil)
	_ firewall.FloodReporter = (*Backend)(nil)
)

// errUnsupported is returned on systems without nftables.
var errUnsupported = fmt.Errorf("nft: nftables is only available on Linux: %w", firewall.ErrUnavailable)

// Backend is the nftables firewall backend; on this system it cannot be
// created.
type Backend struct{}

// New always fails: nftables is Linux only.
func New(_ *slog.Logger, _ Options) (*Backend, error) { return nil, errUnsupported }

// Setup fails: nftables is Linux only.
func (*Backend) Setup(context.Context, []firewall.Jail) error { return errUnsupported }

// Add fails: nftables is Linux only.
func (*Backend) Add(context.Context, []firewall.Entry) error { return errUnsupported }

// Remove fails: nftables is Linux only.
func (*Backend) Remove(context.Context, []firewall.Entry) error { return errUnsupported }

// Reconcile fails: nftables is Linux only.
func (*Backend) Reconcile(context.Context, []firewall.Entry) error { return errUnsupported }

// Check fails: nftables is Linux only.
func (*Backend) Check(context.Context) (bool, error) { return false, errUnsupported }

// Close does nothing.
func (*Backend) Close() error { return nil }

// Floods fails: nftables is Linux only.
func (*Backend) Floods(context.Context) ([]firewall.Entry, error) { return nil, errUnsupported }

// Watch fails: nftables is Linux only.
func (*Backend) Watch(context.Context, func()) error { return errUnsupported }
