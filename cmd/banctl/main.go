// Command banctl controls banwatch. In this build it has one command, test,
// which runs filters over log files offline, without the daemon:
//
//	banctl test [--filter NAME|PATH] [--config DIR] [--json] [--top N] FILE...
//
// The daemon's commands (list, ban, unban, history, status) come with the
// daemon.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: banctl COMMAND [ARGS]

commands:
  test [--filter NAME|PATH] [--config DIR] [--json] [--top N] FILE...
        run filters over log files offline ("-" reads standard input) and
        report what they find

Run "banctl COMMAND --help" for a command's options.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one banctl command and returns the exit status: 0 success,
// 1 failure, 2 bad usage or input.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "test":
		return cmdTest(ctx, args[1:], stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "list", "ban", "unban", "history", "status", "show":
		fmt.Fprintf(stderr, "banctl: %s needs the daemon, which this build does not have yet\n", args[0])
		return 1
	default:
		fmt.Fprintf(stderr, "banctl: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
