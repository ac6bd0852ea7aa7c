package secret_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/secret"
)

const canary = "canary-Zq9-s3cr3t-7f1e"

func TestValueRedactsEverywhere(t *testing.T) {
	v := secret.New(canary)
	type exported struct {
		Token secret.Value
	}
	type unexported struct {
		token secret.Value
	}
	type pointer struct {
		Token *secret.Value
	}

	var outputs = map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-8v", "%p", "%t"} {
		outputs["Sprintf "+verb] = fmt.Sprintf(verb, v)
		outputs["Sprintf struct "+verb] = fmt.Sprintf(verb, exported{v})
		outputs["Sprintf unexported "+verb] = fmt.Sprintf(verb, unexported{v})
		outputs["Sprintf pointer "+verb] = fmt.Sprintf(verb, pointer{&v})
		outputs["Sprintf slice "+verb] = fmt.Sprintf(verb, []secret.Value{v})
		outputs["Sprintf map "+verb] = fmt.Sprintf(verb, map[string]secret.Value{"k": v})
	}
	outputs["String"] = v.String()
	outputs["GoString"] = v.GoString()
	outputs["Sprint"] = fmt.Sprint(v, &v)
	outputs["Sprintln"] = fmt.Sprintln(v)
	outputs["Errorf"] = fmt.Errorf("wrapping %v", v).Error()

	js, err := json.Marshal(map[string]any{"v": v, "s": exported{v}, "m": map[secret.Value]int{v: 1}})
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	outputs["json"] = string(js)
	txt, err := v.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText: %v", err)
	}
	outputs["MarshalText"] = string(txt)
	x, err := xml.Marshal(exported{v})
	if err != nil {
		t.Fatalf("xml.Marshal: %v", err)
	}
	outputs["xml"] = string(x)

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("msg", "token", v, "group", exported{v})
	slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "token", v, slog.Any("any", v))
	outputs["slog"] = buf.String()

	for name, out := range outputs {
		if strings.Contains(out, canary) || strings.Contains(out, fmt.Sprintf("%x", canary)) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
	}
	for _, name := range []string{"Sprintf %v", "Sprintf %#v", "Sprintf %q", "Sprintf %x", "String", "GoString", "MarshalText", "Sprintf struct %+v"} {
		if !strings.Contains(outputs[name], secret.Redacted) {
			t.Errorf("%s = %q, want it to contain %q", name, outputs[name], secret.Redacted)
		}
	}
	if want := `{"m":{"[REDACTED]":1},"s":{"Token":"[REDACTED]"},"v":"[REDACTED]"}`; outputs["json"] != want {
		t.Errorf("json = %s, want %s", outputs["json"], want)
	}
	if !strings.Contains(outputs["slog"], `"token":"[REDACTED]"`) || !strings.Contains(outputs["slog"], "token=[REDACTED]") {
		t.Errorf("slog output = %s, want the token redacted by both handlers", outputs["slog"])
	}
}

func TestValueExpose(t *testing.T) {
	if got := secret.New(canary).Expose(); got != canary {
		t.Errorf("Expose() = %q, want the canary", got)
	}
	var zero secret.Value
	if !zero.IsZero() || zero.Expose() != "" {
		t.Errorf("zero Value: IsZero() = %v, Expose() = %q; want true, \"\"", zero.IsZero(), zero.Expose())
	}
	if !secret.New("").IsZero() {
		t.Error(`New("").IsZero() = false, want true`)
	}
	if secret.New("x").IsZero() {
		t.Error(`New("x").IsZero() = true, want false`)
	}
}

func TestEnv(t *testing.T) {
	env := map[string]string{"SLACK_BOT_TOKEN": canary, "EMPTY": ""}
	src := secret.Env{Lookup: func(name string) (string, bool) { v, ok := env[name]; return v, ok }}
	ctx := context.Background()

	v, err := src.Resolve(ctx, "env:SLACK_BOT_TOKEN")
	if err != nil || v.Expose() != canary {
		t.Fatalf("Resolve(env:SLACK_BOT_TOKEN) = %v, %v; want the canary", v, err)
	}

	tests := []struct {
		ref      string
		notFound bool
		mention  string
	}{
		{ref: "env:MISSING", notFound: true, mention: "MISSING"},
		{ref: "env:EMPTY", notFound: true, mention: "EMPTY"},
		{ref: "file:/x", mention: "env:NAME"},
		{ref: "env:", mention: "env:NAME"},
		{ref: "env:" + canary, mention: "env:NAME"}, // not a valid name: must not be echoed
		{ref: canary},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			_, err := src.Resolve(ctx, tt.ref)
			if err == nil {
				t.Fatalf("Resolve(%q) succeeded, want an error", tt.ref)
			}
			if got := errors.Is(err, secret.ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(err, ErrNotFound) = %v, want %v (err: %v)", got, tt.notFound, err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}

	t.Run("process environment", func(t *testing.T) {
		t.Setenv("AIRLOCK_TEST_SECRET", canary)
		v, err := secret.Env{}.Resolve(ctx, "env:AIRLOCK_TEST_SECRET")
		if err != nil || v.Expose() != canary {
			t.Errorf("Resolve = %v, %v; want the canary", v, err)
		}
	})
	t.Run("message", func(t *testing.T) {
		_, err := src.Resolve(ctx, "env:SLACK_BOT_TOKEN_X")
		want := "environment variable SLACK_BOT_TOKEN_X is not set: export it or change the grant's credential reference"
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error = %v, want prefix %q", err, want)
		}
	})
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("plain", canary)
	nl := write("nl", canary+"\n")
	crlf := write("crlf", canary+"\r\n")
	twoNL := write("two", canary+"\n\n")
	empty := write("empty", "")
	onlyNL := write("onlynl", "\n")
	big := write("big", strings.Repeat("a", secret.MaxFileSize+1))
	exact := write("exact", strings.Repeat("b", secret.MaxFileSize))
	ctx := context.Background()

	tests := []struct {
		name     string
		src      secret.File
		ref      string
		want     string
		notFound bool
		wantErr  bool
	}{
		{name: "plain", ref: "file:" + plain, want: canary},
		{name: "trailing newline", ref: "file:" + nl, want: canary},
		{name: "crlf", ref: "file:" + crlf, want: canary},
		{name: "only one newline trimmed", ref: "file:" + twoNL, want: canary + "\n"},
		{name: "exactly the limit", ref: "file:" + exact, want: strings.Repeat("b", secret.MaxFileSize)},
		{name: "relative with dir", src: secret.File{Dir: dir}, ref: "file:nl", want: canary},
		{name: "relative without dir", ref: "file:nl", wantErr: true},
		{name: "missing", ref: "file:" + filepath.Join(dir, "nope"), notFound: true, wantErr: true},
		{name: "empty", ref: "file:" + empty, notFound: true, wantErr: true},
		{name: "only newline", ref: "file:" + onlyNL, notFound: true, wantErr: true},
		{name: "too big", ref: "file:" + big, wantErr: true},
		{name: "directory", ref: "file:" + dir, wantErr: true},
		{name: "wrong scheme", ref: "env:X", wantErr: true},
		{name: "no path", ref: "file:", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.src.Resolve(ctx, tt.ref)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Resolve(%q) succeeded, want an error", tt.ref)
				}
				if got := errors.Is(err, secret.ErrNotFound); got != tt.notFound {
					t.Errorf("errors.Is(err, ErrNotFound) = %v, want %v (err: %v)", got, tt.notFound, err)
				}
				if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "aaaa") {
					t.Errorf("error leaks file contents: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.ref, err)
			}
			if v.Expose() != tt.want {
				t.Errorf("Resolve(%q) = %d bytes, want %d bytes", tt.ref, len(v.Expose()), len(tt.want))
			}
		})
	}
}

func TestMux(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tok"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := secret.Mux{
		"env":  secret.Env{Lookup: func(string) (string, bool) { return "from-env", true }},
		"file": secret.File{Dir: dir},
	}
	ctx := context.Background()
	for ref, want := range map[string]string{"env:X": "from-env", "file:tok": "from-file"} {
		v, err := m.Resolve(ctx, ref)
		if err != nil || v.Expose() != want {
			t.Errorf("Resolve(%q) = %v, %v; want %q", ref, v.Expose(), err, want)
		}
	}

	_, err := m.Resolve(ctx, "vault:kv/slack")
	if err == nil || !strings.Contains(err.Error(), `"vault"`) || !strings.Contains(err.Error(), "env, file") {
		t.Errorf("unknown scheme: error = %v, want it to name the scheme and list env, file", err)
	}
	for _, ref := range []string{canary, "xoxb-1234:" + canary, "Basic:" + canary, ""} {
		_, err := m.Resolve(ctx, ref)
		if err == nil {
			t.Errorf("Resolve(%q) succeeded, want an error", ref)
			continue
		}
		// At most a scheme-shaped prefix is named; what follows the ':' never is.
		if strings.Contains(err.Error(), canary) {
			t.Errorf("Resolve(%q) error echoes the reference: %v", ref, err)
		}
	}
}

func TestResolveHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, src := range []secret.Source{secret.Env{}, secret.File{}} {
		if _, err := src.Resolve(ctx, "env:HOME"); !errors.Is(err, context.Canceled) {
			t.Errorf("%T.Resolve(cancelled ctx) = %v, want context.Canceled", src, err)
		}
	}
}
