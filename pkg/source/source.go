// Package source follows log files and hands their lines to the daemon,
// with the read position after each line so that a restart resumes exactly
// where the store says it stopped.
package source

import (
	"context"
	"time"
)

// Position is where reading of one log stands: the byte offset just after
// the last line handed out, in the file with this inode, whose first line
// hashes to Fingerprint (so that a new file that reuses the inode is told
// apart). A zero Position means "never read".
//
// Path is the configured path of the log, also for lines read from a
// rotated file (mail.log.1): Inode tells which file Offset is in.
type Position struct {
	Path   string
	Inode  uint64
	Offset int64
	// Fingerprint is the FNV-1a 64 hash of the file's first line: the bytes
	// before its first "\n", at most the first 1 KiB. It is 0 while the
	// file holds neither a newline nor 1 KiB. It never changes while a file
	// only grows, so a new content under the same inode (copytruncate, or a
	// reused inode number) shows as a different fingerprint.
	Fingerprint uint64
	// Cursor is, for a journal source (Path starting with JournalPrefix),
	// the journal's cursor of the last entry handed out; the other fields
	// are then zero.
	Cursor string
}

// Line is one complete line of a log, without its newline.
//
// Text belongs to the receiver, read-only: the source never reuses it, and
// the receiver must not write to it (it is the memory of the string
// nxadm/tail made for the line, handed over without a copy). A receiver may
// keep it as long as it likes.
type Line struct {
	Path string   // the configured path (not the rotated name)
	Text []byte   // the line without "\n" (and without a trailing "\r")
	Pos  Position // the position just after this line
	// Skipped is set instead of Text for a line that was not handed out
	// whole: longer than the limit (Text is nil). The daemon counts it.
	Skipped bool
}

// A Source sends lines until ctx is done, then returns nil. It sends them in
// batches: each is a non-empty slice of lines in the order of the log,
// owned by the receiver from then on (the source never touches a slice it
// sent, nor its lines). Lines of one log never reorder across batches;
// batches of different sources on one channel interleave. It never closes
// out; the caller owns the channel. An error return means the source cannot
// go on (it is not returned for a missing file: the source waits for it).
type Source interface {
	Run(ctx context.Context, out chan<- []Line) error
}

// Start says where a log is read from when it is opened for the first time
// by this daemon.
type Start struct {
	// Resume is the stored position, if any. When its file is still there
	// (same inode and fingerprint), reading resumes at its offset; when the
	// file was rotated meanwhile, the rest of the rotated file (found by
	// inode beside the log) is read first, then the new one from its start.
	Resume Position
	// Since applies when there is no stored position: only lines from this
	// time on are read (the daemon passes now - find_time), found by
	// timestamps in the file; zero reads the whole file.
	Since time.Time
}
