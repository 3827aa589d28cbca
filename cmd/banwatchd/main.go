// Command banwatchd is the banwatch daemon: it follows mail logs, counts
// strikes per address in jails, and bans through nftables, keeping every ban
// in SQLite so that a restart or reboot restores it.
//
// Usage:
//
//	banwatchd [--config DIR] [--check] [--state-dir DIR] [--socket PATH] [--log-format text|json] [--log-level info] [--poll]
//
// With --check it validates the configuration, prints the jails that would
// run with their logs and ports, and exits 0 (valid) or 2 (errors).
// SIGTERM and SIGINT stop it (the kernel keeps its bans, which expire on
// their own); SIGHUP reloads the configuration, refusing a broken one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/banwatch/banwatch/internal/version"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/daemon"
	"github.com/banwatch/banwatch/pkg/firewall"
	"github.com/banwatch/banwatch/pkg/systemd"
)

// exitUnavailable is the exit status when the host gives the daemon no
// nftables (no CAP_NET_ADMIN, no nf_tables): sysexits' EX_CONFIG, which the
// systemd unit does not restart on, as a restart cannot help.
const exitUnavailable = 78

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("banwatchd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config", config.DefaultDir, "configuration `directory` (banwatch.toml, jails/, filters/); need not exist")
	check := fs.Bool("check", false, "validate the configuration, print the jails that would run, and exit")
	format := fs.String("log-format", "text", "log format: text or json")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	poll := fs.Bool("poll", false, "poll the logs instead of using inotify")
	stateDir := fs.String("state-dir", "", "state `directory` (the SQLite database), overriding banwatch.toml's state_dir")
	socket := fs.String("socket", "", "control socket `path`, overriding banwatch.toml's socket")
	showVersion := fs.Bool("version", false, "print the version and the commit, and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Line("banwatchd"))
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "banwatchd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "banwatchd: --log-level %q: want debug, info, warn or error\n", *level)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: lv}
	logOut := &logWriter{w: stderr}
	var h slog.Handler
	switch *format {
	case "text":
		h = slog.NewTextHandler(logOut, hopts)
	case "json":
		h = slog.NewJSONHandler(logOut, hopts)
	default:
		fmt.Fprintf(stderr, "banwatchd: --log-format %q: want text or json\n", *format)
		return 2
	}
	log := slog.New(h)

	load := func() (*config.Config, error) {
		cfg, err := config.Load(*dir)
		if err == nil && *stateDir != "" {
			cfg.Daemon.StateDir = *stateDir
		}
		if err == nil && *socket != "" {
			cfg.Daemon.Socket = *socket
		}
		return cfg, err
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(stderr, "banwatchd: configuration refused:\n%s\n", indent(err.Error()))
		return 2
	}
	if *check {
		printCheck(stdout, cfg)
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	log.Info("banwatchd starting", "config", *dir, "state_dir", cfg.Daemon.StateDir,
		"firewall", cfg.Daemon.Firewall, "table", cfg.Daemon.Table)
	// Under systemd (Type=notify): readiness, reloads, stopping and the
	// watchdog's keep-alives. Without NOTIFY_SOCKET, sd is nil and silent.
	sd, err := systemd.FromEnv()
	if err != nil {
		log.Warn("systemd notifications", "err", err)
	}
	defer sd.Close()
	notify := func(err error) {
		if err != nil {
			log.Warn("systemd notification failed", "err", err)
		}
	}
	opts := daemon.Options{
		Config: cfg, Logger: log, Reload: reload, LoadConfig: load, Poll: *poll, HoldLog: logOut.hold,
		Ready: func() {
			log.Info("banwatchd running")
			notify(sd.Ready("running"))
		},
		Reloading: func() { notify(sd.Reloading()) },
		Reloaded:  func() { notify(sd.Ready("running; configuration reloaded")) },
	}
	if wd := sd.WatchdogInterval(); wd > 0 {
		// Three keep-alives in each watchdog interval: one late probe
		// (a slow disk, a busy machine) does not get the daemon killed.
		opts.Alive, opts.AliveEvery = func() { notify(sd.Watchdog()) }, wd/3
	}
	stopping := context.AfterFunc(ctx, func() { notify(sd.Stopping()) })
	err = daemon.Run(ctx, opts)
	if stopping() {
		notify(sd.Stopping()) // stopped on its own, not by a signal
	}
	if err != nil {
		log.Error("banwatchd stopped", "err", err)
		if errors.Is(err, firewall.ErrUnavailable) {
			return exitUnavailable
		}
		return 1
	}
	log.Info("banwatchd stopped; bans stay in the kernel until they expire")
	return 0
}

// printCheck prints what --check shows: the daemon settings and each jail
// with its state, logs and ports.
func printCheck(w io.Writer, cfg *config.Config) {
	d := cfg.Daemon
	fmt.Fprintf(w, "configuration %s: valid\n", cfg.Dir)
	fmt.Fprintf(w, "state_dir %s, socket %s, firewall %s, table inet %s\n", d.StateDir, d.Socket, d.Firewall, d.Table)
	if len(d.Ignore) > 0 {
		fmt.Fprintf(w, "ignore %v (plus loopback and this host's addresses)\n", d.Ignore)
	}
	for _, j := range cfg.Jails {
		present := j.LogsPresent()
		state := "disabled"
		switch {
		case j.Enabled == config.EnabledFalse:
		case len(present) > 0 || len(j.Journal) > 0 || j.Enabled == config.EnabledTrue:
			state = "runs"
		default:
			state = "waits for its logs"
		}
		fmt.Fprintf(w, "\njail %s: %s (enabled = %s, %s)\n", j.Name, state, j.Enabled, j.File)
		if j.Enabled == config.EnabledFalse {
			continue
		}
		fmt.Fprintf(w, "  filter %s; %d strikes in %s ban for %s\n", j.Filter, j.MaxStrikes,
			config.FormatDuration(j.FindTime), config.FormatDuration(j.BanTime))
		fmt.Fprintf(w, "  ports %s\n", config.FormatPorts(j.Ports))
		for _, l := range j.Logs {
			mark := "absent"
			for _, p := range present {
				if p == l {
					mark = "present"
				}
			}
			fmt.Fprintf(w, "  log %s (%s)\n", l, mark)
		}
		if len(j.Journal) > 0 {
			fmt.Fprintf(w, "  journal %s\n", strings.Join(j.Journal, " "))
		}
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
