package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// cmdHelp is the help of one command, or of a sub-command that has its own (plugin pack).
type cmdHelp struct {
	path    []string // ["plugin", "pack"]
	summary string
	doc     *helpDoc
	subs    []string // a command's sub-commands, completed after it
	// own lists the sub-commands with their own help (and flags); the others share the
	// command's.
	own map[string]bool
}

func (c cmdHelp) name() string { return strings.Join(c.path, " ") }

// helpTree returns the help of every command and of every sub-command that has its own, in the
// order of 'airlock help'. It runs each with --help, output discarded: --help does nothing else,
// so the manual pages and completions are made from exactly what --help prints.
func helpTree() []cmdHelp {
	helpOf := func(c command, args ...string) *helpDoc {
		e := &env{stdout: io.Discard, stderr: io.Discard}
		c.run(context.Background(), e, append(args, "--help"))
		return e.help
	}
	var tree []cmdHelp
	for _, c := range commands() {
		top := cmdHelp{path: []string{c.name}, summary: c.summary, doc: helpOf(c), subs: c.subs, own: map[string]bool{}}
		var subs []cmdHelp
		for _, s := range c.subs {
			if d := helpOf(c, s); d.name != top.doc.name {
				top.own[s] = true
				subs = append(subs, cmdHelp{path: []string{c.name, s}, summary: d.summary(), doc: d})
			}
		}
		tree = append(append(tree, top), subs...)
	}
	return tree
}

// flagInfo is a flag as completions and manual pages show it.
type flagInfo struct {
	name, arg, usage, def string
}

func flagsOf(fs *flag.FlagSet) []flagInfo {
	var out []flagInfo
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		fi := flagInfo{name: f.Name, arg: arg, usage: usage}
		switch f.DefValue {
		case "", "false", "0", "0s", "[]", "map[]":
		default:
			fi.def = f.DefValue
		}
		out = append(out, fi)
	})
	return out
}

// short is the first line of a flag's usage, for completion menus.
func (f flagInfo) short() string {
	s, _, _ := strings.Cut(f.usage, "\n")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func runCompletion(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "completion", `
Usage: airlock completion bash|zsh|fish

Prints a script that completes airlock's commands, sub-commands and flags in that shell, made
from the same help text as --help. Load it once per shell, or install it where the shell looks:

  bash   source <(airlock completion bash)
         airlock completion bash > /etc/bash_completion.d/airlock
  zsh    airlock completion zsh > "${fpath[1]}/_airlock"   # then restart zsh (compinit)
  fish   airlock completion fish > ~/.config/fish/completions/airlock.fish`, `
  airlock completion bash > ~/.local/share/bash-completion/completions/airlock`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := atMost(fs, 1, ""); err != nil {
		return err
	}
	switch fs.Arg(0) {
	case "bash":
		return writeBashCompletion(e.stdout, helpTree())
	case "zsh":
		return writeZshCompletion(e.stdout, helpTree())
	case "fish":
		return writeFishCompletion(e.stdout, helpTree())
	case "":
		return usagef("name the shell: airlock completion bash|zsh|fish")
	default:
		return usagef("shell %q: airlock completes bash, zsh and fish", fs.Arg(0))
	}
}

// completionCases returns, for each command line prefix that has its own flags ("plugin pack",
// then "tools"), the flags; more specific prefixes first.
func completionCases(tree []cmdHelp) (specific, general []cmdHelp) {
	for _, c := range tree {
		if len(c.path) > 1 {
			specific = append(specific, c)
		} else {
			general = append(general, c)
		}
	}
	return specific, general
}

func commandNames(tree []cmdHelp) []string {
	names := []string{"help"}
	for _, c := range tree {
		if len(c.path) == 1 {
			names = append(names, c.path[0])
		}
	}
	return names
}

func flagWords(c cmdHelp) string {
	var w []string
	for _, f := range flagsOf(c.doc.fs) {
		w = append(w, "--"+f.name)
	}
	return strings.Join(w, " ")
}

func writeBashCompletion(w io.Writer, tree []cmdHelp) error {
	specific, general := completionCases(tree)
	var b strings.Builder
	fmt.Fprintf(&b, `# bash completion for airlock, made by 'airlock completion bash' from the commands' --help.
# Load it with: source <(airlock completion bash)

_airlock_subs() {
    case $1 in
`)
	for _, c := range general {
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, "    %s) echo %q ;;\n", c.path[0], strings.Join(c.subs, " "))
		}
	}
	fmt.Fprintf(&b, `    esac
}

_airlock_flags() {
    case "$1 $2" in
`)
	for _, c := range specific {
		fmt.Fprintf(&b, "    %q) echo %q; return ;;\n", c.name(), flagWords(c))
	}
	fmt.Fprintf(&b, `    esac
    case $1 in
`)
	for _, c := range general {
		fmt.Fprintf(&b, "    %s) echo %q ;;\n", c.path[0], flagWords(c))
	}
	fmt.Fprintf(&b, `    esac
}

_airlock() {
    local cur=${COMP_WORDS[COMP_CWORD]} first=1
    COMPREPLY=()
    if [[ ${COMP_WORDS[1]} == help ]]; then
        first=2
    fi
    local pos=$((COMP_CWORD - first)) cmd=${COMP_WORDS[first]} sub=
    if ((pos > 1)); then
        sub=${COMP_WORDS[first + 1]}
    fi
    local words=
    if ((pos == 0)); then
        words=%q
    elif [[ $cur == -* ]]; then
        words=$(_airlock_flags "$cmd" "$sub")
    elif ((pos == 1)); then
        words=$(_airlock_subs "$cmd")
    fi
    if [[ -n $words ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
}
complete -o default -F _airlock airlock
`, strings.Join(commandNames(tree), " "))
	_, err := io.WriteString(w, b.String())
	return err
}

// zshQuote quotes s for a zsh (or fish) single-quoted string.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func writeZshCompletion(w io.Writer, tree []cmdHelp) error {
	specific, general := completionCases(tree)
	item := func(name, desc string) string {
		return zshQuote(strings.ReplaceAll(name, ":", `\:`) + ":" + desc)
	}
	flagItems := func(c cmdHelp) string {
		var items []string
		for _, f := range flagsOf(c.doc.fs) {
			items = append(items, item("--"+f.name, f.short()))
		}
		return strings.Join(items, " ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, `#compdef airlock
# zsh completion for airlock, made by 'airlock completion zsh' from the commands' --help.
# Install it as _airlock in a directory of $fpath, then restart zsh.

_airlock() {
    local -a reply
    local first=2
    if [[ ${words[2]} == help ]]; then
        first=3
    fi
    local pos=$((CURRENT - first)) cmd=${words[first]} sub=
    if ((pos > 1)); then
        sub=${words[first + 1]}
    fi
    if ((pos == 0)); then
        reply=(%s)
        _describe -t commands 'airlock command' reply
        return
    fi
    if [[ $PREFIX == -* ]]; then
        case "$cmd $sub" in
`, func() string {
		items := []string{item("help", "show a command's help")}
		for _, c := range general {
			items = append(items, item(c.path[0], c.summary))
		}
		return strings.Join(items, " ")
	}())
	for _, c := range specific {
		fmt.Fprintf(&b, "        %s) reply=(%s) ;;\n", zshQuote(c.name()), flagItems(c))
	}
	fmt.Fprintf(&b, "        esac\n        if ((${#reply} == 0)); then\n            case $cmd in\n")
	for _, c := range general {
		fmt.Fprintf(&b, "            %s) reply=(%s) ;;\n", c.path[0], flagItems(c))
	}
	fmt.Fprintf(&b, `            esac
        fi
        _describe -t flags 'flag' reply
        return
    fi
    if ((pos == 1)); then
        case $cmd in
`)
	for _, c := range general {
		if len(c.subs) > 0 {
			fmt.Fprintf(&b, "        %s) reply=(%s) ;;\n", c.path[0], strings.Join(c.subs, " "))
		}
	}
	fmt.Fprintf(&b, `        esac
        if ((${#reply})); then
            _describe -t commands 'sub-command' reply
            return
        fi
    fi
    _files
}

if [[ $funcstack[1] == _airlock ]]; then
    _airlock "$@"
else
    compdef _airlock airlock
fi
`)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeFishCompletion(w io.Writer, tree []cmdHelp) error {
	var b strings.Builder
	fmt.Fprintf(&b, `# fish completion for airlock, made by 'airlock completion fish' from the commands' --help.
# Install it as ~/.config/fish/completions/airlock.fish.

# __airlock_at CMD [SUB]: the command line so far is airlock [help] CMD [SUB] …
function __airlock_at
    set -l words (commandline -opc)
    if test "$words[2]" = help
        set -e words[2]
    end
    test "$words[2]" = "$argv[1]"; or return 1
    if set -q argv[2]
        test "$words[3]" = "$argv[2]"; or return 1
    end
end

# __airlock_expects N [CMD]: the next word is the Nth after airlock [help] (and follows CMD)
function __airlock_expects
    set -l words (commandline -opc)
    if test "$words[2]" = help
        set -e words[2]
    end
    test (count $words) -eq $argv[1]; or return 1
    if set -q argv[2]
        test "$words[2]" = "$argv[2]"; or return 1
    end
end

complete -c airlock -n '__airlock_expects 1' -f -a help -d %s
`, zshQuote("show a command's help"))
	flagLines := func(cond string, c cmdHelp) {
		for _, f := range flagsOf(c.doc.fs) {
			req := ""
			if f.arg != "" {
				req = " -r"
			}
			fmt.Fprintf(&b, "complete -c airlock -n %s -l %s%s -d %s\n", zshQuote(cond), f.name, req, zshQuote(f.short()))
		}
	}
	for _, c := range tree {
		if len(c.path) > 1 {
			flagLines("__airlock_at "+c.name(), c)
			continue
		}
		name := c.path[0]
		fmt.Fprintf(&b, "\ncomplete -c airlock -n '__airlock_expects 1' -f -a %s -d %s\n", name, zshQuote(c.summary))
		for _, s := range c.subs {
			fmt.Fprintf(&b, "complete -c airlock -n '__airlock_expects 2 %s' -f -a %s\n", name, s)
		}
		if len(c.own) == 0 {
			flagLines("__airlock_at "+name, c)
			continue
		}
		for _, s := range c.subs { // the command's flags belong to the sub-commands without help of their own
			if !c.own[s] {
				flagLines("__airlock_at "+name+" "+s, c)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func runMan(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "man", `
Usage: airlock man --dir DIR

Writes the manual pages, made from the same help text as --help: airlock(1) and one page a
command (airlock-tools(1)), or a sub-command with help of its own (airlock-plugin-pack(1)).`, `
  airlock man --dir /usr/local/share/man/man1 && man airlock-call
  airlock man --dir /tmp/man && man -l /tmp/man/airlock-grant.1`)
	dir := fs.String("dir", "", "the `directory` to write the pages to (created if need be)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := atMost(fs, 0, ""); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("say where: airlock man --dir DIR")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	pages := manPages(helpTree(), buildVersion())
	for _, p := range pages {
		if err := os.WriteFile(filepath.Join(*dir, p.file), []byte(p.text), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "wrote %d manual pages to %s\n", len(pages), *dir)
	return nil
}

type manPage struct{ file, text string }

// manPages renders airlock(1) and a page for each command of tree.
func manPages(tree []cmdHelp, version string) []manPage {
	pages := []manPage{{"airlock.1", manIndex(tree, version)}}
	for _, c := range tree {
		pages = append(pages, manPage{"airlock-" + strings.Join(c.path, "-") + ".1", manCommand(c, version)})
	}
	return pages
}

// roff escapes text for a roff text line.
func roff(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffText writes paragraphs: filled text, or as-is where a paragraph has indented lines
// (commands, YAML, lists).
func roffText(b *strings.Builder, text string) {
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		lines := strings.Split(para, "\n")
		pre := false
		for _, l := range lines {
			pre = pre || strings.HasPrefix(l, " ")
		}
		if pre {
			b.WriteString(".nf\n")
		}
		for _, l := range lines {
			b.WriteString(roff(l) + "\n")
		}
		if pre {
			b.WriteString(".fi\n")
		}
	}
}

func manHeader(b *strings.Builder, title, version string) {
	fmt.Fprintf(b, ".TH %s 1 \"\" \"airlock %s\" \"airlock manual\"\n", strings.ToUpper(roff(title)), roff(version))
}

func manIndex(tree []cmdHelp, version string) string {
	var b strings.Builder
	manHeader(&b, "airlock", version)
	b.WriteString(".SH NAME\nairlock \\- " + roff(strings.TrimSuffix(usageIntro, ".")) + "\n")
	b.WriteString(".SH SYNOPSIS\n.B airlock\n\\fICOMMAND\\fR [\\fIflags\\fR]\n.SH DESCRIPTION\n")
	roffText(&b, usageIntro+"\n"+usageSecrets+"\n\n"+usageFooter)
	b.WriteString(".SH COMMANDS\n")
	for _, c := range tree {
		fmt.Fprintf(&b, ".TP\n.BR airlock\\-%s (1)\n%s\n", roff(strings.Join(c.path, "-")), roff(c.summary))
	}
	return b.String()
}

func manCommand(c cmdHelp, version string) string {
	var b strings.Builder
	manHeader(&b, "airlock-"+strings.Join(c.path, "-"), version)
	fmt.Fprintf(&b, ".SH NAME\nairlock\\-%s \\- %s\n.SH SYNOPSIS\n.nf\n", roff(strings.Join(c.path, "-")), roff(c.summary))
	for _, l := range c.doc.synopsis() {
		b.WriteString(roff(l) + "\n")
	}
	b.WriteString(".fi\n.SH DESCRIPTION\n")
	roffText(&b, c.doc.description())
	if flags := flagsOf(c.doc.fs); len(flags) > 0 {
		b.WriteString(".SH OPTIONS\n")
		for _, f := range flags {
			fmt.Fprintf(&b, ".TP\n\\fB\\-\\-%s\\fR", roff(f.name))
			if f.arg != "" {
				fmt.Fprintf(&b, " \\fI%s\\fR", roff(f.arg))
			}
			b.WriteString("\n")
			usage := f.usage
			if f.def != "" {
				usage += fmt.Sprintf(" (default %q)", f.def)
			}
			for i, l := range strings.Split(usage, "\n") {
				if i > 0 {
					b.WriteString(".br\n")
				}
				b.WriteString(roff(l) + "\n")
			}
		}
	}
	b.WriteString(".SH EXAMPLES\n.nf\n")
	for _, l := range strings.Split(strings.Trim(c.doc.example, "\n"), "\n") {
		b.WriteString(roff(l) + "\n")
	}
	b.WriteString(".fi\n.SH SEE ALSO\n.BR airlock (1)")
	if len(c.path) > 1 {
		fmt.Fprintf(&b, ",\n.BR airlock\\-%s (1)", roff(c.path[0]))
	}
	b.WriteString("\n")
	return b.String()
}
