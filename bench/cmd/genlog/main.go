// Command genlog writes a generated mail log (see package loggen) to
// standard output, for timing `banctl test` and other tools on the same
// input:
//
//	go run ./bench/cmd/genlog -lines 1000000 > /tmp/mail.log
//	go run ./bench/cmd/genlog -mta exim -attackers 2000000 -v6 0.3 > /tmp/mainlog
//	go run ./bench/cmd/genlog -mta icewarp > /tmp/s20261128.log
//
// The same flags give the same log, byte for byte.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/banwatch/banwatch/bench/loggen"
)

func main() {
	var o loggen.Options
	mta := flag.String("mta", "postfix", "log format: "+strings.Join(loggen.MTAs, ", "))
	flag.IntVar(&o.Lines, "lines", 1000000, "lines to write")
	flag.Float64Var(&o.AttackShare, "attack", 0.2, "share of lines from attack sessions")
	flag.IntVar(&o.Attackers, "attackers", 50000, "distinct attacking addresses")
	flag.Float64Var(&o.V6Share, "v6", 0.1, "share of the attacking addresses that are IPv6 (0 for none)")
	flag.BoolVar(&o.Sweep, "sweep", false, "use every attacking address once, in a seeded order, before any comes back")
	flag.Int64Var(&o.Seed, "seed", 1, "random seed")
	flag.BoolVar(&o.RFC3339, "rfc3339", false, "RFC 3339 timestamps (postfix only)")
	flag.BoolVar(&o.PID, "pid", false, "Exim: write the process id after the timestamp (log_selector +pid)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "genlog: no arguments expected; the log goes to standard output")
		os.Exit(2)
	}
	if o.RFC3339 && *mta != "postfix" {
		fmt.Fprintf(os.Stderr, "genlog: -rfc3339 is for postfix; %s writes its own timestamps\n", *mta)
		os.Exit(2)
	}
	if o.V6Share == 0 {
		o.V6Share = -1 // loggen reads 0 as its default
	}
	if err := loggen.Write(os.Stdout, *mta, o); err != nil {
		fmt.Fprintln(os.Stderr, "genlog:", err)
		os.Exit(1)
	}
}
