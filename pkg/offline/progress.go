package offline

import (
	"bytes"
	"context"
	"io"
	"sync/atomic"

	"github.com/banwatch/banwatch/pkg/filter"
)

// Progress is how far RunWithProgress has got. RunWithProgress stores into
// it as it reads; any goroutine may call Load at any time.
type Progress struct {
	bytes, lines, matched atomic.Int64
}

// ProgressCounts is a snapshot of a Progress.
type ProgressCounts struct {
	Bytes   int64 // bytes read from the inputs, all together
	Lines   int64 // lines in those bytes
	Matched int64 // lines that yielded at least one event
}

// Load returns the counts stored so far. Bytes and Lines are counted as
// blocks are read, and run ahead of Matched by up to a block (MaxLine).
func (p *Progress) Load() ProgressCounts {
	return ProgressCounts{Bytes: p.bytes.Load(), Lines: p.lines.Load(), Matched: p.matched.Load()}
}

// RunWithProgress is Run that also keeps p up to date with what it has
// read so far, for a progress display that samples p from another
// goroutine. It counts around Run, not inside: bytes and lines as each
// block of input is read, matched lines as onMatch is called. Run's loop
// over lines stays as it is, and costs the same with or without a
// Progress. With p nil, it is Run.
func RunWithProgress(ctx context.Context, set *filter.Set, inputs []Input, onMatch func(*Match), p *Progress) (*Report, error) {
	if p == nil {
		return Run(ctx, set, inputs, onMatch)
	}
	wrapped := make([]Input, len(inputs))
	for i, in := range inputs {
		in.R = &progressReader{r: in.R, p: p}
		wrapped[i] = in
	}
	var lastFile string
	lastLine := 0
	count := func(m *Match) {
		// Events of one line come together: count the line once.
		if m.Line != lastLine || m.File != lastFile {
			lastFile, lastLine = m.File, m.Line
			p.matched.Add(1)
		}
		if onMatch != nil {
			onMatch(m)
		}
	}
	return Run(ctx, set, wrapped, count)
}

// progressReader counts into p the bytes and lines read from r. bufio
// calls Read once per block of up to MaxLine bytes, which makes counting
// here cost nothing per line.
type progressReader struct {
	r       io.Reader
	p       *Progress
	partial bool // the bytes so far end in a line without its newline
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	lines := bytes.Count(b[:n], []byte{'\n'})
	if n > 0 {
		pr.partial = b[n-1] != '\n'
	}
	if err == io.EOF && pr.partial {
		lines++ // the last line, as Run counts it
		pr.partial = false
	}
	pr.p.lines.Add(int64(lines))
	pr.p.bytes.Add(int64(n))
	return n, err
}
