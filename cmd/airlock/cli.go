package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// helpDoc is one command's help, written once where the command defines its flags (newFlagSet):
// --help, -h and 'airlock help CMD' print it, 'airlock man' renders it as a manual page and
// 'airlock completion' completes its flags.
type helpDoc struct {
	name    string // the command as typed after airlock: "tools", "plugin pack"
	usage   string // "Usage: airlock …" lines, a blank line, then the description
	example string // one example command a line
	fs      *flag.FlagSet
}

// write prints the help as --help shows it: description, example, flags.
func (h *helpDoc) write(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nExample:\n%s\n\nFlags:\n", strings.TrimSpace(h.usage), strings.TrimRight(h.example, "\n"))
	out := h.fs.Output()
	h.fs.SetOutput(w)
	h.fs.PrintDefaults()
	h.fs.SetOutput(out)
}

// synopsis returns the usage lines without "Usage: " (the lines up to the first blank line).
func (h *helpDoc) synopsis() []string {
	head, _, _ := strings.Cut(strings.TrimSpace(h.usage), "\n\n")
	lines := strings.Split(head, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(strings.TrimPrefix(l, "Usage:"))
	}
	return lines
}

// description returns the text after the usage lines.
func (h *helpDoc) description() string {
	_, body, _ := strings.Cut(strings.TrimSpace(h.usage), "\n\n")
	return body
}

// summary is the first sentence of the description, for a manual page's NAME line and the
// shells' completion menus.
func (h *helpDoc) summary() string {
	d := strings.Join(strings.Fields(h.description()), " ")
	if i := strings.Index(d, ". "); i > 0 {
		d = d[:i]
	}
	if i := strings.Index(d, " ("); i > 0 {
		d = d[:i]
	}
	return strings.TrimSuffix(d, ".")
}

// newFlagSet returns the flag set of the command name, with its help: usage (the "Usage:" lines,
// a blank line, the description) and example. It records the help in e, for the usage hint of
// a mistake and for 'airlock man' and 'airlock completion'.
func newFlagSet(e *env, name, usage, example string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr) // parse silences the flag package's own messages and reports them itself
	h := &helpDoc{name: name, usage: usage, example: example, fs: fs}
	fs.Usage = func() { h.write(e.stdout) }
	e.help = h
	return fs
}

// parse parses args into fs. Flags may come before, between and after the positional
// arguments (airlock call --config X TOOL and airlock call TOOL --config X are the same); "--"
// ends the flags. fs.Args() are then the positional arguments, in order. -h and --help print
// the command's help once and return errHelp; a mistake is a usage error of one line.
func parse(fs *flag.FlagSet, args []string) error {
	help, out := fs.Usage, fs.Output()
	fs.Usage = func() {} // the flag package calls it on errors and on -h: parse decides instead
	fs.SetOutput(io.Discard)
	defer func() { fs.Usage = help; fs.SetOutput(out) }()
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			help()
			return errHelp
		}
		if err != nil {
			return usagef("%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if endedByDashes(fs, args, len(args)-len(rest)) {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// endedByDashes reports whether the flag package stopped parsing args because of a "--" (it
// consumed n arguments), not at a positional argument; a "--" that is a flag's value
// (--note --) does not end the flags.
func endedByDashes(fs *flag.FlagSet, args []string, n int) bool {
	if n == 0 || args[n-1] != "--" {
		return false
	}
	if n >= 2 {
		prev := args[n-2]
		name := strings.TrimLeft(prev, "-")
		if strings.HasPrefix(prev, "-") && !strings.Contains(name, "=") {
			if f := fs.Lookup(name); f != nil && !isBoolFlag(f) {
				return false // "--" was that flag's value
			}
		}
	}
	return true
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// atMost refuses more than n positional arguments; hint ends the message.
func atMost(fs *flag.FlagSet, n int, hint string) error {
	if fs.NArg() > n {
		return usagef("unexpected arguments %q%s", fs.Args()[n:], hint)
	}
	return nil
}
