package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/banwatch/banwatch/pkg/offline"
)

// progressEvery is how often the progress bar is redrawn. The first frame
// comes one interval after the start, so that runs shorter than that draw
// nothing.
var progressEvery = 100 * time.Millisecond

// progressState is what one frame of the progress bar shows.
type progressState struct {
	offline.ProgressCounts
	Total   int64 // bytes of all inputs together; < 0 when not known (standard input, a pipe)
	Elapsed time.Duration
}

// renderProgress returns the progress line for a terminal width columns
// wide. It stays within width-1 columns, as a character in the last column
// makes some terminals wrap. With a known total:
//
//	45.2% [=========>           ] 1.23M lines  2.51M lines/s  12.3k matched  ETA 0:12
//
// (the percent right-aligned in 6 columns) and without, lines, lines/s and
// matched lines only. When the line does not fit, the bar goes first, then
// matched, lines/s, lines and ETA.
func renderProgress(s progressState, width int) string {
	avail := width - 1
	if avail <= 0 {
		return ""
	}
	rate := 0.0
	if secs := s.Elapsed.Seconds(); secs > 0 {
		rate = float64(s.Lines) / secs
	}
	fields := []string{ // least important last
		humanCount(float64(s.Lines)) + " lines",
		humanCount(rate) + " lines/s",
		humanCount(float64(s.Matched)) + " matched",
	}
	if s.Total < 0 {
		for ; len(fields) > 0; fields = fields[:len(fields)-1] {
			if line := strings.Join(fields, "  "); len(line) <= avail {
				return line
			}
		}
		if n := humanCount(float64(s.Lines)); len(n) <= avail {
			return n
		}
		return ""
	}

	frac := 1.0
	if s.Total > 0 {
		frac = min(float64(s.Bytes)/float64(s.Total), 1)
	}
	pct := fmt.Sprintf("%5.1f%%", math.Floor(frac*1000)/10) // 99.97% is not yet 100.0%
	eta := "ETA " + formatETA(s)
	for k := len(fields); k >= 0; k-- {
		tail := strings.Join(append(fields[:k:k], eta), "  ")
		line := pct + " " + tail
		if k == len(fields) {
			// The bar takes what the text leaves, if that is enough.
			if inner := avail - len(line) - 3; inner >= 10 {
				return pct + " " + drawBar(frac, inner) + " " + tail
			}
		}
		if len(line) <= avail {
			return line
		}
	}
	if pct = strings.TrimSpace(pct); len(pct) <= avail {
		return pct
	}
	return ""
}

// drawBar returns a bar [===>   ] with inner columns between the brackets,
// filled to frac.
func drawBar(frac float64, inner int) string {
	filled := int(frac * float64(inner))
	b := make([]byte, 0, inner+2)
	b = append(b, '[')
	for i := 0; i < inner; i++ {
		switch {
		case i < filled:
			b = append(b, '=')
		case i == filled:
			b = append(b, '>')
		default:
			b = append(b, ' ')
		}
	}
	return string(append(b, ']'))
}

// humanCount formats a count or rate in at most 5 characters: exact below
// 10,000, then with three significant digits and k, M, G, T, P or E.
func humanCount(v float64) string {
	if math.IsNaN(v) || v < 0 {
		return "?"
	}
	if v < 9999.5 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	const units = "kMGTPE"
	u := 0
	for v /= 1000; v >= 999.5 && u < len(units)-1; u++ {
		v /= 1000
	}
	switch {
	case math.IsInf(v, 1) || v >= 999.5:
		return ">999E"
	case v < 9.995:
		return strconv.FormatFloat(v, 'f', 2, 64) + units[u:u+1]
	case v < 99.95:
		return strconv.FormatFloat(v, 'f', 1, 64) + units[u:u+1]
	default:
		return strconv.FormatFloat(v, 'f', 0, 64) + units[u:u+1]
	}
}

// formatETA returns the time left at the average rate so far: 0:07, 12:34,
// 3:04:05, then days and hours (2d03h), "--:--" before anything is read.
func formatETA(s progressState) string {
	if s.Bytes >= s.Total {
		return "0:00"
	}
	if s.Bytes <= 0 || s.Elapsed <= 0 {
		return "--:--"
	}
	left := float64(s.Total-s.Bytes) / float64(s.Bytes) * s.Elapsed.Seconds()
	if left >= 1000*24*3600 {
		return ">999d"
	}
	secs := int64(math.Ceil(left))
	h, m, sec := secs/3600, secs/60%60, secs%60
	switch {
	case h >= 24:
		return fmt.Sprintf("%dd%02dh", h/24, h%24)
	case h > 0:
		return fmt.Sprintf("%d:%02d:%02d", h, m, sec)
	default:
		return fmt.Sprintf("%d:%02d", m, sec)
	}
}

// startProgress draws p on the terminal w every progressEvery, in one
// line that it redraws in place, until the returned stop is called. stop
// waits for the drawing goroutine and erases the line, if one was drawn,
// so that what is printed next starts on a clean line. width returns the
// terminal's width at each frame (it may be resized); total is as in
// progressState.
func startProgress(w io.Writer, width func() int, p *offline.Progress, total int64) (stop func()) {
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	drawn := false
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		var buf []byte
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			s := progressState{ProgressCounts: p.Load(), Total: total, Elapsed: time.Since(start)}
			buf = append(append(append(buf[:0], '\r'), renderProgress(s, width())...), "\x1b[K"...)
			w.Write(buf) // a terminal that fails a write gets no bar
			drawn = true
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		if drawn {
			io.WriteString(w, "\r\x1b[K")
		}
	}
}
