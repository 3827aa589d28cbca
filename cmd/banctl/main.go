// Command banctl controls banwatch: it shows and changes what banwatchd
// does through its control socket, and runs filters offline.
//
//	banctl status | list | ban | unban | history | show | top | reload | fingerprints | forget | import | test
//
// Each command takes --help. Exit status: 0 done, 1 the daemon refused or
// failed, 2 bad usage or the daemon cannot be reached.
package main

import (
	"context"
	"fmt"
	"github.com/banwatch/banwatch/internal/version"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: banctl COMMAND [ARGS]

commands (the daemon's, through its socket; each takes --socket PATH and --json):
  status                         version, uptime, firewall, per jail logs and counts
  list [--jail J] [--ip ADDR|CIDR]
                                 active bans
  ban ADDR|CIDR [--jail J] [--for 7d] [--reason TEXT] [--force]
                                 ban by hand
  unban ADDR|CIDR [--jail J|--all-jails] | --all --yes
                                 lift bans
  history [ADDR|CIDR] [--jail J] [--since 30d]
                                 past and present bans and how they ended
  history --chart [--jail J] [--since 7d]
                                 bans per hour, drawn in the terminal
  show ADDR|CIDR                 bans of an address with their evidence lines
  top [--since 24h] [-n 10]      the addresses, networks, jails and fingerprints
                                 with the most bans
  reload                         load the configuration again (as SIGHUP)
  fingerprints [--jail J]        learned HELO and user names that ban on sight
  forget VALUE [--jail J]        forget a learned fingerprint for good
  import fail2ban [--db PATH] [--jail F2B=BW]... [--dry-run]
                                 import fail2ban's active bans with their remaining time

offline:
  test [--filter NAME|PATH | --jail NAME] [--config DIR] [--json] [--top N] FILE...
        run filters over log files ("-" reads standard input) and report
        what they find; with --jail, the bans the jail would make

Run "banctl COMMAND --help" for a command's options, "banctl --version" for the version.
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
	case "version", "--version":
		fmt.Fprintln(stdout, version.Line("banctl"))
		return 0
	case "status":
		return cmdStatus(ctx, args[1:], stdout, stderr)
	case "list":
		return cmdList(ctx, args[1:], stdout, stderr)
	case "ban":
		return cmdBan(ctx, args[1:], stdout, stderr)
	case "unban":
		return cmdUnban(ctx, args[1:], stdout, stderr)
	case "history":
		return cmdHistory(ctx, args[1:], stdout, stderr)
	case "show":
		return cmdShow(ctx, args[1:], stdout, stderr)
	case "top":
		return cmdTop(ctx, args[1:], stdout, stderr)
	case "reload":
		return cmdReload(ctx, args[1:], stdout, stderr)
	case "fingerprints":
		return cmdFingerprints(ctx, args[1:], stdout, stderr)
	case "forget":
		return cmdForget(ctx, args[1:], stdout, stderr)
	case "import":
		return cmdImport(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "banctl: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
