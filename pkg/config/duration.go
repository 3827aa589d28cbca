package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a duration as Go writes them ("90s", "10m", "1h30m")
// with two more units a ban needs: "d" (24h) and "w" (7d), as in "7d" or
// "1w2d". Negative durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "dw")
		if i < 0 {
			d, err := time.ParseDuration(rest)
			if err != nil {
				return 0, fmt.Errorf("bad duration %q: want a number and a unit: 30s, 10m, 2h, 7d, 1w", s)
			}
			total += d
			break
		}
		n, err := strconv.ParseUint(rest[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: want a number and a unit: 30s, 10m, 2h, 7d, 1w", s)
		}
		unit := 24 * time.Hour
		if rest[i] == 'w' {
			unit = 7 * 24 * time.Hour
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if total < 0 {
		return 0, fmt.Errorf("bad duration %q: negative", s)
	}
	return total, nil
}

// FormatDuration writes d the way ParseDuration reads it, with days where
// they make it shorter: 168h as "7d", 36h as "1d12h".
func FormatDuration(d time.Duration) string {
	day := 24 * time.Hour
	if d < day {
		return d.String()
	}
	days := d / day
	rest := d % day
	s := strconv.FormatInt(int64(days), 10) + "d"
	if rest != 0 {
		r := rest.String() // "1h30m0s", "1h0m0s", "5m0s", "1h0m5s"
		if strings.HasSuffix(r, "m0s") {
			r = r[:len(r)-2]
		}
		if strings.HasSuffix(r, "h0m") {
			r = r[:len(r)-2]
		}
		s += r
	}
	return s
}

// FormatPorts writes a jail's ports as "25, 465, 587", or "all" for none.
func FormatPorts(ps []uint16) string {
	if len(ps) == 0 {
		return "all"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}
