package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/nxadm/tail"

	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/firewall/nft"
	"github.com/banwatch/banwatch/pkg/source"
)

// floorBatch is the most addresses the floor puts into one Add.
const floorBatch = 4096

// banRate is the floor the install benchmark compares the daemon with:
// `daemon -banrate -file F -n N`, run in the benchmark's namespace, sets
// up the same nftables table and set as banwatchd does for a jail named
// bench on port 25 (pkg/firewall/nft), follows F from its start with
// nxadm/tail set as banwatchd's source sets it, takes the address between
// the last '[' and the next ']' of each line, and adds the addresses to
// the set through the same backend in a goroutine of its own, as many as
// have come while it added the last ones (up to floorBatch) per Add,
// until N lines are read. It prints "ready" once it follows F. Nothing
// else is done: no filter, jail, store, log line or change watch, and one
// hand-over (the batch) besides nxadm/tail's channel, so its rate is what
// the log library and the kernel leave for a ban made from a log line on
// this machine.
func banRate(args []string) int {
	fs := flag.NewFlagSet("banrate", flag.ContinueOnError)
	file := fs.String("file", "", "the file to follow")
	n := fs.Int("n", 0, "lines to read")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after")
	if err := fs.Parse(args); err != nil || *file == "" || *n <= 0 {
		fmt.Fprintln(os.Stderr, "usage: daemon -banrate -file FILE -n LINES")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	fw, err := nft.New(slog.New(slog.DiscardHandler), nft.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "banrate:", err)
		return 1
	}
	defer fw.Close()
	if err := fw.Setup(ctx, []firewall.Jail{{Name: "bench", Ports: []uint16{25}}}); err != nil {
		fmt.Fprintln(os.Stderr, "banrate:", err)
		return 1
	}
	t, err := tail.TailFile(*file, tail.Config{Follow: true, MustExist: true, CompleteLines: true, Pipe: true,
		MaxLineSize: source.DefaultMaxLine + 2, Location: &tail.SeekInfo{Whence: io.SeekStart}, Logger: tail.DiscardingLogger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "banrate:", err)
		return 1
	}
	defer t.Stop()
	fmt.Println("ready")
	// The adder puts each batch into the kernel while the reader makes
	// the next: a batch goes over as soon as the adder is free, or when
	// it holds floorBatch addresses.
	batches := make(chan []firewall.Entry)
	added := make(chan error, 1)
	go func() {
		for b := range batches {
			if err := fw.Add(ctx, b); err != nil {
				added <- err
				for range batches {
				}
				return
			}
		}
		added <- nil
	}()
	var batch []firewall.Entry
	expires := time.Now().Add(24 * time.Hour)
	for read := 1; read <= *n; read++ {
		var l *tail.Line
		var ok bool
		select {
		case l, ok = <-t.Lines:
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "banrate: timeout: %d of %d lines\n", read-1, *n)
			return 1
		}
		if err := lineErr(t, l, ok); err != nil {
			fmt.Fprintln(os.Stderr, "banrate:", err)
			return 1
		}
		i := strings.LastIndexByte(l.Text, '[')
		j := strings.IndexByte(l.Text[i+1:], ']')
		if i < 0 || j < 0 {
			fmt.Fprintf(os.Stderr, "banrate: line %d: no [address]: %q\n", read, l.Text)
			return 1
		}
		a, err := netip.ParseAddr(l.Text[i+1 : i+1+j])
		if err != nil {
			fmt.Fprintf(os.Stderr, "banrate: line %d: %v\n", read, err)
			return 1
		}
		batch = append(batch, firewall.Entry{Jail: "bench", Prefix: netip.PrefixFrom(a, a.BitLen()), Expires: expires})
		if len(batch) >= floorBatch || read == *n {
			batches <- batch
			batch = nil
			continue
		}
		select {
		case batches <- batch:
			batch = nil
		default:
		}
	}
	close(batches)
	if err := <-added; err != nil {
		fmt.Fprintln(os.Stderr, "banrate:", err)
		return 1
	}
	fmt.Println("done")
	return 0
}
