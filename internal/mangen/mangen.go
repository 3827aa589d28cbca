// Package mangen turns banwatch's manual pages, written in a small
// Markdown-like markup kept next to the code they describe
// (cmd/banwatchd/banwatchd.8.md, cmd/banctl/banctl.8.md,
// pkg/config/banwatch.toml.5.md), into man(7) roff, and banctl's page into
// shell completions. `make man` writes the results into man/ and
// contrib/completion/; the test fails when they are stale.
//
// The markup, line by line:
//
//	% NAME SECTION DATE       the first line: .TH
//	# TITLE                   a section (.SH); ## TITLE a subsection (.SS)
//	+ TERM                    a tagged paragraph (.TP): the next lines,
//	                          indented by two blanks, describe TERM
//	- TEXT                    a bulleted item; continuation lines indented
//	```                       a literal block, to the next ```
//	(blank line)              a new paragraph
//
// Inline, **bold**, *italic* and `code` (bold, as man pages show commands
// and keys). Everything else is text; roff's special characters are
// escaped.
package mangen

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Page is a rendered manual page.
type Page struct {
	Name    string // "banctl"
	Section string // "8"
	Roff    []byte
}

// Render turns a page's source into roff.
func Render(src []byte) (*Page, error) {
	sc := bufio.NewScanner(bytes.NewReader(src))
	var out bytes.Buffer
	p := &Page{}
	line := 0
	inCode, para := false, false
	for sc.Scan() {
		line++
		l := sc.Text()
		if line == 1 {
			f := strings.Fields(l)
			if len(f) != 4 || f[0] != "%" {
				return nil, fmt.Errorf("mangen: line 1: want %% NAME SECTION DATE, got %q", l)
			}
			p.Name, p.Section = f[1], f[2]
			fmt.Fprintf(&out, ".TH %s %s %s banwatch\n", strings.ToUpper(escape(f[1])), f[2], f[3])
			continue
		}
		if inCode {
			if strings.TrimSpace(l) == "```" {
				out.WriteString(".fi\n.RE\n")
				inCode, para = false, false
				continue
			}
			out.WriteString(literal(l) + "\n")
			continue
		}
		switch {
		case strings.TrimSpace(l) == "```":
			out.WriteString(".PP\n.RS 4\n.nf\n")
			inCode = true
		case strings.HasPrefix(l, "## "):
			fmt.Fprintf(&out, ".SS %s\n", inline(l[3:]))
			para = false
		case strings.HasPrefix(l, "# "):
			fmt.Fprintf(&out, ".SH %s\n", strings.ToUpper(inline(l[2:])))
			para = false
		case strings.HasPrefix(l, "+ "):
			fmt.Fprintf(&out, ".TP\n%s\n", inline(l[2:]))
			para = true
		case strings.HasPrefix(l, "- "):
			fmt.Fprintf(&out, ".IP \\(bu 2\n%s\n", inline(l[2:]))
			para = true
		case strings.TrimSpace(l) == "":
			if para {
				para = false
			}
		default:
			text := strings.TrimLeft(l, " ")
			if !para && !strings.HasPrefix(l, "  ") {
				out.WriteString(".PP\n")
			}
			out.WriteString(inline(text) + "\n")
			para = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mangen: %w", err)
	}
	if inCode {
		return nil, fmt.Errorf("mangen: a literal block is not closed")
	}
	if p.Name == "" {
		return nil, fmt.Errorf("mangen: empty page")
	}
	p.Roff = out.Bytes()
	return p, nil
}

var (
	boldRE   = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	italicRE = regexp.MustCompile(`\*([^*\s][^*]*)\*`)
)

// inline escapes a line of text and turns its inline markup into fonts.
// Code spans are taken as they are: an asterisk in `s*.log` is no markup.
func inline(s string) string {
	parts := strings.Split(s, "`")
	var b strings.Builder
	for i, part := range parts {
		part = escape(part)
		switch {
		case i%2 == 1 && i < len(parts)-1:
			b.WriteString(`\fB` + part + `\fR`)
		default:
			if i > 0 && i%2 == 1 {
				b.WriteString("`") // an unpaired backquote
			}
			part = boldRE.ReplaceAllString(part, `\fB$1\fR`)
			b.WriteString(italicRE.ReplaceAllString(part, `\fI$1\fR`))
		}
	}
	return guard(b.String())
}

// literal escapes a line of a literal block.
func literal(s string) string {
	return guard(escape(s))
}

// escape escapes roff's backslash and makes hyphens the ASCII minus that
// commands and options are typed with.
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}

// guard keeps a line that starts with a control character from being taken
// for a request.
func guard(s string) string {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		return `\&` + s
	}
	return s
}

// Command is a command of a page's COMMANDS section: its words ("import
// fail2ban") and the options its term names.
type Command struct {
	Words   []string
	Options []string // "--jail", ...
}

var (
	termWordRE = regexp.MustCompile(`^\*\*([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)?)\*\*`)
	optionRE   = regexp.MustCompile(`\*\*(--[a-z][a-z0-9-]*)\*\*`)
)

// Commands lists the commands of src's COMMANDS section and the options of
// its OPTIONS section (which every command but test takes).
func Commands(src []byte) (cmds []Command, global []string) {
	section := ""
	for _, l := range strings.Split(string(src), "\n") {
		if strings.HasPrefix(l, "# ") {
			section = strings.TrimSpace(l[2:])
			continue
		}
		if !strings.HasPrefix(l, "+ ") {
			continue
		}
		term := l[2:]
		switch section {
		case "COMMANDS":
			m := termWordRE.FindStringSubmatch(term)
			if m == nil {
				continue
			}
			c := Command{Words: strings.Fields(m[1])}
			for _, o := range optionRE.FindAllStringSubmatch(term, -1) {
				c.Options = append(c.Options, o[1])
			}
			cmds = append(cmds, c)
		case "OPTIONS":
			for _, o := range optionRE.FindAllStringSubmatch(term, -1) {
				global = append(global, o[1])
			}
		}
	}
	return cmds, global
}

// options returns a command's options with the global ones it takes: all
// of them, but --socket for the offline test command.
func options(c Command, global []string) []string {
	opts := append([]string(nil), c.Options...)
	for _, g := range global {
		if c.Words[0] == "test" && g == "--socket" {
			continue
		}
		opts = append(opts, g)
	}
	return opts
}

// Bash returns a bash completion script for program's commands.
func Bash(program string, cmds []Command, global []string) []byte {
	var b bytes.Buffer
	fn := "_" + program
	fmt.Fprintf(&b, "# bash completion for %s, generated from its manual page by internal/mangen (make man).\n", program)
	fmt.Fprintf(&b, "%s() {\n\tlocal cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]}\n", fn)
	var names []string
	for _, c := range cmds {
		names = append(names, c.Words[0])
	}
	fmt.Fprintf(&b, "\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\t\treturn\n\tfi\n", strings.Join(names, " "))
	b.WriteString("\tcase \"$cmd\" in\n")
	for _, c := range cmds {
		words := options(c, global)
		if len(c.Words) > 1 {
			fmt.Fprintf(&b, "\t%s)\n\t\tif [ \"$COMP_CWORD\" -eq 2 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", c.Words[0], c.Words[1])
		} else {
			fmt.Fprintf(&b, "\t%s)\n", c.Words[0])
		}
		if c.Words[0] == "test" {
			fmt.Fprintf(&b, "\t\tif [[ $cur != -* ]]; then COMPREPLY=($(compgen -f -- \"$cur\")); return; fi\n")
		}
		fmt.Fprintf(&b, "\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\t\t;;\n", strings.Join(words, " "))
	}
	b.WriteString("\tesac\n}\n")
	fmt.Fprintf(&b, "complete -o default -F %s %s\n", fn, program)
	return b.Bytes()
}

// Zsh returns a zsh completion function for program's commands.
func Zsh(program string, cmds []Command, global []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "#compdef %s\n# zsh completion for %s, generated from its manual page by internal/mangen (make man).\n", program, program)
	fmt.Fprintf(&b, "local -a cmds\ncmds=(")
	for _, c := range cmds {
		fmt.Fprintf(&b, " %s", c.Words[0])
	}
	b.WriteString(" )\nif (( CURRENT == 2 )); then\n\tcompadd -a cmds\n\treturn\nfi\ncase $words[2] in\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "%s)\n", c.Words[0])
		if len(c.Words) > 1 {
			fmt.Fprintf(&b, "\tif (( CURRENT == 3 )); then compadd %s; return; fi\n", c.Words[1])
		}
		fmt.Fprintf(&b, "\tcompadd -- %s\n", strings.Join(options(c, global), " "))
		if c.Words[0] == "test" {
			b.WriteString("\t_files\n")
		}
		b.WriteString("\t;;\n")
	}
	b.WriteString("esac\n")
	return b.Bytes()
}

// Fish returns fish completions for program's commands.
func Fish(program string, cmds []Command, global []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# fish completion for %s, generated from its manual page by internal/mangen (make man).\n", program)
	var names []string
	for _, c := range cmds {
		names = append(names, c.Words[0])
	}
	fmt.Fprintf(&b, "complete -c %s -f -n '__fish_use_subcommand' -a '%s'\n", program, strings.Join(names, " "))
	for _, c := range cmds {
		if len(c.Words) > 1 {
			fmt.Fprintf(&b, "complete -c %s -f -n '__fish_seen_subcommand_from %s' -a '%s'\n", program, c.Words[0], c.Words[1])
		}
		for _, o := range options(c, global) {
			fmt.Fprintf(&b, "complete -c %s -n '__fish_seen_subcommand_from %s' -l %s\n", program, c.Words[0], strings.TrimPrefix(o, "--"))
		}
		if c.Words[0] == "test" {
			fmt.Fprintf(&b, "complete -c %s -n '__fish_seen_subcommand_from test' -F\n", program)
		}
	}
	return b.Bytes()
}
