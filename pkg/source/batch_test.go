package source

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nxadm/tail"
)

// TestBatchDroppedOnRewrite drives a runner by hand through what a
// copytruncate and a rewrite under the reader look like from inside: lines
// accepted and not verified yet when the file's content was replaced, then
// a line read at the old offsets from the new content. Verifying the batch
// must drop those lines (none was handed out) and go on from the copy at
// the offset after the last verified line, then the new content from its
// start: no line lost, none read twice.
func TestBatchDroppedOnRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	old := numbered(0, 10)
	writeFile(t, path, old)
	g, err := openGen(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	r := newRunner(NewFile(path, Start{}, slog.New(rec), FileOptions{}))
	defer r.close()
	r.queue = []*gen{g}
	r.restartAt = time.Now().Add(time.Hour) // no real tail in this test
	r.flush = time.AfterFunc(time.Hour, func() {})
	r.flush.Stop()

	// feed hands the runner the line text ending at offset end, as
	// nxadm/tail would.
	feed := func(text string, end int64) {
		t.Helper()
		if err := r.take(&tail.Line{Text: text, SeekInfo: tail.SeekInfo{Offset: end}}); err != nil {
			t.Fatal(err)
		}
	}
	ends := map[int]int64{}
	off := int64(0)
	for i, l := range numberedList(0, 10) {
		off += int64(len(l)) + 1
		ends[i] = off
	}
	for i := range 5 {
		feed(fmt.Sprintf("line %d", i), ends[i])
	}
	if ok, err := r.settle(); !ok || err != nil || r.unv != 0 || len(r.pending) != 5 {
		t.Fatalf("settle: %v %v; %d pending, %d not verified", ok, err, len(r.pending), r.unv)
	}
	// A burst goes on: its lines wait for the flush timer (armed, but it
	// never fires here) or for a full batch, however slowly this test
	// feeds them.
	r.flushArmed, r.verifyEvery = true, time.Hour
	feed("line 5", ends[5])
	feed("line 6", ends[6])
	if r.unv != 2 {
		t.Fatalf("%d lines not verified, want 2 (the batch verified too soon)", r.unv)
	}

	// copytruncate, and the writer goes on with a longer new content.
	logrotateCopytruncate(t, path)
	newer := "new " + numbered(100, 120)
	appendTo(t, path, newer)
	// nxadm/tail reads on at its offset, now in the new content.
	next := strings.IndexByte(newer[ends[6]:], '\n')
	feed(newer[ends[6]:ends[6]+int64(next)], ends[6]+int64(next)+1)

	ok, err := r.settle()
	if ok || err != nil {
		t.Fatalf("settle: %v, %v; want the batch dropped", ok, err)
	}
	if len(r.pending) != 5 || r.unv != 0 || string(r.pending[4].Text) != "line 4" {
		t.Fatalf("%d pending (%d not verified), want the 5 verified ones", len(r.pending), r.unv)
	}
	if len(r.queue) != 2 || r.queue[0].name != path+".1" || r.queue[0].off != ends[4] || r.queue[1] != g || g.off != 0 {
		for _, q := range r.queue {
			t.Logf("queue: %s at %d", q.name, q.off)
		}
		t.Fatalf("want the copy from offset %d, then the log from 0", ends[4])
	}
	if n := rec.count("reading the rest of its copy first"); n != 1 {
		t.Errorf("%d copy messages", n)
	}
}
