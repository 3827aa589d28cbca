package tomlpos

import "testing"

const doc = `# a filter
description = "x"
prefix = '\S+ '

[[rule]]
event = "auth_failure"
regex = 'a'

[[rule]]
event = "bad_helo"
note = """
several
lines with regex = 'no'
"""
regex = 'b'

[postfix]
"max_strikes" = 5
[postfix.weights]
pregreet = 5
`

func TestLocate(t *testing.T) {
	tests := []struct {
		path []string
		want int
	}{
		{[]string{"description"}, 2},
		{[]string{"rule", "0", "event"}, 6},
		{[]string{"rule", "1", "regex"}, 15},
		{[]string{"rule", "1", "missing"}, 9},
		{[]string{"rule", "event"}, 6},
		{[]string{"postfix", "max_strikes"}, 18},
		{[]string{"postfix", "weights", "pregreet"}, 20},
		{[]string{"postfix", "weights", "auth_failure"}, 19},
		{[]string{"nowhere"}, 0},
	}
	for _, tt := range tests {
		if got := Locate([]byte(doc), tt.path...); got != tt.want {
			t.Errorf("Locate(%v) = %d, want %d", tt.path, got, tt.want)
		}
	}
}
