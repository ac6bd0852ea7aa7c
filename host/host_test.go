package host_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/fakeslack"
)

const (
	canary      = "xoxb-CANARY-7f3k2m9qZ"
	otherCanary = "key-OTHER-CANARY-p4w8"
)

func secrets() secret.Source {
	vals := map[string]string{"SLACK_BOT_TOKEN": canary, "HOSTILE_TOKEN": canary, "OTHER_KEY": otherCanary}
	return secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { v, ok := vals[n]; return v, ok }}}
}

// leaks reports where a canary appears among everything that left the trusted side.
func leaks(t *testing.T, rec *hosttest.Recorder, results ...*host.Result) {
	t.Helper()
	forms := []string{canary, otherCanary, base64.StdEncoding.EncodeToString([]byte(canary))}
	var where []string
	for i, r := range results {
		b, _ := json.Marshal(r)
		for _, f := range forms {
			if strings.Contains(string(b), f) {
				where = append(where, fmt.Sprintf("result %d", i))
			}
		}
	}
	events, _ := json.Marshal(rec.Audit.Events())
	logs := rec.Logs()
	for _, f := range forms {
		if strings.Contains(string(events), f) {
			where = append(where, "audit log")
		}
		if strings.Contains(logs, f) {
			where = append(where, "logs")
		}
	}
	if strings.Contains(logs, "secret value in a tool result was redacted") {
		where = append(where, "a tool result (redacted on the way out)")
	}
	if len(where) > 0 {
		t.Fatalf("a secret leaked into: %s", strings.Join(where, ", "))
	}
}

func slackHost(t *testing.T) (*host.Host, *hosttest.Recorder, *fakeslack.Server) {
	t.Helper()
	return slackHostWith(t, host.Config{})
}

// slackHostWith is slackHost with cfg (its Secrets replaced by secrets()).
func slackHostWith(t *testing.T, cfg host.Config) (*host.Host, *hosttest.Recorder, *fakeslack.Server) {
	t.Helper()
	fake := fakeslack.New(canary)
	url, stop := fake.Start()
	t.Cleanup(stop)
	m, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	cfg.Secrets = secrets()
	h, rec := hosttest.New(t, cfg)
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": url}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec, fake
}

func call(h *host.Host, tool, args string) *host.Result {
	return h.Call(context.Background(), host.CallRequest{Tool: tool, Arguments: json.RawMessage(args), Agent: "test-agent"})
}

func TestSlackEndToEnd(t *testing.T) {
	h, rec, fake := slackHost(t)
	res := call(h, "slack.post_message", `{"channel":"C0GENERAL","text":"deploy finished"}`)
	if !res.OK {
		t.Fatalf("post_message failed: %+v", res.Error)
	}
	var out struct {
		Channel, TS string
	}
	json.Unmarshal(res.Data, &out)
	if out.Channel != "C0GENERAL" || out.TS == "" {
		t.Errorf("post_message data = %s", res.Data)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer "+canary {
		t.Fatalf("the fake Slack did not receive the injected token: %+v", reqs)
	}
	if !res.Meta.Untrusted || res.Meta.Requests != 1 || res.Meta.Connector != "slack" {
		t.Errorf("meta = %+v", res.Meta)
	}

	// A Slack error becomes an agent-readable, correctable error.
	res2 := call(h, "slack.post_message", `{"channel":"C0OPS","text":"hello"}`)
	if res2.OK || res2.Error.Category != abi.Correctable || !strings.Contains(res2.Error.Message, "invite") {
		t.Errorf("post to a channel the bot is not in = %+v, want a correctable error saying to invite the bot", res2.Error)
	}

	// Bad arguments never reach the plugin.
	res3 := call(h, "slack.post_message", `{"channel":"general","txt":"x"}`)
	if res3.OK || res3.Error.Code != abi.CodeInvalidArguments || !strings.Contains(res3.Error.Message, "text") {
		t.Errorf("invalid arguments = %+v", res3.Error)
	}
	if len(fake.Requests()) != 2 {
		t.Errorf("upstream saw %d requests, want 2 (invalid arguments must not reach it)", len(fake.Requests()))
	}

	// The audit log has the calls and the outbound requests, without values.
	var calls, requests int
	for _, e := range rec.Audit.Events() {
		switch e.Kind {
		case "call":
			calls++
		case "request":
			requests++
			if e.Credential != "bot_token" || !e.Injected || strings.Contains(e.URL, "?") {
				t.Errorf("request event = %+v", e)
			}
		}
	}
	if calls != 3 || requests != 2 {
		t.Errorf("audit has %d calls and %d requests, want 3 and 2", calls, requests)
	}
	leaks(t, rec, res, res2, res3)
}

func TestUpstreamEchoIsScrubbed(t *testing.T) {
	h, rec, fake := slackHost(t)
	fake.SetEchoHeaders(true)
	res := call(h, "slack.list_channels", `{"limit":5}`)
	if !res.OK {
		t.Fatalf("list_channels: %+v", res.Error)
	}
	leaks(t, rec, res)
}

// hostileHost loads the hostile test plugin. api.example.test and other.example.test are routed
// to local servers; rebind.example.test resolves to 127.0.0.1.
func hostileHost(t *testing.T, tools ...string) (*host.Host, *hosttest.Recorder, *upstream, *upstream) {
	t.Helper()
	api, other := newUpstream(t), newUpstream(t)
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, rec := hosttest.New(t, host.Config{Secrets: secrets(), Resolver: fakeDNS{}})
	if len(tools) == 0 {
		tools = []string{"*"}
	}
	g := &manifest.Grant{Connector: "hostile", Tools: tools, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN", "other_key": "env:OTHER_KEY"}),
		Upstreams:   map[string]string{"https://api.example.test": api.URL, "https://other.example.test": other.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec, api, other
}

// base64Forms returns substrings that any base64 encoding of a text containing s contains,
// whatever the alignment of s in it.
func base64Forms(s string) []string {
	var forms []string
	for shift := range 3 {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", shift) + s))
		forms = append(forms, enc[4:len(enc)-4])
	}
	return forms
}

type fakeDNS struct{}

func (fakeDNS) LookupNetIP(_ context.Context, _, name string) ([]netip.Addr, error) {
	switch name {
	case "rebind.example.test":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	case "forbidden.example.test":
		return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
	}
	return nil, fmt.Errorf("no such host %s", name)
}

// upstream records requests and echoes their headers back in the body (a careless upstream);
// /redirect?to=URL redirects.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.auth = append(u.auth, r.Header.Get("Authorization")+r.Header.Get("X-Api-Key"))
		u.mu.Unlock()
		if to := r.URL.Query().Get("to"); to != "" {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(map[string]any{"headers": r.Header, "body": string(body)})
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.auth...)
}

func fetch(t *testing.T, h *host.Host, req abi.HTTPRequest) abi.HTTPResponse {
	t.Helper()
	args, _ := json.Marshal(req)
	res := call(h, "hostile.fetch", string(args))
	if !res.OK {
		t.Fatalf("fetch %s: %+v", req.URL, res.Error)
	}
	var resp abi.HTTPResponse
	if err := json.Unmarshal(res.Data, &resp); err != nil {
		t.Fatalf("fetch returned %s", res.Data)
	}
	return resp
}

func TestHostileEgress(t *testing.T) {
	h, rec, api, other := hostileHost(t)
	// The granted request works and carries the credential; the echo is scrubbed.
	resp := fetch(t, h, abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/x", Credential: "token",
		Headers: map[string][]string{"Authorization": {"Bearer forged"}, "Cookie": {"a=b"}}})
	if resp.Status != 200 || !strings.Contains(string(resp.Body), "[REDACTED]") {
		t.Fatalf("granted fetch = %d %s", resp.Status, resp.Body)
	}
	if got := api.seen(); len(got) != 1 || got[0] != "Bearer "+canary {
		t.Fatalf("upstream saw Authorization %q, want the injected token only", got)
	}

	denied := []abi.HTTPRequest{
		{Method: "GET", URL: "https://evil.example.test/"},                      // host not in the manifest
		{Method: "GET", URL: "https://api.example.test:8443/"},                  // port
		{Method: "GET", URL: "http://api.example.test/"},                        // scheme
		{Method: "DELETE", URL: "https://api.example.test/"},                    // method
		{Method: "GET", URL: "http://rebind.example.test/"},                     // resolves to 127.0.0.1
		{Method: "GET", URL: "https://forbidden.example.test/latest/meta-data"}, // resolves to the metadata address
		{Method: "GET", URL: "http://169.254.169.254/latest/meta-data/"},
		{Method: "GET", URL: "http://2130706433/"},
		{Method: "GET", URL: "http://0x7f.1/"},
		{Method: "GET", URL: "http://[::ffff:127.0.0.1]/"},
		{Method: "GET", URL: "https://api.example.test@127.0.0.1/"},
		{Method: "GET", URL: "https://api.example.test/../admin"},
		{Method: "GET", URL: "file:///etc/passwd"},
		{Method: "GET", URL: "https://other.example.test/", Credential: "token"}, // token may not go to other
		{Method: "GET", URL: "https://api.example.test/", Credential: "nope"},
		{Method: "GET", URL: "https://api.example.test/redirect?to=http://127.0.0.1:1/"},
		{Method: "GET", URL: "https://api.example.test/redirect?to=https://evil.example.test/"},
	}
	for _, req := range denied {
		resp := fetch(t, h, req)
		if resp.Error == nil || resp.Status != 0 {
			t.Errorf("fetch %s %s (credential %q) = status %d; want a refusal", req.Method, req.URL, req.Credential, resp.Status)
			continue
		}
		if resp.Error.Message == "" || resp.Error.Category == "" {
			t.Errorf("refusal of %s has no agent-readable message: %+v", req.URL, resp.Error)
		}
	}

	// A cross-host redirect drops the credential.
	resp = fetch(t, h, abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/redirect?to=https://other.example.test/landing", Credential: "token"})
	if resp.Status != 200 {
		t.Fatalf("cross-host redirect = %d %+v", resp.Status, resp.Error)
	}
	for _, a := range other.seen() {
		if strings.Contains(a, canary) {
			t.Fatal("the credential followed a cross-host redirect")
		}
	}
	leaks(t, rec)
}

// Nothing the plugin can read holds a secret, even after the host made an authenticated request
// whose response echoes it.
func TestHostileCannotReadSecrets(t *testing.T) {
	h, rec, _, _ := hostileHost(t)
	args, _ := json.Marshal(abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/echo", Credential: "token"})
	res := call(h, "hostile.dump", string(args))
	if !res.OK {
		t.Fatalf("dump: %+v", res.Error)
	}
	var dump struct{ Hex string }
	json.Unmarshal(res.Data, &dump)
	mem, err := hex.DecodeString(dump.Hex)
	if err != nil || len(mem) < 100 {
		t.Fatalf("dump returned %d bytes (%v)", len(mem), err)
	}
	if !strings.Contains(string(mem), `"status":200`) {
		t.Fatal("the dump does not hold the echoed response: the test did not exercise the path")
	}
	for _, form := range append(base64Forms(canary), canary) {
		if strings.Contains(string(mem), form) {
			t.Fatalf("the plugin read the secret (as %q) from Extism memory", form)
		}
	}
	leaks(t, rec, res)
}

func TestHostileIsContained(t *testing.T) {
	h, _, _, _ := hostileHost(t)
	for _, tc := range []struct {
		tool     string
		code     string
		category abi.Category
	}{
		{"hostile.loop", abi.CodeTimeout, abi.Retryable},
		{"hostile.sleep", abi.CodeTimeout, abi.Retryable},
		{"hostile.panic", abi.CodePluginTrap, abi.Fatal},
		{"hostile.exit", abi.CodePluginTrap, abi.Fatal},
		{"hostile.alloc_bomb", abi.CodePluginTrap, abi.Fatal},
		{"hostile.big_output", abi.CodeTooLarge, abi.Correctable},
	} {
		checkStopped(t, h, tc.tool, tc.code, tc.category, 3*time.Second)
		if ok := call(h, "hostile.echo", `{"still":"serving"}`); !ok.OK || string(ok.Data) != `{"still":"serving"}` {
			t.Fatalf("after %s the host stopped serving: %+v", tc.tool, ok.Error)
		}
	}
}

// checkStopped calls tool, which misbehaves, and checks that it fails with code and category
// within the connector's timeout plus a margin, telling the agent nothing of the plugin's insides.
func checkStopped(t *testing.T, h *host.Host, tool, code string, category abi.Category, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	res := call(h, tool, `{}`)
	if res.OK || res.Error.Code != code || res.Error.Category != category {
		t.Errorf("%s = %+v, want %s/%s", tool, res.Error, code, category)
		return
	}
	if d := time.Since(start); d > timeout+2*time.Second {
		t.Errorf("%s took %v, want the %v timeout plus a margin", tool, d, timeout)
	}
	if strings.Contains(res.Error.Message, "goroutine") || strings.Contains(res.Error.Message, "panics on purpose") {
		t.Errorf("%s leaked plugin internals to the agent: %q", tool, res.Error.Message)
	}
}

func TestGrantIntersection(t *testing.T) {
	h, _, _, _ := hostileHost(t, "echo", "fetch", "sandbox")
	names := map[string]bool{}
	for _, tool := range h.Tools() {
		names[tool.Name] = true
	}
	if !names["hostile.echo"] || names["hostile.loop"] || names["hostile.sandbox"] {
		t.Errorf("Tools() = %v; want echo listed, loop (not granted) and sandbox (scope not granted) absent", names)
	}
	for tool, want := range map[string]string{
		"hostile.loop":    abi.CodeNotGranted,
		"hostile.sandbox": abi.CodeNotGranted,
		"hostile.nope":    abi.CodeUnknownTool,
		"nope.echo":       abi.CodeUnknownTool,
		"echo":            abi.CodeUnknownTool,
	} {
		res := call(h, tool, `{}`)
		if res.OK || res.Error.Code != want {
			t.Errorf("%s = %+v, want %s", tool, res.Error, want)
		}
	}
	if res := call(h, "hostile.sandbox", `{}`); !strings.Contains(res.Error.Message, "extra:scope") {
		t.Errorf("not-granted message %q does not name the missing scope", res.Error.Message)
	}
}

func TestReplaceWhileCalling(t *testing.T) {
	h, _, _, _ := hostileHost(t)
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"echo"}, Scopes: []string{"test"}}
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				res := call(h, "hostile.echo", `{"a":1}`)
				if !res.OK {
					errs <- res.Error.Message
				}
			}
		}()
	}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a call failed while the connector was replaced: %s", e)
	}
	if res := call(h, "hostile.fetch", `{}`); res.OK || res.Error.Code != abi.CodeNotGranted {
		t.Errorf("after the replacement, fetch = %+v, want not granted", res.Error)
	}
}

func TestLoadRefusesTamperedModule(t *testing.T) {
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, _ := hosttest.New(t, host.Config{})
	bad := append([]byte(nil), wasm...)
	bad[len(bad)/2] ^= 1
	err := h.LoadModule(context.Background(), m, bad, &manifest.Grant{Connector: "hostile"})
	if err == nil || !strings.Contains(err.Error(), "sha256") && !strings.Contains(err.Error(), "digest") {
		t.Fatalf("LoadModule(tampered) = %v, want a digest mismatch", err)
	}
	if len(h.Tools()) != 0 {
		t.Error("a tampered module was loaded")
	}
}

// An embedder that forgets the grant gets an error naming what to pass, not a panic.
func TestLoadWithoutGrant(t *testing.T) {
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, _ := hosttest.New(t, host.Config{})
	err := h.LoadModule(context.Background(), m, wasm, nil)
	if err == nil || !strings.Contains(err.Error(), "no grant") {
		t.Fatalf("LoadModule(nil grant) = %v, want an error saying no grant was given", err)
	}
	if len(h.Tools()) != 0 {
		t.Error("a connector loaded without a grant offers tools")
	}
}

// A module the state store installs is checked against its manifest like one the configuration
// names: a tampered one stops the connector (the store may have meant to change it) and says why.
func TestSetInstalledRefusesTamperedModule(t *testing.T) {
	ctx := context.Background()
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, _ := hosttest.New(t, host.Config{})
	install := func(module []byte) error {
		return h.SetInstalled(ctx, "hostile", &host.Installed{Manifest: m, Module: module,
			Grant: &manifest.Grant{Connector: "hostile", Tools: []string{"echo"}, Scopes: []string{"test"}}})
	}
	if err := install(wasm); err != nil {
		t.Fatal(err)
	}
	if res := call(h, "hostile.echo", `{"a":1}`); !res.OK {
		t.Fatalf("echo: %+v", res.Error)
	}
	bad := append([]byte(nil), wasm...)
	bad[len(bad)/2] ^= 1
	if err := install(bad); !errors.Is(err, manifest.ErrDigestMismatch) {
		t.Fatalf("SetInstalled(tampered) = %v, want a digest mismatch", err)
	}
	if res := call(h, "hostile.echo", `{"a":1}`); res.OK {
		t.Error("the connector kept serving after the store installed a tampered module")
	}
}

// A tool marked needs_confirmation (or destructive) does not run on the agent's word alone.
func TestConfirmationGate(t *testing.T) {
	h, rec, _, _ := hostileHost(t)
	res := call(h, "hostile.log", `{"x":1}`)
	if res.OK || res.Error.Code != abi.CodeNeedsConfirm || res.Error.Category != abi.Correctable ||
		!strings.Contains(res.Error.Message, "confirm") {
		t.Fatalf("unconfirmed call = %+v, want confirmation_required", res.Error)
	}
	if strings.Contains(rec.Logs(), `{\"x\":1}`) {
		t.Fatal("the plugin ran without confirmation")
	}
	res = h.Call(context.Background(), host.CallRequest{Tool: "hostile.log", Arguments: json.RawMessage(`{"x":1}`), Confirmed: true})
	if !res.OK {
		t.Fatalf("confirmed call = %+v", res.Error)
	}
	if !strings.Contains(rec.Logs(), `{\"x\":1}`) {
		t.Fatal("the confirmed call did not run the plugin")
	}
	if !host.NeedsConfirmation(manifest.Annotations{Destructive: true}) {
		t.Error("destructive tools must need confirmation")
	}
}
