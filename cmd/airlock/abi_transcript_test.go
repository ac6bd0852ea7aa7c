package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// transcriptStep is one step of the transcript, as the abireplay plugin reads it.
type transcriptStep struct {
	Fn   string   `json:"fn"`
	Args []uint64 `json:"args"`
	Want *uint64  `json:"want,omitempty"`
	Line int      `json:"line"`
}

var stepLine = regexp.MustCompile(`^plugin → host\s+([a-z0-9_]+)\(([^)]*)\)\s*(?:→\s*(\S+))?\s*$`)

// parseTranscript reads the text block of pdk/ABI.md's "A call, byte by byte" section.
func parseTranscript(t *testing.T, doc string) (input, output string, steps []transcriptStep) {
	t.Helper()
	_, section, ok := strings.Cut(doc, "\n## A call, byte by byte\n")
	if !ok {
		t.Fatal(`pdk/ABI.md has no section "A call, byte by byte"`)
	}
	_, block, ok := strings.Cut(section, "```text\n")
	if !ok {
		t.Fatal("the section has no ```text block")
	}
	block, _, _ = strings.Cut(block, "```")
	first := strings.Count(doc[:strings.Index(doc, block)], "\n") + 1
	num := func(line int, s string) uint64 {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("ABI.md line %d: %q is not a number", line, s)
		}
		return v
	}
	for i, line := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
		lineNo := first + i
		if j := strings.Index(line, " ; "); j >= 0 {
			line = line[:j]
		}
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "host") && strings.Contains(line, "input: "):
			_, input, _ = strings.Cut(line, "input: ")
		case strings.HasPrefix(line, "host") && strings.Contains(line, "output: "):
			_, output, _ = strings.Cut(line, "output: ")
		case strings.HasPrefix(line, "plugin → host"):
			m := stepLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("ABI.md line %d: cannot read %q", lineNo, line)
			}
			s := transcriptStep{Fn: m[1], Line: lineNo, Args: []uint64{}}
			for _, a := range strings.Split(m[2], ",") {
				if a = strings.TrimSpace(a); a != "" {
					s.Args = append(s.Args, num(lineNo, a))
				}
			}
			if m[3] != "" && m[3] != "…" {
				w := num(lineNo, m[3])
				s.Want = &w
			}
			steps = append(steps, s)
		case strings.HasPrefix(line, "plugin") && strings.Contains(line, "return "):
			_, v, _ := strings.Cut(line, "return ")
			steps = append(steps, transcriptStep{Fn: "return", Args: []uint64{num(lineNo, strings.TrimSpace(v))}, Line: lineNo})
		case line == "":
		default:
			t.Fatalf("ABI.md line %d: cannot read %q", lineNo, line)
		}
	}
	if input == "" || output == "" || len(steps) < 5 || steps[len(steps)-1].Fn != "return" {
		t.Fatalf("transcript incomplete: input %q output %q, %d steps", input, output, len(steps))
	}
	return input, output, steps
}

// TestABITranscript replays pdk/ABI.md's byte-by-byte transcript against the real host, so the
// document cannot drift from what the host does.
func TestABITranscript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a WebAssembly module")
	}
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "pdk", "ABI.md"))
	if err != nil {
		t.Fatal(err)
	}
	input, output, steps := parseTranscript(t, string(doc))
	script, _ := json.Marshal(steps)

	wasmPath := filepath.Join(t.TempDir(), "abireplay.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-buildmode=c-shared", "-o", wasmPath,
		"-ldflags", "-X main.script="+base64.StdEncoding.EncodeToString(script), "./cmd/airlock/testdata/abireplay")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building abireplay: %v\n%s", err, out)
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("abireplay.yaml", []byte(`abi: 1
name: abireplay
version: 0.0.1
publisher: airlock-tests
description: Replays pdk/ABI.md's transcript.
module: {path: abireplay.wasm}
network: [{host: api.example.test}]
tools:
  - name: replay
    description: Replay the transcript.
    input_schema: {type: object}
`))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	m.Module.SHA256 = hex.EncodeToString(sum[:])
	h, _ := hosttest.New(t, host.Config{})
	g := &manifest.Grant{Connector: "abireplay", Tools: []string{"*"}, Hosts: []string{"*"}}
	ctx := context.Background()
	if err := h.LoadModule(ctx, m, wasm, g); err != nil {
		t.Fatal(err)
	}
	res := h.Call(ctx, host.CallRequest{Tool: "abireplay.replay", Arguments: json.RawMessage(input)})
	if !res.OK {
		t.Fatalf("the host does not do what pdk/ABI.md says: %s", res.Error.Message)
	}
	if string(res.Data) != output {
		t.Errorf("output = %s, the transcript says %s", res.Data, output)
	}
	if res.Meta.Requests != 1 {
		t.Errorf("requests = %d, want the one refused request", res.Meta.Requests)
	}
}
