package source

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// syslogTime reads a syslog timestamp ("Nov 28 04:10:00") in 2024.
func syslogTime(line []byte) (time.Time, bool) {
	if len(line) < len(time.Stamp) {
		return time.Time{}, false
	}
	t, err := time.Parse(time.Stamp, string(line[:len(time.Stamp)]))
	if err != nil {
		return time.Time{}, false
	}
	return t.AddDate(2024, 0, 0), true
}

type sinceLine struct {
	text string
	t    time.Time // zero: no time
	off  int64     // where it starts
}

// sinceLog builds a log of n lines from 04:00:00 on Nov 28, some sharing a
// second, some without a time, some longer than maxLine.
func sinceLog(n, maxLine int) ([]sinceLine, string) {
	t0 := time.Date(2024, 11, 28, 4, 0, 0, 0, time.UTC)
	var lines []sinceLine
	var b strings.Builder
	tm := t0
	for i := range n {
		var l sinceLine
		switch {
		case i%7 == 3:
			l.text = fmt.Sprintf("no time on this line %d", i)
		case i%97 == 50:
			tm = tm.Add(time.Second)
			l.t = tm
			l.text = tm.Format(time.Stamp) + " host postfix/smtpd[1]: long " + strings.Repeat("z", maxLine)
		default:
			if i%3 != 0 { // every third line shares the second of the one before
				tm = tm.Add(time.Duration(1+i%11) * time.Second)
			}
			l.t = tm
			l.text = fmt.Sprintf("%s host postfix/smtpd[%d]: line %d", tm.Format(time.Stamp), i, i)
		}
		l.off = int64(b.Len())
		b.WriteString(l.text + "\n")
		lines = append(lines, l)
	}
	return lines, b.String()
}

// wantSince returns the index of the first line with a time >= since that
// is not longer than maxLine, or len(lines).
func wantSince(lines []sinceLine, since time.Time, maxLine int) int {
	for i, l := range lines {
		if !l.t.IsZero() && len(l.text) <= maxLine && !l.t.Before(since) {
			return i
		}
	}
	return len(lines)
}

func TestSeekSince(t *testing.T) {
	const maxLine = 200
	lines, content := sinceLog(3000, maxLine)
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, content+"Nov 30 00:00:00 a partial line")
	g, err := openGen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.f.Close()
	r := newRunner(NewFile(path, Start{}, nil, FileOptions{MaxLine: maxLine, ParseTime: syslogTime}))
	first, last := lines[0].t, lines[len(lines)-1].t
	for since := first.Add(-time.Hour); !since.After(last.Add(time.Minute)); since = since.Add(3 * time.Second) {
		got, err := r.seekSince(g, since)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(len(content))
		if i := wantSince(lines, since, maxLine); i < len(lines) {
			want = lines[i].off
		}
		if got != want {
			t.Fatalf("since %v: offset %d, want %d", since, got, want)
		}
	}
}

func TestStartSince(t *testing.T) {
	const maxLine = 200
	lines, content := sinceLog(2000, maxLine)
	for _, since := range []time.Time{
		lines[0].t.Add(-time.Minute),
		lines[0].t,
		lines[700].t,                   // a second several lines share
		lines[1000].t.Add(time.Second), // maybe between lines
		lines[len(lines)-1].t,
		lines[len(lines)-1].t.Add(time.Hour), // after all: nothing, then what comes
	} {
		t.Run(since.Format(time.TimeOnly), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.log")
			writeFile(t, path, content)
			r := startFile(t, path, Start{Since: since}, FileOptions{MaxLine: maxLine, ParseTime: syslogTime})
			var want []string
			for _, l := range lines[wantSince(lines, since, maxLine):] {
				if len(l.text) > maxLine {
					want = append(want, "<skipped>")
				} else {
					want = append(want, l.text)
				}
			}
			if len(want) > 0 && !strings.HasPrefix(want[0], since.Format(time.Stamp)[:6]) {
				t.Fatalf("bad test: %q", want[0])
			}
			equal(t, r.texts(len(want), wait), want)
			r.none(200 * time.Millisecond)
			appendTo(t, path, "Dec  1 00:00:00 host later\n")
			equal(t, r.texts(1, wait), []string{"Dec  1 00:00:00 host later"})
		})
	}
}
