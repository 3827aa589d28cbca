package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The Debian package that make deb builds installs with dpkg -i: the
// binaries answer --version with the package's version, banwatchd --check
// passes on the configuration the package put in /etc/banwatch, the manual
// pages and the unit are where man and systemd look, and a purge removes it
// all.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs a Debian package: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to install a package")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd runs here: installing the package would start banwatchd on this machine (CI runs this test)")
	}
	if err := exec.Command("dpkg", "-s", "banwatch").Run(); err == nil {
		t.Skip("a banwatch package is installed here already; not touching it")
	}
	dist := t.TempDir()
	gobin := goTool()
	// PGO=off: the profile-optimised build takes minutes from a cold
	// cache, and this tests the packaging, not the code's speed.
	mk := exec.Command("make", "-C", "../..", "deb", "DIST="+dist, "GO="+gobin, "VERSION=0.0.1+test", "PGO=off")
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "banwatch_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}
	deb := debs[0]

	contents := sh(t, "dpkg-deb", "--contents", deb)
	for _, f := range []string{"./usr/sbin/banwatchd", "./usr/bin/banctl", "./lib/systemd/system/banwatchd.service",
		"./etc/banwatch/banwatch.toml", "./etc/banwatch/jails/README", "./usr/share/man/man8/banwatchd.8",
		"./usr/share/man/man8/banctl.8", "./usr/share/man/man5/banwatch.toml.5",
		"./usr/share/bash-completion/completions/banctl", "./var/lib/banwatch/"} {
		if !strings.Contains(contents, f) {
			t.Errorf("the package lacks %s:\n%s", f, contents)
		}
	}
	conffiles := sh(t, "dpkg-deb", "--info", deb, "conffiles")
	if !strings.Contains(conffiles, "/etc/banwatch/banwatch.toml") {
		t.Errorf("banwatch.toml is no conffile: %q", conffiles)
	}

	t.Cleanup(func() { exec.Command("dpkg", "--purge", "banwatch").Run() })
	sh(t, "dpkg", "-i", deb)
	if v := sh(t, "/usr/sbin/banwatchd", "--version"); !strings.HasPrefix(v, "banwatchd 0.0.1+test (commit ") {
		t.Errorf("banwatchd --version: %q", v)
	}
	if v := sh(t, "/usr/bin/banctl", "--version"); !strings.HasPrefix(v, "banctl 0.0.1+test (commit ") {
		t.Errorf("banctl --version: %q", v)
	}
	if out := sh(t, "/usr/sbin/banwatchd", "--check"); !strings.Contains(out, "configuration /etc/banwatch: valid") {
		t.Errorf("banwatchd --check:\n%s", out)
	}
	if _, err := exec.LookPath("man"); err == nil {
		if out := sh(t, "man", "-w", "banwatch.toml"); !strings.Contains(out, "/usr/share/man/man5/banwatch.toml.5") {
			t.Errorf("man -w banwatch.toml: %q", out)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		// Installed, with its binary in place: no --root needed.
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", "/lib/systemd/system/banwatchd.service").CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify on the installed unit: %v\n%s", err, out)
		}
	}

	sh(t, "dpkg", "--purge", "banwatch")
	for _, f := range []string{"/usr/sbin/banwatchd", "/usr/bin/banctl", "/lib/systemd/system/banwatchd.service", "/etc/banwatch", "/var/lib/banwatch"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s is still there after dpkg --purge", f)
		}
	}
}

// make install puts every file where the package does, under PREFIX, with
// the unit pointing at PREFIX's binary, and leaves an admin's edited
// banwatch.toml alone when run again.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries: skipped with -short")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("needs make")
	}
	dest := t.TempDir()
	gobin := goTool()
	install := func() {
		t.Helper()
		cmd := exec.Command("make", "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/opt/bw", "GO="+gobin, "PGO=off") // as in TestDebianPackage
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
	}
	install()
	for _, f := range []string{"opt/bw/sbin/banwatchd", "opt/bw/bin/banctl", "etc/systemd/system/banwatchd.service",
		"etc/banwatch/banwatch.toml", "etc/banwatch/jails/README", "opt/bw/share/man/man8/banctl.8",
		"opt/bw/share/man/man5/banwatch.toml.5", "opt/bw/share/bash-completion/completions/banctl",
		"opt/bw/share/zsh/vendor-completions/_banctl", "opt/bw/share/fish/vendor_completions.d/banctl.fish"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/banwatchd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/opt/bw/sbin/banwatchd\n") || strings.Contains(string(unit), "/usr/sbin/banwatchd") {
		t.Errorf("the unit does not run PREFIX's binary:\n%s", unit)
	}
	conf := filepath.Join(dest, "etc/banwatch/banwatch.toml")
	if err := os.WriteFile(conf, []byte("[daemon]\nhistory = \"30d\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	install()
	if data, _ := os.ReadFile(conf); string(data) != "[daemon]\nhistory = \"30d\"\n" {
		t.Errorf("a second make install replaced the admin's banwatch.toml:\n%s", data)
	}
}

// goTool is the go command that runs the tests: go test puts its Go's bin
// first in PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
