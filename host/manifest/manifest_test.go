package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func loadValid(t *testing.T) *Manifest {
	t.Helper()
	m, err := Load("testdata/valid.yaml")
	if err != nil {
		t.Fatalf("Load(testdata/valid.yaml) = %v", err)
	}
	return m
}

func TestParseValid(t *testing.T) {
	m := loadValid(t)
	want := &Manifest{
		ABI:         1,
		Name:        "slack",
		Version:     "1.2.0-rc.1",
		Publisher:   "airlock-dev",
		Description: "Post messages and read channels in a Slack workspace.",
		Module:      Module{Path: "slack.wasm", SHA256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
		Limits: Limits{MemoryMB: 32, TimeoutMS: 5000, MaxInputBytes: 1 << 20, MaxOutputBytes: 1 << 20,
			MaxResponseBytes: 4 << 20, MaxRequests: 32},
		Credentials: []Credential{
			{Name: "bot_token", Kind: KindBearer, Description: "Slack bot token (xoxb-…)", Hosts: []string{"slack.com"}},
			{Name: "webhook_key", Kind: KindAPIKey, In: "header", Param: "X-Api-Key", Hosts: []string{"hooks.slack.com"}},
		},
		Network: []Rule{
			{Scheme: "https", Host: "slack.com", Port: 443, PathPrefix: "/api/", Methods: []string{"GET", "POST"}},
			{Scheme: "http", Host: "*.slack.com", Port: 80, PathPrefix: "/", Methods: []string{"GET"}},
		},
		Config: []ConfigKey{
			{Name: "default_channel", Description: "Channel used when none is given.", Default: "general"},
			{Name: "page_size", Default: "100"},
		},
		Tools: []Tool{
			{Name: "post_message", Export: "post_message", Description: "Post a message to a Slack channel.",
				Scopes: []string{"chat:write"}, Annotations: Annotations{OpenWorld: true},
				Uses: Uses{Network: []string{"slack.com"}, Credentials: []string{"bot_token"}}},
			{Name: "list_channels", Export: "listChannels", Description: "List the channels the bot can see.",
				Scopes: []string{"channels:read"}, Annotations: Annotations{ReadOnly: true, Idempotent: true, OpenWorld: true},
				Uses: Uses{Network: []string{"slack.com", "*.slack.com"}, Credentials: []string{}}},
		},
		Dir: "testdata",
	}
	opts := cmp.Options{
		cmpopts.IgnoreFields(Tool{}, "InputSchema", "OutputSchema"),
		cmpopts.IgnoreUnexported(Tool{}),
	}
	if diff := cmp.Diff(want, m, opts); diff != "" {
		t.Errorf("Load mismatch (-want +got):\n%s", diff)
	}
	if m.Tools[1].OutputSchema != nil {
		t.Errorf("OutputSchema = %s, want nil", m.Tools[1].OutputSchema)
	}
	if !strings.Contains(string(m.Tools[0].InputSchema), `"required":["channel","text"]`) {
		t.Errorf("InputSchema = %s, want the schema as JSON", m.Tools[0].InputSchema)
	}
}

func TestDefaults(t *testing.T) {
	m, err := Parse("demo.yaml", []byte(`abi: 1
name: demo
version: 1.0.0
publisher: acme
description: Demo.
module: {path: sub/demo.wasm}
network: [{host: api.example.com}]
credentials: [{name: k, kind: api_key, param: key, hosts: [api.example.com]}]
tools:
  - {name: ping, description: Ping., input_schema: {type: object}}
  - {name: pong, description: Pong., input_schema: {type: object}, annotations: {destructive: true}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultLimits, m.Limits); diff != "" {
		t.Errorf("Limits mismatch (-want +got):\n%s", diff)
	}
	if got, want := m.Network[0], (Rule{Scheme: "https", Host: "api.example.com", Port: 443, PathPrefix: "/", Methods: []string{"GET"}}); !cmp.Equal(got, want) {
		t.Errorf("Network[0] = %+v, want %+v", got, want)
	}
	if m.Credentials[0].In != "header" {
		t.Errorf("Credentials[0].In = %q, want header", m.Credentials[0].In)
	}
	for i, want := range []Annotations{{OpenWorld: true}, {Destructive: true, OpenWorld: true}} {
		if got := m.Tools[i].Annotations; got != want {
			t.Errorf("Tools[%d].Annotations = %+v, want %+v", i, got, want)
		}
	}
	if m.Tools[0].Export != "ping" {
		t.Errorf("Export = %q, want the tool name", m.Tools[0].Export)
	}
	if got, want := m.ModulePath(), filepath.Join(".", "sub", "demo.wasm"); got != want {
		t.Errorf("ModulePath() = %q, want %q", got, want)
	}
}

func TestToolLookup(t *testing.T) {
	m := loadValid(t)
	if tool, ok := m.Tool("list_channels"); !ok || tool.Export != "listChannels" {
		t.Errorf("Tool(list_channels) = %+v, %v", tool, ok)
	}
	if _, ok := m.Tool("nope"); ok {
		t.Errorf("Tool(nope) found")
	}
	if got, want := m.ModulePath(), filepath.Join("testdata", "slack.wasm"); got != want {
		t.Errorf("ModulePath() = %q, want %q", got, want)
	}
}

func TestValidateInputOutput(t *testing.T) {
	m := loadValid(t)
	tool, _ := m.Tool("post_message")
	if err := tool.ValidateInput([]byte(`{"channel": "C1", "text": "hi"}`)); err != nil {
		t.Errorf("ValidateInput(valid) = %v", err)
	}
	err := tool.ValidateInput([]byte(`{"chanel": "C1", "text": "hi"}`))
	if err == nil || !strings.Contains(err.Error(), `unknown field "chanel" (did you mean "channel"?)`) {
		t.Errorf("ValidateInput(typo) = %v", err)
	}
	if err := tool.ValidateOutput([]byte(`{"ts": 5}`)); err == nil || !strings.HasPrefix(err.Error(), "invalid output: ") {
		t.Errorf("ValidateOutput(bad) = %v, want invalid output", err)
	}
	list, _ := m.Tool("list_channels")
	if err := list.ValidateOutput([]byte(`[1]`)); err != nil {
		t.Errorf("ValidateOutput without a schema = %v, want nil", err)
	}
	// A Tool built by hand compiles its schema on use.
	hand := Tool{Name: "x", InputSchema: []byte(`{"type": "object", "required": ["a"]}`)}
	if err := hand.ValidateInput([]byte(`{}`)); err == nil {
		t.Errorf("hand-built ValidateInput({}) = nil, want an error")
	}
}

func TestVerifyModule(t *testing.T) {
	module := []byte("\x00asm\x01\x00\x00\x00")
	sum := sha256.Sum256(module)
	digest := hex.EncodeToString(sum[:])
	tests := []struct {
		name, pinned string
		want         error
	}{
		{"match", digest, nil},
		{"mismatch", strings.Repeat("0", 64), ErrDigestMismatch},
		{"short", "abc", ErrDigestMismatch},
		{"unpinned", "", ErrUnpinned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Manifest{Name: "demo", Module: Module{Path: "demo.wasm", SHA256: tt.pinned}}
			err := VerifyModule(m, module)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifyModule = %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), digest) {
				t.Errorf("VerifyModule error %q does not name the actual digest %s", err, digest)
			}
		})
	}
}

func TestMatchHost(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"slack.com", "slack.com", true},
		{"slack.com", "api.slack.com", false},
		{"*.slack.com", "api.slack.com", true},
		{"*.slack.com", "a.b.slack.com", true},
		{"*.slack.com", "slack.com", false},
		{"*.slack.com", "evilslack.com", false},
		{"*.slack.com", ".slack.com", false},
		{"*.slack.com", "*.slack.com", true},
		{"*.slack.com", "*.a.slack.com", true},
		{"*.a.slack.com", "*.slack.com", false},
		{"*.slack.com", "*.com", false},
		{"10.0.0.1", "10.0.0.1", true},
	}
	for _, tt := range tests {
		if got := MatchHost(tt.pattern, tt.host); got != tt.want {
			t.Errorf("MatchHost(%q, %q) = %v, want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
}

func TestParseOrigin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://Slack.com", "https://slack.com:443"},
		{"http://127.0.0.1:8099", "http://127.0.0.1:8099"},
		{"http://[::1]:80/", "http://[::1]:80"},
		{"https://slack.com/api", ""},
		{"https://slack.com?x=1", ""},
		{"ftp://slack.com", ""},
		{"https://u:p@slack.com", ""},
		{"slack.com", ""},
		{"https://:443", ""},
	}
	for _, tt := range tests {
		got, err := ParseOrigin(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("ParseOrigin(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseGrant(t *testing.T) {
	g, err := LoadGrant("testdata/grant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Grant{
		Connector:      "slack",
		Tools:          []string{"*"},
		Scopes:         []string{"chat:write"},
		Hosts:          []string{"slack.com"},
		Credentials:    map[string]CredentialGrant{"bot_token": {Secret: "env:SLACK_BOT_TOKEN"}},
		Config:         map[string]string{"default_channel": "C0123", "page_size": "50"},
		PrivateTargets: []string{"10.0.0.0/8", "192.168.1.7"},
		Upstreams:      map[string]string{"https://slack.com": "http://127.0.0.1:8099"},
		Limits:         Limits{TimeoutMS: 5000},
	}
	if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("LoadGrant mismatch (-want +got):\n%s", diff)
	}
	if g, err := ParseGrant("min.yaml", []byte("connector: slack\n")); err != nil || g.Tools != nil {
		t.Errorf("ParseGrant(minimal) = %+v, %v; want a grant of nothing", g, err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, make([]byte, 3*MaxFileSize), 0o644); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if _, err := Load(big); !errors.As(err, &e) || !strings.Contains(e.Msg, "at most 1048576 bytes") {
		t.Errorf("Load(big) = %v, want a size error", err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "slack.yaml", Line: 12, Path: "tools[1].scopes", Msg: "expected a list of strings, got a string"}, "slack.yaml:12: tools[1].scopes: expected a list of strings, got a string"},
		{&Error{File: "slack.yaml", Msg: "the file is empty"}, "slack.yaml: the file is empty"},
		{&Error{Line: 3, Msg: "x"}, ":3: x"},
		{&Error{Msg: "x"}, "x"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	list := ErrorList{lineErr(1), lineErr(2)}
	var e *Error
	if !errors.As(error(list), &e) || e.Line != 1 {
		t.Errorf("errors.As(ErrorList) = %v", e)
	}
	if got := list.Error(); got != "f:1: m\nf:2: m" {
		t.Errorf("ErrorList.Error() = %q", got)
	}
}

func lineErr(line int) *Error { return &Error{File: "f", Line: line, Msg: "m"} }
