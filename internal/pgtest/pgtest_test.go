package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// query connects to dsn with pgx and returns the first column of sql's
// first row.
func query(ctx context.Context, dsn, sql string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var v string
	err = conn.QueryRow(ctx, sql).Scan(&v)
	return v, err
}

func TestServer(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if got := s.Psql(t, "CREATE TABLE bans (addr text PRIMARY KEY, node text);\nINSERT INTO bans VALUES ('192.0.2.1', 'a'), ('192.0.2.2', 'b');\nSELECT addr, node FROM bans ORDER BY addr;"); got != "192.0.2.1|a\n192.0.2.2|b" {
		t.Errorf("psql: %q", got)
	}
	if got := s.Psql(t, "SELECT current_user, current_database()"); got != "banwatch|banwatch" {
		t.Errorf("psql: %q", got)
	}
	if len(filepath.Join(s.sock, ".s.PGSQL.65535")) > 107 {
		t.Errorf("socket path %s is too long", s.sock)
	}

	cases := []struct{ name, dsn string }{
		{"socket", s.DSN()},
		{"tcp", s.TCPDSN()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := query(ctx, c.dsn, "SELECT string_agg(addr, ',' ORDER BY addr) FROM bans")
			if err != nil || got != "192.0.2.1,192.0.2.2" {
				t.Fatalf("%s: %q, %v", c.dsn, got, err)
			}
		})
	}
	// TCP asks for the password.
	if _, err := query(ctx, strings.Replace(s.TCPDSN(), "password=banwatch", "password=wrong", 1), "SELECT 1::text"); err == nil {
		t.Error("a wrong password is taken over TCP")
	}

	s.Stop(t)
	for _, c := range cases {
		if _, err := query(ctx, c.dsn, "SELECT 1::text"); err == nil {
			t.Errorf("%s: connected to a stopped server", c.name)
		}
	}
	s.Restart(t)
	if got := s.Psql(t, "SELECT count(*) FROM bans"); got != "2" {
		t.Errorf("after restart: %q rows", got)
	}
	for _, c := range cases {
		if got, err := query(ctx, c.dsn, "SELECT node FROM bans WHERE addr = '192.0.2.2'"); err != nil || got != "b" {
			t.Errorf("%s after restart: %q, %v", c.name, got, err)
		}
	}
}

// Cleanup stops the server and removes its directory, also after Stop.
func TestCleanup(t *testing.T) {
	cases := []struct {
		name string
		stop bool
	}{
		{"running", false},
		{"stopped", true},
	}
	for _, c := range cases {
		var dir, data string
		t.Run(c.name, func(t *testing.T) {
			s := Start(t)
			dir, data = s.dir, s.data
			if postmasterPID(data) == 0 {
				t.Fatal("no postmaster")
			}
			if c.stop {
				s.Stop(t)
			}
		})
		if dir == "" {
			return // skipped
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: %s is left: %v", c.name, dir, err)
		}
	}
}

// Psql fails the test on an SQL error.
func TestPsqlError(t *testing.T) {
	s := Start(t)
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Psql(ft, "SELECT * FROM no_such_table")
	}()
	<-done
	if !ft.failed || !strings.Contains(ft.msg, "no_such_table") {
		t.Errorf("failed %v: %q", ft.failed, ft.msg)
	}
}

// fatalTB records a Fatalf and ends its goroutine.
type fatalTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = strings.TrimSpace(strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " "))
	runtime.Goexit()
}
