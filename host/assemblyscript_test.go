package host_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Any Extism PDK works, not only Go's: plugins/items-as is written in AssemblyScript with the
// unmodified @extism/as-pdk and pdk/assemblyscript's binding, built with npm by the test.

// itemsAPI plays api.example.com/v1 for the items connector: it answers only with the canary
// bearer token and, carelessly, echoes that token in item-echo's title.
func itemsAPI(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+canary {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/items/item-1":
			w.Write([]byte(`{"id":"item-1","title":"Fïrst \"quoted\""}`))
		case "/v1/items/item-echo":
			json.NewEncoder(w).Encode(map[string]string{"id": "item-echo", "title": r.Header.Get("Authorization")})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func itemsHost(t *testing.T, upstreams map[string]string) (*host.Host, *hosttest.Recorder) {
	t.Helper()
	m, wasm := hosttest.AssemblyScriptConnector(t, "plugins/items-as")
	h, rec := hosttest.New(t, host.Config{Secrets: secrets()})
	g := &manifest.Grant{Connector: "items_as", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"api_token": "env:HOSTILE_TOKEN"}),
		Upstreams:   upstreams}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec
}

func TestAssemblyScriptConnector(t *testing.T) {
	api := itemsAPI(t)
	h, rec := itemsHost(t, map[string]string{"https://api.example.com": api.URL})

	res := call(h, "items_as.get_item", `{"id":"item-1"}`)
	if !res.OK || string(res.Data) != `{"id":"item-1","title":"Fïrst \"quoted\""}` {
		t.Fatalf("get_item(item-1) = %s %+v", res.Data, res.Error)
	}
	for _, tc := range []struct {
		id, code string
		category abi.Category
	}{
		{"nope", "not_found", abi.Correctable},
		{"Not-Valid", abi.CodeInvalidArguments, abi.Correctable}, // refused by the host's schema check first
	} {
		res := call(h, "items_as.get_item", `{"id":"`+tc.id+`"}`)
		if res.OK || res.Error.Code != tc.code || res.Error.Category != tc.category {
			t.Errorf("get_item(%s) = %s %+v, want %s/%s", tc.id, res.Data, res.Error, tc.code, tc.category)
		}
	}
	// The upstream echoes the secret: the host scrubs it before the plugin sees the body.
	echo := call(h, "items_as.get_item", `{"id":"item-echo"}`)
	if !echo.OK || strings.Contains(string(echo.Data), canary) || !strings.Contains(string(echo.Data), "[REDACTED]") {
		t.Fatalf("get_item(item-echo) = %s %+v; want the echoed token redacted", echo.Data, echo.Error)
	}
	leaks(t, rec, res, echo)
}

// Pointed at an upstream the grant does not map, the connector's request goes to the real
// api.example.com address, which the test resolver does not know: it fails as a host refusal the
// connector passes on unchanged, not as a trap.
func TestAssemblyScriptConnectorPassesRefusalsOn(t *testing.T) {
	h, _ := itemsHost(t, nil)
	res := call(h, "items_as.get_item", `{"id":"item-1"}`)
	if res.OK || res.Error.Code == abi.CodePluginTrap || res.Error.Message == "" {
		t.Fatalf("get_item without an upstream = %+v; want the host's refusal passed on", res.Error)
	}
}

func hostileASHost(t *testing.T) (*host.Host, *hosttest.Recorder, *upstream) {
	t.Helper()
	api := newUpstream(t)
	m, wasm := hosttest.AssemblyScriptConnector(t, "host/testdata/plugins/hostile-as")
	h, rec := hosttest.New(t, host.Config{Secrets: secrets(), Resolver: fakeDNS{}})
	g := &manifest.Grant{Connector: "hostile_as", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"api.example.test", "forbidden.example.test"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN"}),
		Upstreams:   map[string]string{"https://api.example.test": api.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec, api
}

// The checks TestHostileEgress, TestHostileCannotReadSecrets and TestHostileIsContained make of
// the Go hostile plugin, made of a module AssemblyScript compiled.
func TestAssemblyScriptHostile(t *testing.T) {
	h, rec, api := hostileASHost(t)
	var results []*host.Result
	fetch := func(method, url, cred string) *host.Result {
		args, _ := json.Marshal(map[string]string{"method": method, "url": url, "credential": cred})
		res := call(h, "hostile_as.fetch", string(args))
		results = append(results, res)
		return res
	}

	// Granted: the credential is injected, and its echo scrubbed before the plugin reads it.
	res := fetch("GET", "https://api.example.test/echo", "token")
	if !res.OK || strings.Contains(string(res.Data), canary) || !strings.Contains(string(res.Data), "[REDACTED]") {
		t.Fatalf("granted fetch = %s %+v", res.Data, res.Error)
	}
	if got := api.seen(); len(got) != 1 || got[0] != "Bearer "+canary {
		t.Fatalf("upstream saw %q, want the injected token", got)
	}

	// Outside the manifest, the grant, or the credential's hosts: refused, never a trap.
	for _, tc := range [][3]string{
		{"GET", "https://evil.example.test/", ""},                      // not in the manifest
		{"GET", "https://other.example.test/", ""},                     // in the manifest, not in the grant
		{"GET", "https://api.example.test:8443/", ""},                  // port
		{"DELETE", "https://api.example.test/", ""},                    // method
		{"GET", "https://forbidden.example.test/latest/meta-data", ""}, // resolves to the metadata address
		{"GET", "http://169.254.169.254/latest/meta-data/", ""},
		{"GET", "https://api.example.test/redirect?to=https://evil.example.test/", ""},
		{"GET", "https://api.example.test/", "nope"},
	} {
		res := fetch(tc[0], tc[1], tc[2])
		if res.OK || res.Error.Code == abi.CodePluginTrap || res.Error.Message == "" {
			t.Errorf("fetch %s %s (credential %q) = %s %+v; want a refusal the agent can read", tc[0], tc[1], tc[2], res.Data, res.Error)
		}
	}
	if got := api.seen(); len(got) != 2 || got[1] != "" { // the granted fetch, and the redirect's first hop (no credential)
		t.Errorf("refused requests reached the upstream: %q", got)
	}

	// Nothing in Extism memory holds the secret after an authenticated request whose answer
	// echoed it (TestHostileCannotReadSecrets).
	args, _ := json.Marshal(map[string]string{"method": "GET", "url": "https://api.example.test/echo", "credential": "token"})
	dump := call(h, "hostile_as.dump", string(args))
	var mem struct{ Hex string }
	if !dump.OK || json.Unmarshal(dump.Data, &mem) != nil {
		t.Fatalf("dump = %.200s %+v", dump.Data, dump.Error)
	}
	raw, err := hex.DecodeString(mem.Hex)
	if err != nil || !strings.Contains(string(raw), `"status":200`) {
		t.Fatalf("the dump does not hold the echoed response (%d bytes, %v): the test did not exercise the path", len(raw), err)
	}
	for _, form := range append(base64Forms(canary), canary) {
		if strings.Contains(string(raw), form) {
			t.Fatalf("the plugin read the secret (as %q) from Extism memory", form)
		}
	}
	results = append(results, dump)

	// No secret under any configuration name.
	peek := call(h, "hostile_as.peek", `{}`)
	if !peek.OK || string(peek.Data) != `{"found":""}` {
		t.Errorf("peek = %s %+v; want nothing found", peek.Data, peek.Error)
	}
	results = append(results, peek)

	// A runaway loop is stopped at the manifest's 2 s timeout; an abort is a trap; the host
	// serves on.
	for _, tc := range []struct {
		tool     string
		code     string
		category abi.Category
	}{
		{"hostile_as.loop", abi.CodeTimeout, abi.Retryable},
		{"hostile_as.trap", abi.CodePluginTrap, abi.Fatal},
	} {
		checkStopped(t, h, tc.tool, tc.code, tc.category, 2*time.Second)
		if ok := call(h, "hostile_as.peek", `{}`); !ok.OK {
			t.Fatalf("after %s the host stopped serving: %+v", tc.tool, ok.Error)
		}
	}
	leaks(t, rec, results...)
}
