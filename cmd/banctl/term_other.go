//go:build !linux

package main

import "io"

// terminalFd reports no terminal: the progress bar of `banctl test` is
// drawn on Linux only.
func terminalFd(w io.Writer) (int, bool) { return 0, false }

// termWidth is the fallback width.
func termWidth(fd int) int { return 80 }
