# banwatch: build, test and measure.
#
#   make check   everything CI runs: installs what the tests need, vet,
#                staticcheck, the whole test suite with the race detector,
#                a one-minute soak, short fuzz runs
#   make test    the quick suite: no root, no packages, no fuzzing
#   make bench   the whole performance harness (root, about 5 minutes): banctl
#                test against fail2ban and sshguard, the daemon in a network
#                namespace, allocations of the hot paths; one table
#   make bench-go the Go benchmarks of the matching engine on one core
#   make bench-cluster bans of 3 cluster nodes on one PostgreSQL reaching
#                the others: p50/p99 (root)
#   make bench-web the history page's requests over 1,000,000 bans
#   make pgo     the CPU profile that make build optimises banctl and
#                banwatchd with (cmd/release.pgo), taken anew from benchmarks
#   make fuzz    long fuzz runs (FUZZTIME each, default 5m)
#   make soak    the long reliability run (root, about 65 minutes): every fuzz
#                target for FUZZTIME, then 50 SIGKILL cycles, a 10-minute
#                soak, every fault test; writes docs/reliability.md
#   make install binaries, /etc/banwatch, the systemd unit, man pages
#                (PREFIX=/usr/local, DESTDIR for staging)
#   make man     the manual pages and completions from their sources
#   make deb     a Debian package in dist/ (nfpm, fetched by go run)

GO        ?= go
FUZZTIME  ?= 5m
# Debian packages the tests need; installed by `make deps` when missing.
# fail2ban is there for its Python module, with which pkg/fail2ban's tests
# make fail2ban databases: while deps installs it, a policy-rc.d keeps its
# service from starting (it would ban through nftables), and the service is
# disabled afterwards. zsh and fish check banctl's completions;
# systemd-journal-remote writes the journals the journal tests read;
# postgresql runs the throwaway servers of the cluster tests
# (internal/pgtest), as the postgres user it creates; the cluster Debian
# makes is stopped and its service disabled, like fail2ban's.
DEBIAN_PACKAGES ?= nftables iproute2 util-linux gcc libc6-dev postfix dovecot-core swaks libidn12 systemd systemd-journal-remote fail2ban zsh fish postgresql
# chromium (run headless) loads the history page in cmd/banwatchd's
# TestWebPage. It and a font for its screenshots are installed without their
# recommends, which would bring services along (avahi-daemon, upower) and
# start them.
DEBIAN_PACKAGES_BARE ?= chromium fonts-liberation
POLICY_RCD = /usr/sbin/policy-rc.d

.PHONY: all build install man deb check deps fmt vet staticcheck test test-all fuzz-smoke fuzz soak soak-short bench bench-cluster bench-go bench-web pgo clean

all: build

# The release: the last tag (v0.1.0 -> 0.1.0), else 0.0.0+git and the
# commit; a Debian version must start with a digit. The binaries also carry
# the commit from Go's VCS stamp.
VERSION   ?= $(shell v=$$(git describe --tags --abbrev=0 2>/dev/null | sed 's/^v//'); \
	echo $${v:-0.0.0+git$$(git rev-parse --short=12 HEAD 2>/dev/null)})
DIST      ?= dist
LDFLAGS   := -X github.com/banwatch/banwatch/internal/version.Version=$(VERSION)
PREFIX    ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR   ?= $(SYSCONFDIR)/systemd/system
NFPM      ?= github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

build:
	$(GO) build -pgo=$(PGO) -ldflags '$(LDFLAGS)' -o bin/ ./cmd/banwatchd ./cmd/banctl

# Installs what the package holds, under PREFIX; the configuration files are
# not overwritten when they exist. The unit's ExecStart is rewritten to
# PREFIX's binary.
install: build
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)/banwatch/jails $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 bin/banwatchd $(DESTDIR)$(PREFIX)/sbin/banwatchd
	install -m 0755 bin/banctl $(DESTDIR)$(PREFIX)/bin/banctl
	sed 's#/usr/sbin/banwatchd#$(PREFIX)/sbin/banwatchd#g' contrib/systemd/banwatchd.service >$(DESTDIR)$(UNITDIR)/banwatchd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/banwatchd.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/banwatch/banwatch.toml ] || install -m 0644 contrib/etc/banwatch.toml $(DESTDIR)$(SYSCONFDIR)/banwatch/banwatch.toml
	install -m 0644 contrib/etc/jails.README $(DESTDIR)$(SYSCONFDIR)/banwatch/jails/README
	for m in man/*.[0-9]; do s=$${m##*.}; install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0644 contrib/completion/banctl.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/banctl
	install -m 0644 contrib/completion/_banctl $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_banctl
	install -m 0644 contrib/completion/banctl.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/banctl.fish
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; \
		echo "installed; start with: systemctl enable --now banwatchd"; fi

# The manual pages (man/) and banctl's completions (contrib/completion/),
# from the pages' sources next to the code (internal/mangen).
man:
	$(GO) test -count=1 -run 'TestPages$$|TestCompletions' ./internal/mangen -update

# A Debian package of this checkout in dist/, built by nfpm
# (packaging/nfpm.yaml) at a pinned version through go run.
deb: build
	mkdir -p $(DIST)
	VERSION=$(VERSION) $(GO) run $(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DIST)/

check: deps fmt vet staticcheck test-all soak-short fuzz-smoke

deps:
	@command -v $(GO) >/dev/null || { echo "make: Go is missing: install Go 1.26 or set GO=/path/to/go" >&2; exit 1; }
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	bare=""; for p in $(DEBIAN_PACKAGES_BARE); do dpkg -s $$p >/dev/null 2>&1 || bare="$$bare $$p"; done; \
	if [ -n "$$missing$$bare" ]; then \
		echo "installing:$$missing$$bare"; \
		rcd=""; \
		if [ ! -e $(POLICY_RCD) ]; then \
			printf '#!/bin/sh\n# make deps: fail2ban and postgresql must not start while they are installed\ncase "$$1" in fail2ban|fail2ban.service|postgresql|postgresql.service) exit 101;; esac\nexit 0\n' >$(POLICY_RCD) && \
			chmod 755 $(POLICY_RCD) && rcd=yes; \
		fi; \
		apt-get update -qq && \
			{ [ -z "$$missing" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } && \
			{ [ -z "$$bare" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$bare; }; status=$$?; \
		if [ -n "$$rcd" ]; then rm -f $(POLICY_RCD); fi; \
		case " $$missing " in *" fail2ban "*) \
			if [ -d /run/systemd/system ]; then systemctl disable --now fail2ban.service >/dev/null 2>&1; \
			else update-rc.d fail2ban disable >/dev/null 2>&1; fi;; \
		esac; \
		case " $$missing " in *" postgresql "*) \
			if [ -d /run/systemd/system ]; then systemctl disable --now postgresql.service >/dev/null 2>&1; \
			else update-rc.d postgresql disable >/dev/null 2>&1; fi; \
			pg_lsclusters -h 2>/dev/null | while read -r v c rest; do pg_ctlcluster "$$v" "$$c" stop >/dev/null 2>&1; done;; \
		esac; \
		exit $$status; \
	fi

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck (honnef.co/go/tools) at a pinned version, installed into
# GOPATH/bin from the Go module proxy when missing.
STATICCHECK_VERSION ?= v0.8.2
staticcheck:
	@sc=$$($(GO) env GOPATH)/bin/staticcheck; \
	if ! $$sc -version 2>/dev/null | grep -qF "($(STATICCHECK_VERSION:v%=%))"; then \
		echo "installing staticcheck $(STATICCHECK_VERSION)"; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) || exit 1; \
	fi; \
	$$sc ./...

test:
	$(GO) test -short ./...

test-all:
	$(GO) test -race -count=1 ./...

# The fuzz targets, as NAME:PACKAGE:EXECS. fuzz-smoke runs each for EXECS
# inputs (about 10-15 s here), enough to catch a regression in CI. A count,
# not a duration: with a duration -fuzztime, Go's fuzz coordinator can fail
# at its own deadline with "context deadline exceeded" and no failing input
# (golang/go#75804, fixed in Go 1.27), which a busy CI machine hits.
FUZZ_TARGETS = FuzzParsePrefix:./pkg/logtime:500000 FuzzCache:./pkg/logtime:400000 \
	FuzzParseAddr:./pkg/filter:150000 FuzzMatch:./pkg/filter:150000 \
	FuzzFastMatchesRegexp:./pkg/filter:100000 FuzzInjection:.:60000 FuzzShippedFilters:.:60000 \
	FuzzServer:./pkg/control:100000 FuzzLoad:./pkg/config:3000

fuzz-smoke:
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; rest=$${t#*:}; pkg=$${rest%%:*}; n=$${rest#*:}; \
		echo "$(GO) test -run '^$$' -fuzz '^'$$name'$$' -fuzztime $${n}x $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $${n}x -fuzzminimizetime 10s $$pkg; \
	done

# Long runs, FUZZTIME each (a duration: see above for the rare spurious
# "context deadline exceeded" at its end).
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; rest=$${t#*:}; pkg=$${rest%%:*}; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1m $$pkg; \
	done

# The reliability tests at full length, after the long fuzz runs (which do
# not need the machine to themselves); their results and figures go to
# docs/reliability.md (bench/reliability), written even when one fails.
# The go test -json output stays in SOAK_LOG and FUZZ_LOG: `go run
# ./bench/reliability -in SOAK_LOG -fuzz FUZZ_LOG` writes the document
# again from them. FUZZTIME=1s makes a quick trial run.
CHAOS_CYCLES  ?= 50
SOAK_DURATION ?= 10m
SOAK_TESTS = TestChaosKill|TestSoak|TestStateFilesystem|TestFault|TestRepairsFlushedRuleset|TestReloadRefusesBrokenConfig
# The soak needs the machine to itself: the suite (test-all) skips it, and
# make check runs it here for a minute, alone and without the race detector.
soak-short:
	$(GO) test -count=1 -run '^TestSoak$$' -v ./cmd/banwatchd -args -soak-duration 1m

SOAK_LOG ?= /tmp/banwatch-soak.json
FUZZ_LOG ?= /tmp/banwatch-fuzz.json
soak: deps
	@log=$(SOAK_LOG); : >$$log; status=0; \
	fuzzlog=$(FUZZ_LOG); : >$$fuzzlog; \
	for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; rest=$${t#*:}; pkg=$${rest%%:*}; \
		echo "fuzzing $$name ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -json -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1m $$pkg >>$$fuzzlog || status=1; \
	done; \
	$(GO) test -count=1 -json -timeout 60m -run '$(SOAK_TESTS)' ./cmd/banwatchd \
		-args -chaos-cycles $(CHAOS_CYCLES) -soak-duration $(SOAK_DURATION) >>$$log || status=1; \
	$(GO) test -count=1 -json -run 'TestInjection|FuzzInjection|FuzzShippedFilters' . >>$$log || status=1; \
	$(GO) test -count=1 -json ./pkg/control >>$$log || status=1; \
	$(GO) run ./bench/reliability -in $$log -fuzz $$fuzzlog -fuzztime $(FUZZTIME) -fuzz-targets '$(FUZZ_TARGETS)' \
		-o docs/reliability.md -command "make soak" || status=1; \
	exit $$status

bench: deps
	$(GO) run ./bench/report

# Cluster mode: 10,000 bans/s across 3 nodes on one PostgreSQL, and how
# long each takes to reach the other nodes' kernels (docs/cluster.md).
bench-cluster: deps
	$(GO) test -count=1 -run '^TestClusterPropagation$$' -v ./cmd/banwatchd -args -cluster-bench-seconds 5

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 -count 5 ./pkg/offline ./pkg/filter

# Profile-guided optimisation. make build (and so install and deb) and the
# benchmark harness build with -pgo=$(PGO); go run, go build and go test
# without the flag do not, because a cold build with a profile takes several
# times as long (about 220 s against 23 s for both binaries here), which the
# quick start and the tests need not pay. The profile merges banctl's
# (BenchmarkRunPostfix and BenchmarkRunAllFilters in pkg/offline) and
# banwatchd's (BenchmarkPipeline in pkg/daemon, from nxadm/tail to the
# store). Take it again after a large change to the hot paths; an old
# profile still works, only less well. go test writes the test binary of a
# profiled run to -o: never /dev/null, which it would replace.
PGO = $(CURDIR)/cmd/release.pgo

pgo:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(GO) test -run '^$$' -bench 'RunPostfix$$|RunAllFilters$$' -benchtime 10x -cpu 1 \
		-cpuprofile "$$tmp/banctl.pgo" -o "$$tmp/offline.test" ./pkg/offline && \
	$(GO) test -run '^$$' -bench 'Pipeline$$' -benchtime 2x \
		-cpuprofile "$$tmp/banwatchd.pgo" -o "$$tmp/daemon.test" ./pkg/daemon && \
	$(GO) tool pprof -proto "$$tmp/banctl.pgo" "$$tmp/banwatchd.pgo" >"$$tmp/release.pgo" && \
	mv "$$tmp/release.pgo" $(PGO)

# The history page's requests over a store of 1,000,000 bans (docs/web.md).
# The store is written at the first run (about 7 minutes) and kept in /tmp,
# named by its schema version, for the later ones.
bench-web:
	$(GO) test -run '^$$' -bench '^BenchmarkPage$$' -benchtime 20x ./pkg/web

clean:
	rm -rf bin dist
