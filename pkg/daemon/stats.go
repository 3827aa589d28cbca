package daemon

import (
	"context"
	"time"

	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/store"
)

// Top implements control.Handler. It reads the store's read pool, never
// the pipeline, so that it answers while the daemon is busy (without the
// batch being committed). In cluster mode the store holds the other
// nodes' bans as applied here, so the ranks are the cluster's.
func (d *daemon) Top(ctx context.Context, since time.Time, n int) (*control.TopReply, error) {
	t, err := d.store.Top(ctx, since, n)
	if err != nil {
		return nil, err
	}
	return &control.TopReply{
		Since: since.UTC(), Bans: t.Bans,
		Addresses: counts(t.Addrs), Nets24: counts(t.Nets24), Nets64: counts(t.Nets64),
		Jails: counts(t.Jails), Fingerprints: counts(t.Fingerprints),
	}, nil
}

func counts(kc []store.KeyCount) []control.Count {
	out := make([]control.Count, len(kc))
	for i, c := range kc {
		out[i] = control.Count{Key: c.Key, Bans: c.N}
	}
	return out
}

// Hours implements control.Handler, from the store's per-hour counts; like
// Top it does not wait for the pipeline. The jail is not checked against
// the configuration: a jail no longer configured keeps its hours.
func (d *daemon) Hours(ctx context.Context, since time.Time, jail string) (*control.HoursReply, error) {
	bans, err := d.store.BanHours(ctx, since)
	if err != nil {
		return nil, err
	}
	events, err := d.store.EventHours(ctx, since)
	if err != nil {
		return nil, err
	}
	out := &control.HoursReply{Bans: []control.BanHour{}, Events: make([]control.EventHour, 0, len(events))}
	if !since.IsZero() {
		out.Since = since.UTC().Truncate(time.Hour)
	}
	for _, h := range bans {
		if jail == "" || h.Key == jail {
			out.Bans = append(out.Bans, control.BanHour{Hour: h.Hour, Jail: h.Key, Bans: h.N})
		}
	}
	for _, h := range events {
		out.Events = append(out.Events, control.EventHour{Hour: h.Hour, Kind: h.Key, Events: h.N})
	}
	return out, nil
}
