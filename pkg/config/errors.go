package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/BurntSushi/toml"
)

// Error is a configuration error: the file, the line (0 when unknown), the
// key it is about (dotted, "" when none) and why it was refused.
type Error struct {
	File   string
	Line   int
	Key    string
	Reason string
}

func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Key != "" {
		s += ": " + oneLine(e.Key)
	}
	return s + ": " + oneLine(e.Reason)
}

// oneLine escapes the control characters of s ("\n" for a newline): a
// reason quotes what the file holds ("not a binary number: '0b\n'"), and
// an error is one line, naming its file, of the list Load returns.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// decodeErrLine matches the decoder's errors that are not toml.ParseError
// (type mismatches): `toml: line 4 (last key "a.b"): incompatible types: ...`.
var decodeErrLine = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "([^"]*)"\))?: (.*)$`)

// decodeError turns an error of the TOML decoder into an *Error for file.
func decodeError(file string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: file, Line: pe.Position.Line, Key: pe.LastKey, Reason: pe.Message}
	}
	if m := decodeErrLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Key: m[2], Reason: m[3]}
	}
	return &Error{File: file, Reason: fmt.Sprint(err)}
}
