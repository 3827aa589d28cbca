package testutil

import (
	"context"
	"net/netip"
	"time"

	"github.com/banwatch/banwatch/pkg/ban"
	"github.com/banwatch/banwatch/pkg/store"
)

// FillBans commits n active bans in jail, of the distinct addresses
// 10.0.0.0, 10.0.0.1, ..., from start for a week, in batches of 10,000:
// a store as a long attack leaves it, for tests and benchmarks.
func FillBans(ctx context.Context, st *store.Store, n int, jail string, start time.Time) error {
	for done := 0; done < n; {
		var bans []*ban.Ban
		for i := 0; i < 10000 && done < n; i, done = i+1, done+1 {
			a := netip.AddrFrom4([4]byte{10, byte(done >> 16), byte(done >> 8), byte(done)})
			bans = append(bans, &ban.Ban{Prefix: ban.PrefixOf(a), Jail: jail, Origin: ban.OriginJail,
				Start: start, End: start.Add(7 * 24 * time.Hour), Strikes: 5, Reason: "auth_failure", Evidence: []string{}})
		}
		if err := st.Commit(ctx, store.Batch{Bans: bans}); err != nil {
			return err
		}
	}
	return nil
}
