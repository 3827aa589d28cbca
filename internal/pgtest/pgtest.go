// Package pgtest makes throwaway PostgreSQL servers for tests: Start runs
// initdb and pg_ctl for one test under a temporary directory, with a role
// and a database "banwatch", and removes it all when the test ends.
//
// It needs root and Debian's postgresql package (or any PostgreSQL whose
// binaries pg_config or /usr/lib/postgresql/*/bin name); without them, and
// under -short, the test is skipped. Since initdb refuses to run as root,
// every PostgreSQL program runs as the "postgres" system user, which owns
// the temporary directory.
//
// The servers are made for speed, not safety: fsync, synchronous_commit
// and full_page_writes are off.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The role and database Start makes; the role's password is its name.
const (
	User     = "banwatch"
	Password = "banwatch"
	Database = "banwatch"
)

// cmdTimeout bounds each PostgreSQL program run (initdb and pg_ctl wait for
// the server); the machine may be busy.
const cmdTimeout = 2 * time.Minute

// Server is a PostgreSQL cluster made for one test under a temporary
// directory. Its methods are not safe for concurrent use.
type Server struct {
	bin  string // the PostgreSQL binaries' directory
	dir  string // the temporary directory, owned by postgres
	data string // dir/data, the cluster
	sock string // dir/s, the Unix socket's directory
	port int
	cred *syscall.Credential // the postgres user's
}

// Start makes (initdb) and starts a cluster for tb, or skips tb (tb.Skip
// with a clear reason) when not root or when the PostgreSQL binaries are
// missing, and under -short. The cluster is stopped and removed in
// tb.Cleanup, whether the test passed or not. Start returns once the
// server accepts connections.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("pgtest: needs a PostgreSQL server: skipped with -short")
	}
	if os.Geteuid() != 0 {
		tb.Skip("pgtest: needs root, to run PostgreSQL as the postgres user")
	}
	bin, err := binDir()
	if err != nil {
		tb.Skipf("pgtest: %v (install Debian's postgresql package)", err)
	}
	cred, err := postgresUser()
	if err != nil {
		tb.Skipf("pgtest: %v (install Debian's postgresql package)", err)
	}
	sweepOrphans(bin)

	// The socket path (dir/s/.s.PGSQL.PORT) must fit in 107 bytes: under
	// a long TMPDIR, use /tmp.
	base := ""
	if len(os.TempDir()) > 60 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "banwatch-pg-")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	s := &Server{bin: bin, dir: dir, data: filepath.Join(dir, "data"), sock: filepath.Join(dir, "s"), cred: cred}
	tb.Cleanup(func() { s.cleanup(tb) })
	if err := s.prepare(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if err := s.initdb(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	// The port is free when chosen, not when the server binds it: try
	// again with another when another process took it meanwhile.
	for attempt := 1; ; attempt++ {
		if err := s.configure(); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
		err := s.start()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(err.Error(), "in use") {
			tb.Fatalf("pgtest: %v", err)
		}
	}
	if _, err := s.run("", s.bin+"/psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-h", s.sock, "-p", strconv.Itoa(s.port),
		"-U", "postgres", "-d", "postgres",
		"-c", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", User, Password),
		"-c", fmt.Sprintf("CREATE DATABASE %s OWNER %s", Database, User)); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return s
}

// DSN returns the connection string over the Unix socket, as user
// "banwatch" (trusted: no password) to database "banwatch", such as
// "host=/tmp/banwatch-pg-123/s port=54321 user=banwatch dbname=banwatch
// sslmode=disable".
//
// Use it for daemons in their own network namespace (unshare -n): there
// 127.0.0.1 is not the host's, but the socket is a path, and the file
// system is shared across network namespaces.
func (s *Server) DSN() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.sock, s.port, User, Database)
}

// TCPDSN returns the connection string over TCP to 127.0.0.1 and the port
// chosen at start, with the password (scram-sha-256); it reaches the server
// only from the host's network namespace.
func (s *Server) TCPDSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", s.port, User, Password, Database)
}

// Port returns the TCP port the server listens on (and its socket's
// number).
func (s *Server) Port() int { return s.port }

// Stop stops the server (pg_ctl stop -m fast), keeping its data: clients
// are disconnected and new connections fail until Restart.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if _, err := s.run("", s.bin+"/pg_ctl", "-D", s.data, "-m", "fast", "-w", "-t", "120", "stop"); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// Restart starts the server again after Stop, on the same socket
// directory and port, and returns once it accepts connections.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// Psql runs sql (one or more statements) with psql over the socket as user
// banwatch in database banwatch, and returns its output, unaligned and
// tuples only (psql -XAtq: fields split by "|", one row a line), without
// the last newline. An SQL error fails tb.
func (s *Server) Psql(tb testing.TB, sql string) string {
	tb.Helper()
	out, err := s.run(sql, s.bin+"/psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-h", s.sock, "-p", strconv.Itoa(s.port),
		"-U", User, "-d", Database, "-f", "-")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return strings.TrimSuffix(out, "\n")
}

// prepare makes the directories: dir (reachable by every user, for the
// socket) and dir/s (the socket's, 0777), owned by postgres, and an
// owner file naming this process for sweepOrphans.
func (s *Server) prepare() error {
	if err := os.WriteFile(filepath.Join(s.dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	if err := os.Mkdir(s.sock, 0o777); err != nil {
		return err
	}
	for _, p := range []string{s.dir, s.sock} {
		if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	if err := os.Chmod(s.sock, 0o777); err != nil { // not cut by the umask
		return err
	}
	return os.Chmod(s.dir, 0o755)
}

// initdb makes the cluster, with trust on the socket and passwords over
// TCP.
func (s *Server) initdb() error {
	if _, err := s.run("", s.bin+"/initdb", "-D", s.data, "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync",
		"--auth-local=trust", "--auth-host=scram-sha-256"); err != nil {
		return err
	}
	hba := "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
	return s.writeFile(filepath.Join(s.data, "pg_hba.conf"), hba)
}

// configure chooses a free port and writes the server's settings.
func (s *Server) configure() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf(`listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
unix_socket_permissions = 0777
max_connections = 100
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
`, s.port, s.sock)
	return s.writeFile(filepath.Join(s.data, "postgresql.auto.conf"), conf)
}

// start starts the server and waits until it accepts connections.
func (s *Server) start() error {
	log := filepath.Join(s.dir, "server.log")
	if _, err := s.run("", s.bin+"/pg_ctl", "-D", s.data, "-l", log, "-w", "-t", "120", "start"); err != nil {
		tail, _ := os.ReadFile(log)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("%w\nserver log:\n%s", err, tail)
	}
	return nil
}

// cleanup stops the server when it runs and removes the directory.
func (s *Server) cleanup(tb testing.TB) {
	if err := stopCluster(s.bin, s.data, s.cred); err != nil {
		tb.Errorf("pgtest: %v", err)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		tb.Errorf("pgtest: %v", err)
	}
}

// stopCluster stops the cluster in data if its postmaster runs: pg_ctl
// stop -m immediate (its data is thrown away), else SIGKILL.
func stopCluster(bin, data string, cred *syscall.Credential) error {
	pid := postmasterPID(data)
	if pid == 0 {
		return nil
	}
	_, err := runAs(cred, filepath.Dir(data), "", bin+"/pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "60", "stop")
	if postmasterPID(data) == 0 {
		return nil
	}
	if kerr := syscall.Kill(pid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
		return fmt.Errorf("stopping the server in %s: %v; kill %d: %v", data, err, pid, kerr)
	}
	return nil
}

// postmasterPID returns the pid of the postmaster of the cluster in data,
// or 0 when none runs.
func postmasterPID(data string) int {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || !strings.HasPrefix(string(comm), "postgres") {
		return 0
	}
	return pid
}

var sweepOnce sync.Once

// sweepOrphans stops and removes, once per test binary, the clusters of
// test processes that died without their cleanup (killed, or timed out),
// which the owner file of each directory names.
func sweepOrphans(bin string) {
	sweepOnce.Do(func() {
		cred, err := postgresUser()
		if err != nil {
			return
		}
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "banwatch-pg-*"))
		more, _ := filepath.Glob("/tmp/banwatch-pg-*")
		for _, dir := range append(dirs, more...) {
			b, err := os.ReadFile(filepath.Join(dir, "owner"))
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(string(b))
			if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				continue // its owner lives (or the file is not ours)
			}
			if stopCluster(bin, filepath.Join(dir, "data"), cred) == nil {
				os.RemoveAll(dir)
			}
		}
	})
}

// writeFile writes a file postgres owns.
func (s *Server) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Chown(path, int(s.cred.Uid), int(s.cred.Gid))
}

// run runs a PostgreSQL program as postgres in s's directory.
func (s *Server) run(stdin, name string, args ...string) (string, error) {
	return runAs(s.cred, s.dir, stdin, name, args...)
}

// runAs runs name as the user of cred in dir with a clean environment
// (no PG* variables of the test's), stdin as its input, and returns its
// standard output; its error holds the standard error.
func runAs(cred *syscall.Credential, dir, stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// binDir finds the PostgreSQL server's binaries: pg_config --bindir, else
// the newest /usr/lib/postgresql/VERSION/bin.
func binDir() (string, error) {
	has := func(dir string) bool {
		for _, p := range []string{"initdb", "pg_ctl", "postgres", "psql"} {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl, postgres, psql)")
}

// version returns the number in /usr/lib/postgresql/VERSION/bin.
func version(bin string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(bin)), 64)
	return v
}

// postgresUser returns the credentials of the postgres system user.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("no postgres system user")
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("postgres user: uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}
