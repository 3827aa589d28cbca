// Command banwatchd is the banwatch daemon: it follows mail logs, counts
// strikes per address in jails and bans through nftables.
//
// This build has the filter engine only (see `banctl test`); the daemon
// itself comes with the next milestone. Until then banwatchd checks that the
// shipped filters and those in the configuration directory compile, says
// what it would watch, and exits non-zero so that no one mistakes it for a
// running daemon.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/banwatch/banwatch/pkg/config"
)

func main() {
	dir := flag.String("config", config.DefaultDir, "configuration directory")
	flag.Parse()
	filters, err := config.LoadFilters(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "banwatchd:", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "banwatchd: %d filters compiled:", len(filters))
	for _, f := range filters {
		fmt.Fprintf(os.Stderr, " %s", f.Name)
	}
	fmt.Fprintln(os.Stderr)
	fmt.Fprintln(os.Stderr, "banwatchd: the daemon (tailing, jails, nftables, SQLite) is not built yet; "+
		"try the filters offline with: banctl test FILE...")
	os.Exit(1)
}
