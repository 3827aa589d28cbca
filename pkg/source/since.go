package source

import (
	"bufio"
	"bytes"
	"io"
	"time"
)

// seekSince returns the offset of the first line of g whose time is at or
// after since, by a binary search over byte offsets: a probe at an offset
// goes on to the next line start, then to the first line whose time
// ParseTime reads (lines without one, or longer than MaxLine, do not
// count). The search assumes times do not go back in the file. With no such
// line it returns the end of the last complete line.
func (r *runner) seekSince(g *gen, since time.Time) (int64, error) {
	size := g.lastSize
	probe := func(pos int64) (int64, bool, error) {
		start, t, ok, err := r.firstTimed(g, pos, size)
		return start, ok && t.Before(since), err
	}
	lo, hi := int64(0), size
	for lo < hi {
		mid := lo + (hi-lo)/2
		_, before, err := probe(mid)
		if err != nil {
			return 0, err
		}
		if before {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	start, _, ok, err := r.firstTimed(g, lo, size)
	if err != nil {
		return 0, err
	}
	if ok {
		return start, nil
	}
	return lastLineEnd(g, size, r.buf)
}

// firstTimed returns the start and time of the first complete line of g
// that starts at or after pos (and ends by size) and has a time.
func (r *runner) firstTimed(g *gen, pos, size int64) (int64, time.Time, bool, error) {
	from := max(pos-1, 0)
	s := &lineScanner{r: bufio.NewReaderSize(io.NewSectionReader(g.f, from, size-from), r.chunk), pos: from, max: r.maxLine}
	if pos > 0 {
		// The byte before pos: skip to the end of the line it is in.
		if _, _, _, err := s.next(); err != nil {
			return 0, time.Time{}, false, ignoreEOF(err)
		}
	}
	for {
		start, text, long, err := s.next()
		if err != nil {
			return 0, time.Time{}, false, ignoreEOF(err)
		}
		if long {
			continue
		}
		if t, ok := r.f.opts.ParseTime(text); ok {
			return start, t, true, nil
		}
	}
}

func ignoreEOF(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// lineScanner reads complete lines with a bounded buffer.
type lineScanner struct {
	r   *bufio.Reader
	pos int64 // offset of the next byte r returns
	max int
}

// next returns the next complete line (without "\n" and a trailing "\r"),
// where it starts and whether it is longer than max (then text is nil). It
// returns io.EOF when no complete line is left.
func (s *lineScanner) next() (start int64, text []byte, long bool, err error) {
	start = s.pos
	for {
		b, err := s.r.ReadSlice('\n')
		s.pos += int64(len(b))
		switch err {
		case nil:
			if long {
				return start, nil, true, nil
			}
			b = bytes.TrimSuffix(b[:len(b)-1], []byte("\r"))
			if len(b) > s.max {
				return start, nil, true, nil
			}
			return start, b, false, nil
		case bufio.ErrBufferFull:
			long = true
		default:
			return start, nil, false, err
		}
	}
}

// lastLineEnd returns the offset after the last newline of g before size (0
// if none).
func lastLineEnd(g *gen, size int64, buf []byte) (int64, error) {
	end := size
	for end > 0 {
		from := max(0, end-int64(len(buf)))
		n, err := g.f.ReadAt(buf[:end-from], from)
		if err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return from + int64(i) + 1, nil
		}
		end = from
	}
	return 0, nil
}
