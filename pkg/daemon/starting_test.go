package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/banwatch/banwatch/pkg/config"
	"github.com/banwatch/banwatch/pkg/control"
	"github.com/banwatch/banwatch/pkg/store"
)

// TestBeforeFirstGeneration: the control socket (and the cluster's syncer
// and the page) start before the first generation. Requests that come in
// that moment are answered, not a nil generation's panic: status says no
// jail runs yet, a ban waits for the pipeline and then gives up with 503,
// and the cluster's hand-over waits for a generation until its context
// ends.
func TestBeforeFirstGeneration(t *testing.T) {
	e := newEnv(t)
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), DBFile), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := &daemon{log: slog.New(slog.DiscardHandler), store: st, started: now()}
	d.starting(e.cfg, nil)

	s, err := d.Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	for _, j := range s.Jails {
		if j.Running && j.Name != config.ManualJail {
			t.Errorf("jail %s running before the first generation", j.Name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = d.Ban(ctx, control.BanRequest{IP: "192.0.2.1", Jail: "postfix"}, control.Peer{})
	var ce *control.Error
	if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ce) && ce.Status == http.StatusServiceUnavailable) {
		t.Errorf("Ban before the first generation: %v; want to wait, then the deadline or 503", err)
	}
	if _, err := d.Fingerprints(ctx, ""); err == nil {
		t.Error("Fingerprints before the first generation: no error")
	}
	if err := d.toCommitter(ctx, &remoteBatch{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("toCommitter before the first generation: %v; want the deadline", err)
	}
}
