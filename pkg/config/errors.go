package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

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
		s += ": " + e.Key
	}
	return s + ": " + e.Reason
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
