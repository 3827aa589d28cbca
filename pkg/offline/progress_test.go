package offline

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/banwatch/banwatch/pkg/filter"
)

// RunWithProgress reports what Run does, and its Progress ends at the
// report's counts.
func TestRunWithProgress(t *testing.T) {
	f1, err := filter.Compile("mta", "mta.toml", []byte("program = 'mta'\n[[rule]]\nevent = \"auth_failure\"\nregex = 'auth failed for \\[<HOST>\\]'\n"))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := filter.Compile("mta2", "mta2.toml", []byte("program = 'mta'\n[[rule]]\nevent = \"bad_helo\"\nregex = 'auth failed for \\[<HOST>\\] helo'\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := filter.NewSet(f1, f2)
	if err != nil {
		t.Fatal(err)
	}
	fail := "Nov 28 02:00:19 mx mta[1]: auth failed for [192.0.2.1]\n"
	twice := "Nov 28 02:00:20 mx mta[1]: auth failed for [192.0.2.2] helo\n" // two events, one line
	benign := "Nov 28 02:00:21 mx mta[1]: connect from [192.0.2.9]\n"
	tests := []struct {
		name   string
		inputs []string
		slow   bool // read a byte at a time
	}{
		{"one input", []string{fail + benign + twice + fail}, false},
		{"no final newline", []string{fail + strings.TrimSuffix(benign, "\n")}, false},
		{"two inputs", []string{twice + benign, fail + twice}, false},
		{"empty", []string{""}, false},
		{"empty and not", []string{"", fail, ""}, false},
		{"overlong line", []string{fail + strings.Repeat("x", 3*MaxLine) + "\n" + twice}, false},
		{"CRLF", []string{strings.ReplaceAll(fail+twice+benign, "\n", "\r\n")}, false},
		{"a byte at a time", []string{twice + benign + strings.TrimSuffix(fail, "\n"), fail}, true},
		{"a byte at a time, newline last", []string{fail + benign}, true},
	}
	twoEvents := false // some line yielded two events
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inputs := func() []Input {
				var in []Input
				for i, s := range tt.inputs {
					var r io.Reader = strings.NewReader(s)
					if tt.slow {
						r = iotest.OneByteReader(r)
					}
					in = append(in, Input{Name: string(rune('a' + i)), R: r, Ref: ref})
				}
				return in
			}
			var want, got []Match
			wantRep, err := Run(context.Background(), set, inputs(), func(m *Match) { want = append(want, *m) })
			if err != nil {
				t.Fatal(err)
			}
			var p Progress
			gotRep, err := RunWithProgress(context.Background(), set, inputs(), func(m *Match) { got = append(got, *m) }, &p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("matches\n got %v\nwant %v", got, want)
			}
			twoEvents = twoEvents || wantRep.Events > wantRep.Matched
			gotRep.Elapsed, wantRep.Elapsed = 0, 0
			if !reflect.DeepEqual(gotRep, wantRep) {
				t.Errorf("report\n got %+v\nwant %+v", gotRep, wantRep)
			}
			bytes := 0
			for _, s := range tt.inputs {
				bytes += len(s)
			}
			wantCounts := ProgressCounts{Bytes: int64(bytes), Lines: int64(wantRep.Lines), Matched: int64(wantRep.Matched)}
			if c := p.Load(); c != wantCounts {
				t.Errorf("progress %+v, want %+v", c, wantCounts)
			}
			// Without onMatch, too.
			var q Progress
			if _, err := RunWithProgress(context.Background(), set, inputs(), nil, &q); err != nil {
				t.Fatal(err)
			}
			if c := q.Load(); c != wantCounts {
				t.Errorf("without onMatch: progress %+v, want %+v", c, wantCounts)
			}
		})
	}
	if !twoEvents {
		t.Error("no line yielded two events: matched lines are not tested")
	}
}
