package source

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// inProbe reports whether the log at path is left to the quiet probe.
func inProbe(path string) bool {
	quiet.mu.Lock()
	defer quiet.mu.Unlock()
	for r := range quiet.logs {
		if r.path == path {
			return true
		}
	}
	return false
}

// waitInProbe fails the test unless the log at path is left to the quiet
// probe within a few seconds (quietAfter checks, and the settling time).
func waitInProbe(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(4*quietSettle + quietAfter*checkEvery + wait)
	for !inProbe(path) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not left to the quiet probe", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQuietLogs changes the path of a log that has been quiet long enough
// to be left to the quiet probe: each change must be seen, and the lines it
// brings read, as for a log checked on its own. The probe stats the path
// only, so the cases are those that no line written to the file read tells
// about.
func TestQuietLogs(t *testing.T) {
	tests := []struct {
		name  string
		start string // the log at the start ("" for none)
		lines int    // the lines in start
		// change changes what is at path, as a rotation or a writer
		// would, and returns the lines then to read.
		change func(t *testing.T, path string) []string
	}{
		{
			name:  "renamed, a new file at the path",
			start: numbered(0, 3),
			lines: 3,
			change: func(t *testing.T, path string) []string {
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				writeFile(t, path, "first of the new file\n")
				return []string{"first of the new file"}
			},
		},
		{
			// nxadm/tail sees a write of nothing new; only the check of
			// the first line tells.
			name:  "truncated and written again to the same size",
			start: "line A\n",
			lines: 1,
			change: func(t *testing.T, path string) []string {
				if err := os.WriteFile(path, []byte("line B\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"line B"}
			},
		},
		{
			name: "missing, then there",
			change: func(t *testing.T, path string) []string {
				writeFile(t, path, "it is here\n")
				return []string{"it is here"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.log")
			if tt.start != "" {
				writeFile(t, path, tt.start)
			}
			r := startFile(t, path, Start{}, FileOptions{RotateWait: 100 * time.Millisecond})
			r.texts(tt.lines, wait)
			waitInProbe(t, path)
			want := tt.change(t, path)
			equal(t, r.texts(len(want), 3*ProbeEvery/2+wait), want)
		})
	}
}

// TestOnProbe checks that a function given to OnProbe is called, and is
// let go by stop.
func TestOnProbe(t *testing.T) {
	called := make(chan struct{}, 1)
	stop := OnProbe(func() {
		select {
		case called <- struct{}{}:
		default:
		}
	})
	select {
	case <-called:
	case <-time.After(3*ProbeEvery/2 + wait):
		t.Fatal("not called")
	}
	stop()
	quiet.mu.Lock()
	n := len(quiet.fns)
	quiet.mu.Unlock()
	if n != 0 {
		t.Errorf("%d functions left to the probe after stop", n)
	}
}
