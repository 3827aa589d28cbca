package source

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// JournalPrefix starts the name (Line.Path, Position.Path) of a journal
// source: "journal:" and its matches joined by blanks.
const JournalPrefix = "journal:"

// JournalName is the name of the journal source with these matches.
func JournalName(matches []string) string {
	name := JournalPrefix
	for i, m := range matches {
		if i > 0 {
			name += " "
		}
		name += m
	}
	return name
}

// JournalOptions configures a Journal.
type JournalOptions struct {
	// Matches are journalctl's match arguments: FIELD=value, and "+" for
	// a disjunction (see journalctl(1)).
	Matches []string
	// Directory, when set, is the journal directory read instead of the
	// system journal (journalctl --directory).
	Directory string
	// Journalctl is the program run; default "journalctl".
	Journalctl string
	// MaxLine is the longest line handed out; longer entries are skipped
	// and counted. Default 64 KiB.
	MaxLine int
	// Restart is how long a journalctl that ended is waited for before it
	// is run again; default 1 s.
	Restart time.Duration
}

// Journal follows the systemd journal through `journalctl --follow
// --output=json`, no cgo and no libsystemd. Each entry becomes one line in
// the RFC 3339 syslog form Postfix and others also write to files,
//
//	2026-11-28T11:48:51.489061+00:00 HOST IDENTIFIER[PID]: MESSAGE
//
// built from the entry's fields, so that the same filters match it. Its
// Position carries the entry's cursor: a restart resumes after the last
// entry the store committed (--after-cursor), exactly. Entries whose host
// name or identifier holds anything but the characters of host names and
// program names (a blank, a bracket) are skipped and counted: the header a
// filter trusts is never text a logging program could shape. A message's
// line breaks become blanks.
type Journal struct {
	name  string
	start Start
	opts  JournalOptions
	log   *slog.Logger

	running     atomic.Bool
	lines, skip atomic.Int64
	mu          sync.Mutex
	pos         Position // the last entry handed out
}

// NewJournal returns a Journal source named JournalName(opts.Matches),
// starting after start.Resume's cursor if it has one, else at start.Since
// (zero: only new entries).
func NewJournal(start Start, logger *slog.Logger, opts JournalOptions) *Journal {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Journalctl == "" {
		opts.Journalctl = "journalctl"
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.Restart <= 0 {
		opts.Restart = time.Second
	}
	j := &Journal{name: JournalName(opts.Matches), start: start, opts: opts, log: logger}
	j.pos = start.Resume
	j.pos.Path = j.name
	return j
}

// Stats reports what the source has read: Path is its name, Open whether
// journalctl runs, Pos.Cursor the last entry handed out.
func (j *Journal) Stats() FileStats {
	j.mu.Lock()
	pos := j.pos
	j.mu.Unlock()
	return FileStats{Path: j.name, Open: j.running.Load(), Lines: j.lines.Load(), Skipped: j.skip.Load(), Pos: pos}
}

// args returns journalctl's arguments, to start after cursor if set.
func (j *Journal) args(cursor string) []string {
	args := []string{"--follow", "--output=json", "--all", "--no-pager", "--quiet",
		"--output-fields=MESSAGE,_HOSTNAME,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,_COMM"}
	if j.opts.Directory != "" {
		args = append(args, "--directory="+j.opts.Directory)
	}
	switch {
	case cursor != "":
		args = append(args, "--after-cursor="+cursor)
	case !j.start.Since.IsZero():
		args = append(args, "--since=@"+strconv.FormatInt(j.start.Since.Unix(), 10))
	default:
		args = append(args, "--lines=0") // only what comes from now on
	}
	return append(args, j.opts.Matches...)
}

// maxRestart is the longest wait before journalctl is run again.
const maxRestart = time.Minute

// Run follows the journal until ctx is done, then returns nil. A journalctl
// that ends or fails is run again from the last entry handed out, after
// opts.Restart, and twice as long each time it ended within a minute (up
// to maxRestart: a machine without a journal does not get a journalctl a
// second). The same failure is logged as a warning once, then at debug
// level.
func (j *Journal) Run(ctx context.Context, out chan<- []Line) error {
	delay, last := j.opts.Restart, ""
	for {
		j.mu.Lock()
		cursor := j.pos.Cursor
		j.mu.Unlock()
		began := time.Now()
		err := j.follow(ctx, cursor, out)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(began) > maxRestart {
			delay = j.opts.Restart
		}
		if msg := err.Error(); msg != last {
			j.log.Warn("journalctl ended; running it again", "err", err, "in", delay)
			last = msg
		} else {
			j.log.Debug("journalctl ended again", "err", err, "in", delay)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRestart)
	}
}

// follow runs one journalctl and hands out its entries until it ends.
func (j *Journal) follow(ctx context.Context, cursor string, out chan<- []Line) error {
	cmd := exec.CommandContext(ctx, j.opts.Journalctl, j.args(cursor)...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("source: journal: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("source: journal: %w", err)
	}
	j.running.Store(true)
	defer j.running.Store(false)
	rerr := j.read(ctx, bufio.NewReaderSize(stdout, 64<<10), out)
	_ = cmd.Process.Kill()
	werr := cmd.Wait()
	if rerr != nil {
		return rerr
	}
	if msg := bytes.TrimSpace(stderr.Bytes()); len(msg) > 0 {
		return fmt.Errorf("source: journal: %v: %s", werr, msg)
	}
	if werr == nil {
		werr = errors.New("journalctl exited")
	}
	return fmt.Errorf("source: journal: %w", werr)
}

// journalBatch is the most entries sent at once.
const journalBatch = 512

// read hands out the entries r yields, a batch whenever r has nothing more
// buffered, until r ends or ctx is done.
func (j *Journal) read(ctx context.Context, r *bufio.Reader, out chan<- []Line) error {
	var batch []Line
	send := func() bool {
		if len(batch) == 0 {
			return true
		}
		select {
		case out <- batch:
			last := batch[len(batch)-1].Pos
			j.mu.Lock()
			j.pos = last
			j.mu.Unlock()
			batch = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		raw, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// An entry longer than the buffer: skip it whole (its cursor is
			// lost; the next entry's cursor moves past it).
			j.skip.Add(1)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			continue
		}
		if len(raw) > 0 && err == nil {
			if l, ok := j.entry(raw); ok {
				batch = append(batch, l)
			}
		}
		if err != nil {
			if !send() {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("source: journal: %w", err)
		}
		if len(batch) >= journalBatch || r.Buffered() == 0 {
			if !send() {
				return nil
			}
		}
	}
}

// journalEntry is the part of journalctl's JSON that makes a line. A field
// is a string, an array of bytes (not UTF-8, or binary), or null (too long
// without --all, or several values).
type journalEntry struct {
	Cursor   string          `json:"__CURSOR"`
	Realtime string          `json:"__REALTIME_TIMESTAMP"`
	Message  json.RawMessage `json:"MESSAGE"`
	Host     json.RawMessage `json:"_HOSTNAME"`
	Ident    json.RawMessage `json:"SYSLOG_IDENTIFIER"`
	SyslogPI json.RawMessage `json:"SYSLOG_PID"`
	PID      json.RawMessage `json:"_PID"`
	Comm     json.RawMessage `json:"_COMM"`
}

// entry turns one JSON entry into a line; ok is false for an entry that is
// skipped (and counted) or carries no cursor.
func (j *Journal) entry(raw []byte) (Line, bool) {
	var e journalEntry
	if err := json.Unmarshal(raw, &e); err != nil || e.Cursor == "" {
		j.skip.Add(1)
		return Line{}, false
	}
	pos := Position{Path: j.name, Cursor: e.Cursor}
	us, err := strconv.ParseInt(e.Realtime, 10, 64)
	msg, ok1 := fieldBytes(e.Message)
	host, ok2 := fieldBytes(e.Host)
	ident, _ := fieldBytes(e.Ident)
	if len(ident) == 0 {
		ident, _ = fieldBytes(e.Comm)
	}
	pid, _ := fieldBytes(e.SyslogPI)
	if len(pid) == 0 {
		pid, _ = fieldBytes(e.PID)
	}
	if err != nil || !ok1 || !ok2 || !nameBytes(host) || !nameBytes(ident) || !digits(pid) {
		j.skip.Add(1)
		return Line{Path: j.name, Pos: pos, Skipped: true}, true
	}
	text := make([]byte, 0, 40+len(host)+len(ident)+len(pid)+len(msg))
	text = time.UnixMicro(us).Local().AppendFormat(text, "2006-01-02T15:04:05.000000-07:00")
	text = append(text, ' ')
	text = append(text, host...)
	text = append(text, ' ')
	text = append(text, ident...)
	if len(pid) > 0 {
		text = append(text, '[')
		text = append(text, pid...)
		text = append(text, ']')
	}
	text = append(text, ": "...)
	for _, c := range msg {
		if c == '\n' || c == '\r' {
			c = ' '
		}
		text = append(text, c)
	}
	if len(text) > j.opts.MaxLine {
		j.skip.Add(1)
		return Line{Path: j.name, Pos: pos, Skipped: true}, true
	}
	j.lines.Add(1)
	return Line{Path: j.name, Text: text, Pos: pos}, true
}

// fieldBytes decodes a journal field: a JSON string, or an array of byte
// values. ok is false for anything else (null: a missing or multi-valued
// field is no field at all, but absent counts as empty and ok).
func fieldBytes(raw json.RawMessage) ([]byte, bool) {
	if len(raw) == 0 {
		return nil, true
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false
		}
		return []byte(s), true
	case '[':
		var bs []byte
		var ints []int
		if err := json.Unmarshal(raw, &ints); err != nil {
			return nil, false
		}
		for _, v := range ints {
			if v < 0 || v > 255 {
				return nil, false
			}
			bs = append(bs, byte(v))
		}
		return bs, true
	}
	return nil, false
}

// nameBytes reports whether b is a non-empty host or program name: letters,
// digits and . _ - / @ only (postfix/smtpd, postfix-in/smtpd, dovecot,
// mx.example.org).
func nameBytes(b []byte) bool {
	if len(b) == 0 || len(b) > 255 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-', c == '/', c == '@':
		default:
			return false
		}
	}
	return true
}

// digits reports whether b is empty or all ASCII digits.
func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) <= 10
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
