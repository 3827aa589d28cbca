// Package banwatch holds the files that ship inside the binaries: the
// default filters and jails. Everything else lives under pkg/ and cmd/.
package banwatch

import "embed"

// Defaults holds filters/*.toml and jails/*.toml as shipped.
//
//go:embed filters/*.toml jails/*.toml
var Defaults embed.FS
