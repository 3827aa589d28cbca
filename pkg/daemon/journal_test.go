package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/banwatch/banwatch/internal/journaltest"
	"github.com/banwatch/banwatch/internal/testutil"
	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
)

// The postfix jail reading the journal instead of a file: the shipped
// filter matches the lines the journal source makes, a ban follows the
// fifth failure, and after a restart reading resumes at the stored cursor:
// no entry is read twice, and the strikes of before count on.
func TestJournalJail(t *testing.T) {
	journaltest.Need(t)
	e := newEnv(t)
	jdir := t.TempDir()
	e.setDaemon(fmt.Sprintf("journal_directory = %q\n", jdir))
	testutil.WriteFile(t, filepath.Join(e.dir, "jails", "test.toml"),
		"[postfix]\nenabled = true\nlogs = []\njournal = [\"_SYSTEMD_UNIT=postfix@-.service\"]\n"+
			"[exim]\nenabled = false\n[dovecot]\nenabled = false\n[icewarp]\nenabled = false\n[sshd]\nenabled = false\n")
	cfg, err := config.Load(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	fail := func(addr string, n int) []journaltest.Entry {
		var out []journaltest.Entry
		for i := range n {
			out = append(out, journaltest.Postfix(time.Now(), 200+i, fmt.Sprintf("warning: unknown[%s]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", addr)))
		}
		return out
	}
	status := func() control.JailStatus {
		t.Helper()
		st, err := e.client().Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range st.Jails {
			if j.Name == "postfix" {
				return j
			}
		}
		t.Fatal("no postfix jail")
		return control.JailStatus{}
	}
	waitLines := func(n int64) control.JailStatus {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			j := status()
			if j.Lines >= n {
				return j
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d lines read, want %d\n%s", j.Lines, n, e.logBuf)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	stop := e.start()
	journaltest.Write(t, jdir, fail("203.0.113.7", 5)...)
	e.waitBanned("203.0.113.7")
	journaltest.Write(t, jdir, fail("203.0.113.8", 3)...)
	if j := waitLines(8); j.Strikes != 8 || j.Unparsable != 0 {
		t.Errorf("before the restart: %+v", j)
	}
	stop()

	// Two more for .8 while the daemon is down, then a restart.
	journaltest.Write(t, jdir, fail("203.0.113.8", 2)...)
	stop = e.start()
	defer stop()
	e.waitBanned("203.0.113.8")
	time.Sleep(200 * time.Millisecond) // anything read twice would be counted by now
	if j := status(); j.Lines != 2 || j.Strikes != 2 {
		t.Errorf("after the restart the jail read %d lines (%d strikes), want only the 2 new entries", j.Lines, j.Strikes)
	}
}

// A jail reads the journal only when none of its files exists: with its
// file there it reads the file and leaves the journal alone (syslog's copy
// of the journal would count each line twice), without it the journal.
func TestJournalWhenNoFileExists(t *testing.T) {
	journaltest.Need(t)
	for _, fileThere := range []bool{true, false} {
		t.Run(fmt.Sprintf("file=%v", fileThere), func(t *testing.T) {
			e := newEnv(t)
			jdir := t.TempDir()
			e.setDaemon(fmt.Sprintf("journal_directory = %q\n", jdir))
			logPath := e.logPath
			if !fileThere {
				logPath = filepath.Join(e.dir, "absent.log")
			}
			testutil.WriteFile(t, filepath.Join(e.dir, "jails", "test.toml"),
				fmt.Sprintf("[postfix]\nenabled = \"auto\"\nlogs = [%q]\n", logPath)+ // the shipped journal matches stay
					"[exim]\nenabled = false\n[dovecot]\nenabled = false\n[icewarp]\nenabled = false\n[sshd]\nenabled = false\n")
			cfg, err := config.Load(e.dir)
			if err != nil {
				t.Fatal(err)
			}
			e.cfg = cfg
			stop := e.start()
			defer stop()
			journaltest.Write(t, jdir, journaltest.Postfix(time.Now(), 300, "warning: unknown[203.0.113.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"))
			if fileThere {
				e.appendLines(failures("203.0.113.10", 1)...)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				st, err := e.client().Status(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				var j control.JailStatus
				for _, js := range st.Jails {
					if js.Name == "postfix" {
						j = js
					}
				}
				if j.Lines >= 1 {
					time.Sleep(300 * time.Millisecond) // a second source would have counted by now
					st, _ = e.client().Status(context.Background())
					for _, js := range st.Jails {
						if js.Name == "postfix" {
							j = js
						}
					}
					if j.Lines != 1 || len(j.Logs) != 1 {
						t.Fatalf("read %d lines from %+v; want 1 line from one source", j.Lines, j.Logs)
					}
					want := logPath
					if !fileThere {
						want = "journal:_SYSTEMD_UNIT=postfix@-.service _SYSTEMD_UNIT=postfix.service"
					}
					if j.Logs[0].Path != want {
						t.Errorf("read %s, want %s", j.Logs[0].Path, want)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("nothing read: %+v\n%s", j, e.logBuf)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
