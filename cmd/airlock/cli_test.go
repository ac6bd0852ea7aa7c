package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/NAME, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// cleanEnv unsets the AIRLOCK_* variables that flag defaults read, so help text is the same
// on every machine.
func cleanEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AIRLOCK_") && !strings.HasPrefix(k, "AIRLOCK_TEST") {
			t.Setenv(k, "")
		}
	}
}

// commandLines lists every command line a user can ask help for: each command of 'airlock
// help', and each of its sub-commands, as 'airlock help' and the help texts list them.
func commandLines(t *testing.T) [][]string {
	t.Helper()
	_, out, _ := airlock(t, "help")
	_, list, _ := strings.Cut(out, "\nCommands:\n")
	list, _, _ = strings.Cut(list, "\n\n")
	var lines [][]string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z]+) `).FindAllStringSubmatch(list, -1) {
		lines = append(lines, []string{m[1]})
		for _, c := range commands() {
			if c.name == m[1] {
				for _, s := range c.subs {
					lines = append(lines, []string{c.name, s})
				}
			}
		}
	}
	if len(lines) < 20 {
		t.Fatalf("'airlock help' lists %d commands:\n%s", len(lines), out)
	}
	return lines
}

// ownHelp reports whether the command line is a sub-command with help of its own (plugin
// pack), not one that shares its command's (agent add).
func ownHelp(t *testing.T, line []string) bool {
	if len(line) < 2 {
		return false
	}
	_, sub, _ := airlock(t, append(slices.Clone(line), "--help")...)
	_, parent, _ := airlock(t, line[0], "--help")
	return sub != parent
}

// Every way of asking for a command's help prints it once, on stdout, with exit status 0, and
// it is the help of that very command (help plugin pack is plugin pack's, not plugin build's).
func TestHelpGolden(t *testing.T) {
	cleanEnv(t)
	code, top, _ := airlock(t, "help")
	if code != exitOK {
		t.Fatalf("airlock help = %d", code)
	}
	golden(t, "help/airlock.txt", top)
	if _, bare, _ := airlock(t); bare != top {
		t.Errorf("airlock (no arguments) differs from airlock help")
	}
	files := map[string]bool{}
	for _, line := range commandLines(t) {
		name := strings.Join(line, " ")
		code, want, errOut := airlock(t, append(append([]string{}, line...), "--help")...)
		if code != exitOK || errOut != "" {
			t.Errorf("airlock %s --help = %d, stderr %q", name, code, errOut)
		}
		for _, args := range [][]string{append([]string{"help"}, line...), append(append([]string{}, line...), "-h")} {
			if code, out, errOut := airlock(t, args...); code != exitOK || out != want || errOut != "" {
				t.Errorf("airlock %s = %d, stderr %q, and stdout differs from --help's:\n%s", strings.Join(args, " "), code, errOut, cmp.Diff(want, out))
			}
		}
		if n := strings.Count(want, "Usage: airlock"); n != 1 {
			t.Errorf("airlock %s --help prints its usage %d times", name, n)
		}
		if first := strings.SplitN(want, "\n", 2)[0]; !strings.HasPrefix(first, "Usage: airlock "+line[0]) {
			t.Errorf("airlock %s --help starts with %q", name, first)
		}
		file := strings.Join(line, "-") + ".txt"
		if len(line) == 2 { // a sub-command that shares its command's help has no file of its own
			if !ownHelp(t, line) {
				continue
			}
			if !strings.HasPrefix(want, "Usage: airlock "+name) {
				t.Errorf("airlock %s --help is another command's help:\n%s", name, want)
			}
		}
		files[file] = true
		golden(t, "help/"+file, want)
	}
	entries, _ := os.ReadDir(filepath.Join("testdata", "help"))
	for _, e := range entries {
		if !files[e.Name()] && e.Name() != "airlock.txt" {
			t.Errorf("testdata/help/%s belongs to no command: remove it", e.Name())
		}
	}
	if !files["plugin-pack.txt"] || !files["init-master-key.txt"] {
		t.Errorf("plugin pack and init master-key have help of their own; got files %v", files)
	}
}

// A mistyped command gets the closest one; help help is help.
func TestUnknownCommand(t *testing.T) {
	if code, out, errOut := airlock(t, "tool"); code != exitUsage || out != "" || errOut != "airlock: unknown command \"tool\" (did you mean \"tools\"?)\nRun 'airlock help' for the list of commands.\n" {
		t.Errorf("airlock tool = %d, %q, %q", code, out, errOut)
	}
	if code, out, errOut := airlock(t, "frobnicate"); code != exitUsage || strings.Contains(errOut, "did you mean") {
		t.Errorf("airlock frobnicate = %d, %q, %q", code, out, errOut)
	}
	_, top, _ := airlock(t, "help")
	if code, out, _ := airlock(t, "help", "help"); code != exitOK || out != top {
		t.Errorf("airlock help help = %d, %q", code, out)
	}
}

// A flag a command does not have is one line and a pointer to the help, like go's; exit 2.
func TestUnknownFlag(t *testing.T) {
	for _, line := range commandLines(t) {
		code, out, errOut := airlock(t, append(append([]string{}, line...), "--no-such-flag")...)
		helpFor := line[0]
		if ownHelp(t, line) {
			helpFor = strings.Join(line, " ")
		}
		want := "airlock " + helpFor + ": flag provided but not defined: -no-such-flag\nRun 'airlock help " + helpFor + "' for usage.\n"
		if code != exitUsage || out != "" || errOut != want {
			t.Errorf("airlock %s --no-such-flag = %d, stdout %q, stderr %q; want 2, nothing, %q", strings.Join(line, " "), code, out, errOut, want)
		}
	}
	code, _, errOut := airlock(t, "tools", "--format")
	if code != exitUsage || strings.Count(errOut, "\n") != 2 || !strings.Contains(errOut, "flag needs an argument: -format") {
		t.Errorf("tools --format (no value) = %d, %q", code, errOut)
	}
}

// Flags may come before, between or after the positional arguments, for every command.
func TestFlagsAnywhere(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	keyDir := t.TempDir()
	if code, _, errOut := airlock(t, "plugin", "keygen", "--out", filepath.Join(keyDir, "acme.key")); code != exitOK {
		t.Fatalf("plugin keygen: %s", errOut)
	}
	pub := filepath.Join(keyDir, "acme.key.pub")
	for _, tc := range []struct {
		name   string
		orders [][]string // each must behave the same; CFG is a fresh configuration
		check  func(t *testing.T, code int, out, errOut string)
	}{
		{"call", [][]string{
			{"call", "--config", "CFG", "nosuch.tool"},
			{"call", "nosuch.tool", "--config", "CFG"},
			{"call", "--config=CFG", "--args", "{}", "nosuch.tool", "--timeout", "1m"},
		}, func(t *testing.T, code int, out, errOut string) {
			var res struct {
				OK    bool
				Error struct{ Code string }
			}
			if code != exitError || json.Unmarshal([]byte(out), &res) != nil || res.OK || !strings.Contains(out, "nosuch.tool") {
				t.Errorf("= %d, %q %q; want the call of nosuch.tool refused by the host", code, out, errOut)
			}
		}},
		{"agent", [][]string{
			{"agent", "--config", "CFG", "add", "bot", "--subject", "acme"},
			{"agent", "add", "bot", "--config", "CFG", "--subject", "acme"},
			{"agent", "add", "--subject", "acme", "bot", "--config", "CFG"},
		}, func(t *testing.T, code int, out, errOut string) {
			if code != exitOK || !strings.HasPrefix(out, "airlock_agent_") || !strings.Contains(errOut, "subject acme") {
				t.Errorf("= %d, %q %q", code, out, errOut)
			}
		}},
		{"trust", [][]string{
			{"trust", "add", "acme", pub, "--config", "CFG"},
			{"trust", "--config", "CFG", "add", "acme", pub},
			{"trust", "add", "--config", "CFG", "acme", pub},
		}, func(t *testing.T, code int, out, errOut string) {
			if code != exitOK || !strings.Contains(out, "publisher acme") {
				t.Errorf("= %d, %q %q", code, out, errOut)
			}
		}},
		{"grants", [][]string{
			{"grants", "slack", "--history", "--config", "CFG"},
			{"grants", "--history", "--config", "CFG", "slack"},
		}, func(t *testing.T, code int, out, errOut string) {
			if code != exitOK || !strings.Contains(out, "No grants") { // not "--history needs a connector"
				t.Errorf("= %d, %q %q", code, out, errOut)
			}
		}},
		{"audit", [][]string{
			{"audit", "search", "--json", "--config", "CFG", "--tool", "x"},
			{"audit", "--config", "CFG", "search", "--tool", "x", "--json"},
		}, func(t *testing.T, code int, out, errOut string) {
			if code != exitOK {
				t.Errorf("= %d, %q %q", code, out, errOut)
			}
		}},
		{"after --, a flag is an argument", [][]string{
			{"call", "--config", "CFG", "--", "--version"},
			{"call", "--config", "CFG", "--args", "{}", "--", "--version"},
		}, func(t *testing.T, code int, out, errOut string) {
			if code != exitError || !strings.Contains(out, `"--version"`) {
				t.Errorf("= %d, %q %q; want a call of the tool named --version", code, out, errOut)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var first string
			for i, order := range tc.orders {
				sub := filepath.Join(dir, tc.name, string(rune('a'+i)))
				os.MkdirAll(sub, 0o700)
				cfg := filepath.Join(sub, "airlock.yaml")
				os.WriteFile(cfg, []byte("state_dir: state\n"), 0o600)
				args := slices.Clone(order)
				for j := range args {
					args[j] = strings.ReplaceAll(args[j], "CFG", cfg)
				}
				code, out, errOut := airlock(t, args...)
				tc.check(t, code, out, errOut)
				got := fmtRun(code, out, errOut, sub)
				if i == 0 {
					first = got
				} else if got != first {
					t.Errorf("airlock %s behaves unlike airlock %s:\n%s", strings.Join(order, " "), strings.Join(tc.orders[0], " "), cmp.Diff(first, got))
				}
			}
		})
	}
}

// fmtRun is a run's outcome without what differs between two runs (tokens, ids, times, dirs).
func fmtRun(code int, out, errOut, dir string) string {
	s := strings.ReplaceAll(out+"\n--\n"+errOut, dir, "DIR")
	s = regexp.MustCompile(`airlock_agent_[A-Za-z0-9_-]+|"[0-9a-f]{16,}"|fingerprint [0-9a-f]+|\d{4}-\d\d-\d\dT[0-9:.]+Z?|"duration_ms": [0-9.]+`).ReplaceAllString(s, "X")
	return string(rune('0'+code)) + " " + s
}

// The completion scripts name every command, parse in their shell, and complete what a
// user types in bash.
func TestCompletion(t *testing.T) {
	cleanEnv(t)
	lines := commandLines(t)
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, script, errOut := airlock(t, "completion", shell)
		if code != exitOK || errOut != "" {
			t.Fatalf("completion %s = %d, %q", shell, code, errOut)
		}
		for _, line := range lines {
			for _, word := range line {
				if !regexp.MustCompile(`\b` + regexp.QuoteMeta(word) + `\b`).MatchString(script) {
					t.Errorf("the %s completion does not name %q (of airlock %s)", shell, word, strings.Join(line, " "))
				}
			}
		}
		for _, flag := range []string{"--config", "--args", "--upstream", "--key", "--history"} {
			if !strings.Contains(script, strings.TrimPrefix(flag, "--")) {
				t.Errorf("the %s completion does not complete %s", shell, flag)
			}
		}
		path := filepath.Join(t.TempDir(), "airlock."+shell)
		os.WriteFile(path, []byte(script), 0o644)
		if _, err := exec.LookPath(shell); err != nil {
			if shell == "bash" {
				t.Fatalf("bash is not installed")
			}
			t.Logf("%s is not installed: its script is not syntax-checked", shell)
			continue
		}
		if out, err := exec.Command(shell, "-n", path).CombinedOutput(); err != nil {
			t.Errorf("%s -n on the %s completion: %v\n%s", shell, shell, err, out)
		}
	}
	if _, err := exec.LookPath("fish"); err == nil {
		_, script, _ := airlock(t, "completion", "fish")
		path := filepath.Join(t.TempDir(), "airlock.fish")
		os.WriteFile(path, []byte(script), 0o644)
		for typed, want := range map[string]string{
			"airlock plugin pa":       "pack",
			"airlock plugin pack --o": "--out\tthe bundle file to write",
			"airlock help plu":        "plugin\tbuild, pack",
			"airlock call x --con":    "--config\tconfiguration file",
		} {
			out, err := exec.Command("fish", "--no-config", "-c", "source "+path+"; complete -C"+zshQuote(typed)).CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), want) {
				t.Errorf("fish completes %q to %q (%v), want %q…", typed, out, err, want)
			}
		}
	}
	if _, err := exec.LookPath("zsh"); err == nil {
		// The script's logic, with the completion system's _describe and _files replaced by
		// stand-ins that print what they are given.
		_, script, _ := airlock(t, "completion", "zsh")
		path := filepath.Join(t.TempDir(), "_airlock")
		os.WriteFile(path, []byte(script), 0o644)
		for typed, want := range map[string]string{
			"airlock pl":                  "plugin:build, pack",
			"airlock plugin pa":           "pack",
			"airlock help plugin pa":      "pack",
			"airlock plugin pack --o":     "--out:the bundle file to write",
			"airlock agent add bot --sub": "--subject:add: the tenant",
			"airlock call x ":             "FILES",
		} {
			words := strings.Fields(typed)
			if strings.HasSuffix(typed, " ") {
				words = append(words, "")
			}
			prog := fmt.Sprintf("compdef() { : }; _describe() { local n=${@[-1]}; print -l -- ${(P)n} }; _files() { print FILES }; source %s; words=(%s); CURRENT=%d; PREFIX=%s; _airlock",
				zshQuote(path), strings.Join(quoteAll(words), " "), len(words), zshQuote(words[len(words)-1]))
			out, err := exec.Command("zsh", "-f", "-c", prog).CombinedOutput()
			if err != nil || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(want)).Match(out) {
				t.Errorf("zsh completes %q to %q (%v), want a line starting %q", typed, out, err, want)
			}
		}
	}
	if code, _, errOut := airlock(t, "completion", "powershell"); code != exitUsage || !strings.Contains(errOut, "bash, zsh and fish") {
		t.Errorf("completion powershell = %d, %q", code, errOut)
	}

	_, script, _ := airlock(t, "completion", "bash")
	for typed, want := range map[string][]string{
		"airlock pl":                  {"plugin"},
		"airlock plugin pa":           {"pack"},
		"airlock plugin pack --o":     {"--out"},
		"airlock plugin test --ups":   {"--upstream"},
		"airlock call --conf":         {"--config"},
		"airlock call slack.x --ar":   {"--args"},
		"airlock help plugin pa":      {"pack"},
		"airlock help co":             {"completion", "connect"},
		"airlock agent add bot --sub": {"--subject"},
		"airlock init master-key --o": {"--out"},
		"airlock completion ":         {"bash", "fish", "zsh"},
		"airlock trust ":              {"add", "list", "rm"},
	} {
		words := strings.Fields(typed)
		if strings.HasSuffix(typed, " ") {
			words = append(words, "")
		}
		prog := script + "\nCOMP_WORDS=(" + strings.Join(quoteAll(words), " ") + ")\nCOMP_CWORD=" + string(rune('0'+len(words)-1)) + "\n_airlock\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command("bash", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		got := strings.Fields(string(out))
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("bash completes %q to %q, want %q", typed, got, want)
		}
	}
}

func quoteAll(words []string) []string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = zshQuote(w)
	}
	return q
}

// The manual pages: one per command and per sub-command with help of its own, from the same
// text as --help, and valid roff.
func TestManPages(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	if code, _, errOut := airlock(t, "man", "--dir", dir); code != exitOK {
		t.Fatalf("man = %d, %q", code, errOut)
	}
	if code, _, errOut := airlock(t, "man"); code != exitUsage || !strings.Contains(errOut, "--dir") {
		t.Errorf("man without --dir = %d, %q", code, errOut)
	}
	index, err := os.ReadFile(filepath.Join(dir, "airlock.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range commandLines(t) {
		_, help, _ := airlock(t, append(append([]string{}, line...), "--help")...)
		page := "airlock-" + strings.Join(line, "-") + ".1"
		if len(line) == 2 && !ownHelp(t, line) {
			page = "airlock-" + line[0] + ".1" // it shares its command's help, and page
		}
		data, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("airlock %s: %v", strings.Join(line, " "), err)
			continue
		}
		if !strings.Contains(string(index), strings.TrimSuffix(strings.ReplaceAll(page, "-", `\-`), ".1")) {
			t.Errorf("airlock(1) does not list %s", page)
		}
		// Every flag of --help is an option of the page.
		_, flags, _ := strings.Cut(help, "\nFlags:\n")
		for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z-]*)`).FindAllStringSubmatch(flags, -1) {
			if !strings.Contains(string(data), `\fB\-\-`+strings.ReplaceAll(m[1], "-", `\-`)+`\fR`) {
				t.Errorf("%s lacks --%s", page, m[1])
			}
		}
	}
	if _, err := exec.LookPath("groff"); err != nil {
		t.Log("groff is not installed: the pages are not checked with it")
		return
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	for _, p := range pages {
		var stderr bytes.Buffer
		cmd := exec.Command("groff", "-k", "-man", "-Tutf8", "-ww", "-z", p)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("groff %s: %v\n%s", filepath.Base(p), err, stderr.String())
		}
	}
	out, err := exec.CommandContext(context.Background(), "groff", "-k", "-man", "-Tutf8", filepath.Join(dir, "airlock-plugin-pack.1")).Output()
	if err != nil || !strings.Contains(string(out), "Packs a connector into one bundle file") {
		t.Errorf("airlock-plugin-pack(1) renders as:\n%s", out)
	}
}
