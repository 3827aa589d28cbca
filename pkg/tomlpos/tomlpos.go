// Package tomlpos finds the line of a key in a TOML document, so that
// validation errors found after decoding can name the line they are about.
//
// The TOML decoder reports positions only for syntax errors; a semantic error
// ("unknown event", "bad duration") needs the line of the key it is about.
// Locate understands the subset of TOML our configuration files use: tables,
// arrays of tables, dotted and quoted keys, and multi-line strings it skips.
package tomlpos

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// Locate returns the 1-based line of the key at path, or of the closest
// enclosing table or array element it can find, or 0. A path element that is
// a decimal number selects an element of an array of tables, counting from 0:
// Locate(doc, "rule", "2", "regex"). Without the number, the key's first
// occurrence in any element counts: Locate(doc, "rule", "regex").
func Locate(doc []byte, path ...string) int {
	want := canonical(path)
	best, bestLen := 0, 0
	counts := map[string]int{}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	inMulti := ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if inMulti != "" {
			if strings.Count(line, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		switch {
		case line == "" || line[0] == '#':
			continue
		case strings.HasPrefix(line, "[["):
			name := keyPath(strings.Trim(strings.SplitN(line, "]]", 2)[0], "[ "))
			idx := counts[name]
			counts[name] = idx + 1
			table = name + "." + strconv.Itoa(idx)
			if l := matchLen(want, table); l > bestLen {
				best, bestLen = n, l
			}
		case line[0] == '[':
			table = keyPath(strings.Trim(strings.SplitN(line, "]", 2)[0], "[ "))
			if l := matchLen(want, table); l > bestLen {
				best, bestLen = n, l
			}
		default:
			eq := strings.IndexByte(line, '=')
			if eq < 0 {
				continue
			}
			key := keyPath(line[:eq])
			full := key
			if table != "" {
				full = table + "." + key
			}
			if l := max(matchLen(want, full), matchLen(want, stripIndexes(full))); l > bestLen {
				best, bestLen = n, l
			}
			rest := strings.TrimSpace(line[eq+1:])
			for _, q := range []string{`"""`, `'''`} {
				if strings.HasPrefix(rest, q) && strings.Count(rest, q) == 1 {
					inMulti = q
				}
			}
		}
	}
	return best
}

// matchLen returns how much of want the dotted path got covers, counted in
// path elements, if got is want or one of its ancestors; otherwise 0.
func matchLen(want, got string) int {
	if want == got || strings.HasPrefix(want, got+".") {
		return strings.Count(got, ".") + 1
	}
	return 0
}

func canonical(path []string) string { return strings.Join(path, ".") }

// keyPath normalises a possibly dotted, possibly quoted key.
func keyPath(s string) string {
	parts := strings.Split(strings.TrimSpace(s), ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, ".")
}

// stripIndexes drops the array element numbers from a dotted path.
func stripIndexes(path string) string {
	parts := strings.Split(path, ".")
	out := parts[:0]
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}
