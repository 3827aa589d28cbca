// Command genlog writes a generated Postfix log (see package loggen) to
// standard output, for timing `banctl test` and other tools on the same input:
//
//	go run ./bench/cmd/genlog -lines 1000000 > /tmp/mail.log
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/banwatch/banwatch/bench/loggen"
)

func main() {
	var o loggen.Options
	flag.IntVar(&o.Lines, "lines", 1000000, "lines to write")
	flag.Float64Var(&o.AttackShare, "attack", 0.2, "share of lines from attack sessions")
	flag.IntVar(&o.Attackers, "attackers", 50000, "distinct attacking addresses")
	flag.Int64Var(&o.Seed, "seed", 1, "random seed")
	flag.BoolVar(&o.RFC3339, "rfc3339", false, "RFC 3339 timestamps")
	flag.Parse()
	if err := loggen.Postfix(os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "genlog:", err)
		os.Exit(1)
	}
}
