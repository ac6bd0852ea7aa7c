package host_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// TestHostileCannotReadOAuthTokens is TestHostileCannotReadSecrets for an OAuth slot: the
// access token the host mints (client credentials) and the client secret it holds reach the
// slot's host in the Authorization header and nowhere else — not Extism memory after an
// upstream echoes the request, not another host the plugin names the slot for, not results,
// logs or audit.
func TestHostileCannotReadOAuthTokens(t *testing.T) {
	const accessToken, clientSecret = "at-OAUTH-CANARY-93jd8", "cs-CLIENT-SECRET-CANARY-x71"
	var minted atomic.Int32
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		if id, sec, ok := r.BasicAuth(); !ok || id != "hostile-client" || sec != clientSecret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		minted.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"` + accessToken + `","token_type":"bearer","expires_in":3600}`))
	}))
	t.Cleanup(tokens.Close)
	api, other := newUpstream(t), newUpstream(t)

	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	for i := range m.Credentials {
		if m.Credentials[i].Name == "token" {
			m.Credentials[i].Kind = manifest.KindOAuth2ClientCredentials
			m.Credentials[i].OAuth = &manifest.OAuth{TokenURL: "https://login.example.test/oauth/token"}
		}
	}
	src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return clientSecret, n == "CLIENT_SECRET" }}}
	h, rec := hosttest.New(t, host.Config{Secrets: src, Resolver: fakeDNS{}})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"*"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: map[string]manifest.CredentialGrant{"token": {ClientID: "hostile-client", ClientSecret: "env:CLIENT_SECRET"}},
		Upstreams: map[string]string{"https://api.example.test": api.URL, "https://other.example.test": other.URL,
			"https://login.example.test": tokens.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}

	args, _ := json.Marshal(abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/echo", Credential: "token"})
	dump := call(h, "hostile.dump", string(args))
	if !dump.OK {
		t.Fatalf("dump: %+v", dump.Error)
	}
	var d struct{ Hex string }
	json.Unmarshal(dump.Data, &d)
	mem, err := hex.DecodeString(d.Hex)
	if err != nil || !strings.Contains(string(mem), `"status":200`) {
		t.Fatalf("the dump does not hold the echoed response (%v): the test did not exercise the path", err)
	}
	if got := api.seen(); len(got) != 1 || got[0] != "Bearer "+accessToken {
		t.Fatalf("the slot's host saw %q, want the minted token in the Authorization header", got)
	}

	// The plugin names the OAuth slot for another host: refused before anything is sent.
	args, _ = json.Marshal(abi.HTTPRequest{Method: "GET", URL: "https://other.example.test/x", Credential: "token"})
	stolen := call(h, "hostile.fetch", string(args))
	if n := len(other.seen()); n != 0 {
		t.Errorf("another host received %d requests when the plugin named the OAuth slot for it", n)
	}
	if minted.Load() != 1 {
		t.Errorf("the token endpoint minted %d tokens, want 1 (cached)", minted.Load())
	}

	events, _ := json.Marshal(rec.Audit.Events())
	for _, s := range []string{accessToken, clientSecret} {
		for _, form := range append(base64Forms(s), s) {
			if strings.Contains(string(mem), form) {
				t.Errorf("the plugin read a secret (%q) from Extism memory", form)
			}
		}
		for i, r := range []*host.Result{dump, stolen} {
			if b, _ := json.Marshal(r); strings.Contains(string(b), s) {
				t.Errorf("result %d holds %q", i, s)
			}
		}
		if strings.Contains(string(events), s) || strings.Contains(rec.Logs(), s) {
			t.Errorf("%q reached the audit log or the logs", s)
		}
	}
}
