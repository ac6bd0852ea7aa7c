package host_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/oauthtest"
)

// oauthRotationHost loads the hostile connector with its token slot as a client credentials
// slot of the fosite server idp, granted the client secret reference ref. The server names no
// expiry and the slot assumes a two-second lifetime renewed one second early: after
// expire(), the next call must fetch a new token.
func oauthRotationHost(t *testing.T, idp *oauthtest.Server, cfg host.Config, ref string) (*host.Host, *hosttest.Recorder, abi.HTTPRequest) {
	t.Helper()
	idp.OmitExpiry = true
	api := newUpstream(t)
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	for i := range m.Credentials {
		if m.Credentials[i].Name == "token" {
			m.Credentials[i].Kind = manifest.KindOAuth2ClientCredentials
			m.Credentials[i].OAuth = &manifest.OAuth{TokenURL: "https://login.example.test/token", Scopes: []string{"api"}, AssumedLifetimeS: 2, RefreshMarginS: 1}
		}
	}
	h, rec := hosttest.New(t, cfg)
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"*"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: map[string]manifest.CredentialGrant{"token": {ClientID: oauthtest.CCClientID, ClientSecret: ref}},
		Upstreams:   map[string]string{"https://api.example.test": api.URL, "https://login.example.test": idp.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec, abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/v1/x", Credential: "token"}
}

// expire waits until the token oauthRotationHost's slot holds has expired, so a refused
// renewal cannot fall back on it.
func expire() { time.Sleep(2100 * time.Millisecond) }

// noLeak fails if any of the secrets reached the audit log or the logs.
func noLeak(t *testing.T, rec *hosttest.Recorder, secrets ...string) {
	t.Helper()
	events, _ := json.Marshal(rec.Audit.Events())
	for _, s := range secrets {
		if strings.Contains(string(events), s) || strings.Contains(rec.Logs(), s) {
			t.Errorf("%q reached the audit log or the logs", s)
		}
	}
}

// A leaked OAuth client secret is rotated at the IdP and with `airlock secret set` (another
// host instance on the same state) while the server runs: its next token request uses the new
// secret and the call succeeds, without a restart.
func TestRotatedOAuthClientSecretInStore(t *testing.T) {
	ctx := context.Background()
	idp := oauthtest.New(t)
	state := &secret.MemoryBackend{}
	key := make([]byte, 32)
	rand.Read(key)
	server, err := secret.OpenStore(ctx, state, key)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := secret.OpenStore(ctx, state, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Set(ctx, "cc_secret", secret.New(oauthtest.ClientSecret)); err != nil {
		t.Fatal(err)
	}
	h, rec, req := oauthRotationHost(t, idp, host.Config{Secrets: secret.Mux{"store": server}}, "store:cc_secret")
	if resp := fetch(t, h, req); resp.Status != 200 {
		t.Fatalf("first call: status %d", resp.Status)
	}

	const rotated = "canary-rotated-client-secret-Zp4Lm2"
	idp.SetClientSecret(t, oauthtest.CCClientID, rotated)
	if err := cli.Set(ctx, "cc_secret", secret.New(rotated)); err != nil {
		t.Fatal(err)
	}
	expire() // the token expires: the next call fetches one
	if resp := fetch(t, h, req); resp.Status != 200 {
		t.Fatalf("call after the rotation: status %d, want the token fetched with the rotated secret", resp.Status)
	}
	if n := idp.Count("client_credentials"); n != 2 {
		t.Errorf("token requests = %d, want 2 (the new secret read before the request, no refused attempt)", n)
	}
	noLeak(t, rec, oauthtest.ClientSecret, rotated)
}

// The same with the secret in a mounted file, read again only after an hour: the IdP refuses
// the old secret (invalid_client), the host reads the file at once and retries once, so the
// call succeeds.
func TestRotatedOAuthClientSecretFileAfterInvalidClient(t *testing.T) {
	idp := oauthtest.New(t)
	file := filepath.Join(t.TempDir(), "client_secret")
	os.WriteFile(file, []byte(oauthtest.ClientSecret), 0o600)
	h, rec, req := oauthRotationHost(t, idp, host.Config{Secrets: secret.Mux{"file": secret.File{}}, SecretTTL: time.Hour}, "file:"+file)
	if resp := fetch(t, h, req); resp.Status != 200 {
		t.Fatalf("first call: status %d", resp.Status)
	}

	const rotated = "canary-rotated-client-secret-Qw8Xn5"
	idp.SetClientSecret(t, oauthtest.CCClientID, rotated)
	os.WriteFile(file, []byte(rotated), 0o600)
	expire()
	if resp := fetch(t, h, req); resp.Status != 200 {
		t.Fatalf("call after the rotation: status %d, want invalid_client answered by a re-read and one retry", resp.Status)
	}
	if n := idp.Count("client_credentials"); n != 3 {
		t.Errorf("token requests = %d, want 3 (first, refused with the old secret, retried with the new)", n)
	}

	// A secret rotated at the IdP but not in the file: refused, and the error says what to do
	// without quoting either secret.
	idp.SetClientSecret(t, oauthtest.CCClientID, "canary-third-secret-never-granted")
	expire()
	args, _ := json.Marshal(req)
	res := call(h, "hostile.fetch", string(args))
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), `"status":200`) {
		t.Fatalf("a call succeeded with a secret the IdP no longer accepts: %s", b)
	}
	if !strings.Contains(string(b), "invalid_client") {
		t.Errorf("the failed call does not say the IdP refused the client: %s", b)
	}
	for _, s := range []string{oauthtest.ClientSecret, rotated} {
		if strings.Contains(string(b), s) {
			t.Errorf("the result holds %q", s)
		}
	}
	noLeak(t, rec, oauthtest.ClientSecret, rotated)
}
