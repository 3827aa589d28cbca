// Command fillstore writes active bans of distinct IPv4 addresses into a
// banwatch database, for benchmarks of start-up and of banctl:
//
//	fillstore -db /tmp/bw/state/banwatch.db -n 100000 -jail postfix
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/store"
)

func main() {
	db := flag.String("db", "", "the database `FILE` (made if missing)")
	n := flag.Int("n", 100000, "how many bans")
	jail := flag.String("jail", "postfix", "their jail")
	flag.Parse()
	if *db == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := fill(*db, *n, *jail); err != nil {
		fmt.Fprintln(os.Stderr, "fillstore:", err)
		os.Exit(1)
	}
}

func fill(db string, n int, jail string) error {
	st, err := store.Open(context.Background(), db, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	return testutil.FillBans(context.Background(), st, n, jail, time.Now())
}
