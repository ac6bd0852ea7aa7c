package host_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/cloudsecrettest"
)

// cloudSecret is one cloud secret manager, faked, for the end-to-end tests: a source that
// resolves ref to the first key, rotate adding a new current version, reads counting the
// manager's reads.
type cloudSecret struct {
	scheme string
	src    func(t *testing.T, cacheTTL time.Duration) (src secret.Source, ref string, rotate func(string), reads func() int)
	// bad are references that fail, with what the agent's error must say.
	bad map[string]string
}

const (
	cloudKeyOne = "cloud-key-one-Q7xv"
	cloudKeyTwo = "cloud-key-two-Lm3k"
)

var cloudSecrets = []cloudSecret{{
	scheme: "gcp-sm",
	src: func(t *testing.T, ttl time.Duration) (secret.Source, string, func(string), func() int) {
		f := cloudsecrettest.NewGCP(t)
		f.AddVersion("acme-prod", "upstream-key", cloudKeyOne)
		f.AddVersion("acme-prod", "locked", cloudKeyOne)
		f.Deny("acme-prod", "locked")
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", f.KeyFile)
		g := secret.NewGCPSecretManager(&secret.GCPConfig{Endpoint: f.URL, CacheTTL: ttl})
		t.Cleanup(func() { g.Close() })
		return g, "gcp-sm:projects/acme-prod/secrets/upstream-key/versions/latest",
			func(v string) { f.AddVersion("acme-prod", "upstream-key", v) }, func() int { return f.Stats().Reads }
	},
	bad: map[string]string{
		"gcp-sm:projects/acme-prod/secrets/missing":                 "there is no secret missing in project acme-prod",
		"gcp-sm:projects/acme-prod/secrets/locked/versions/latest":  "roles/secretmanager.secretAccessor",
		"gcp-sm:projects/acme-prod/secrets/upstream-key/versions/0": "gcp-sm:projects/PROJECT/secrets/SECRET/versions/VERSION",
	},
}, {
	scheme: "azure-kv",
	src: func(t *testing.T, ttl time.Duration) (secret.Source, string, func(string), func() int) {
		f := cloudsecrettest.NewAzure(t, "client-secret-canary")
		f.Set("acme-prod", "upstream-key", cloudKeyOne)
		f.Set("acme-prod", "locked", cloudKeyOne)
		f.Deny("acme-prod", "locked")
		a, err := secret.NewAzureKeyVault(&secret.AzureConfig{TenantID: cloudsecrettest.AzureTenantID, ClientID: cloudsecrettest.AzureClientID,
			ClientSecret: "env:AZ", Secrets: secret.Env{Lookup: func(string) (string, bool) { return "client-secret-canary", true }},
			AuthorityHost: cloudsecrettest.AzureAuthorityHost, Transport: f.Client(), CacheTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return a, "azure-kv:acme-prod/upstream-key", func(v string) { f.Set("acme-prod", "upstream-key", v) }, func() int { return f.Stats().Reads }
	},
	bad: map[string]string{
		"azure-kv:acme-prod/missing":     "there is no secret missing in vault https://acme-prod.vault.azure.net",
		"azure-kv:acme-prod/locked":      `"Key Vault Secrets User"`,
		"azure-kv:acme-prod/upstream/00": "azure-kv:VAULT/SECRET",
	},
}}

// keyUpstream accepts the keys in valid as bearer tokens and echoes the Authorization header
// back (a careless upstream), recording every header it saw.
type keyUpstream struct {
	mu    sync.Mutex
	valid map[string]bool
	seen  []string
}

func (u *keyUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	a := r.Header.Get("Authorization")
	u.seen = append(u.seen, a)
	if !u.valid[strings.TrimPrefix(a, "Bearer ")] {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"invalid_auth","you_sent":"` + a + `"}`))
		return
	}
	w.Write([]byte(`{"ok":true,"echo":"` + a + `"}`))
}

func (u *keyUpstream) accept(keys ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.valid = map[string]bool{}
	for _, k := range keys {
		u.valid[k] = true
	}
}

func (u *keyUpstream) saw() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func loadCloudSecret(t *testing.T, src secret.Source, scheme, ref string, secretTTL time.Duration) (*host.Host, *hosttest.Recorder, *keyUpstream) {
	t.Helper()
	up := &keyUpstream{}
	up.accept(cloudKeyOne)
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, rec := hosttest.New(t, host.Config{Secrets: secret.Mux{scheme: src}, SecretTTL: secretTTL})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"*"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": ref}),
		Upstreams:   map[string]string{"https://api.example.test": srv.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec, up
}

func noCloudKeys(t *testing.T, rec *hosttest.Recorder, results ...abi.HTTPResponse) {
	t.Helper()
	b, _ := json.Marshal(rec.Audit.Events())
	out, _ := json.Marshal(results)
	for _, k := range []string{cloudKeyOne, cloudKeyTwo, "client-secret-canary", "ya29.fake", "fake-entra-token"} {
		for what, s := range map[string]string{"the audit log": string(b), "the logs": rec.Logs(), "a tool result": string(out)} {
			if strings.Contains(s, k) {
				t.Errorf("%s reached %s", k, what)
			}
		}
	}
}

// The key an upstream needs lives in a cloud secret manager. It is rotated (a new version
// becomes current) and the upstream refuses the old one with 401: the host reads the secret
// again at once, past both its own TTL (an hour here) and the source's cache (30 s), and
// replays the request once with the new key.
func TestCloudSecretRotatedAfter401(t *testing.T) {
	for _, cs := range cloudSecrets {
		t.Run(cs.scheme, func(t *testing.T) {
			src, ref, rotate, reads := cs.src(t, 30*time.Second)
			h, rec, up := loadCloudSecret(t, src, cs.scheme, ref, time.Hour)
			req := abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/v1/x", Credential: "token"}
			var results []abi.HTTPResponse
			for range 3 {
				resp := fetch(t, h, req)
				if resp.Status != 200 {
					t.Fatalf("before rotation: status %d", resp.Status)
				}
				results = append(results, resp)
			}
			if n := reads(); n != 1 {
				t.Errorf("3 calls read the secret manager %d times, want 1 (cached)", n)
			}
			if !strings.Contains(string(results[0].Body), secret.Redacted) {
				t.Errorf("the upstream's echo of the key was not redacted: %s", results[0].Body)
			}

			rotate(cloudKeyTwo)
			up.accept(cloudKeyTwo)
			resp := fetch(t, h, req)
			if resp.Status != 200 {
				t.Fatalf("after rotation: status %d, want the 401 answered by one replay with the new key", resp.Status)
			}
			results = append(results, resp)
			want := []string{"Bearer " + cloudKeyOne, "Bearer " + cloudKeyOne, "Bearer " + cloudKeyOne, "Bearer " + cloudKeyOne, "Bearer " + cloudKeyTwo}
			if got := up.saw(); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("the upstream saw %q, want %q (one replay with the new key)", got, want)
			}
			if n := reads(); n != 2 {
				t.Errorf("the secret manager was read %d times in all, want 2", n)
			}

			// Revoked with nothing new at the source: one replay at most, then the 401 reaches
			// the plugin (no loop).
			up.accept()
			before := len(up.saw())
			if resp := fetch(t, h, req); resp.Status != 401 {
				t.Errorf("a key refused and not rotated: status %d, want 401", resp.Status)
			} else {
				results = append(results, resp)
			}
			if n := len(up.saw()) - before; n != 1 {
				t.Errorf("a refused key that did not change was sent %d times, want 1 (no replay with the same value)", n)
			}
			noCloudKeys(t, rec, results...)
		})
	}
}

// Without a 401 (the upstream accepts old and new keys for a while, as most rotations allow),
// the new version is used once the host's TTL has passed.
func TestCloudSecretRotatedAfterTTL(t *testing.T) {
	for _, cs := range cloudSecrets {
		t.Run(cs.scheme, func(t *testing.T) {
			src, ref, rotate, _ := cs.src(t, -1)
			const ttl = 200 * time.Millisecond
			h, rec, up := loadCloudSecret(t, src, cs.scheme, ref, ttl)
			req := abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/v1/x", Credential: "token"}
			r1 := fetch(t, h, req)
			rotate(cloudKeyTwo)
			up.accept(cloudKeyOne, cloudKeyTwo)
			time.Sleep(ttl + 100*time.Millisecond)
			r2 := fetch(t, h, req)
			if r1.Status != 200 || r2.Status != 200 {
				t.Fatalf("statuses %d, %d", r1.Status, r2.Status)
			}
			if got := up.saw(); len(got) != 2 || got[1] != "Bearer "+cloudKeyTwo {
				t.Errorf("the upstream saw %q, want the new key on the call after the TTL", got)
			}
			noCloudKeys(t, rec, r1, r2)
		})
	}
}

// A reference that cannot resolve takes down only its connector's tools, with an error saying
// what an admin must do, and no secret in it.
func TestCloudSecretUnavailable(t *testing.T) {
	for _, cs := range cloudSecrets {
		t.Run(cs.scheme, func(t *testing.T) {
			src, _, _, _ := cs.src(t, -1)
			for ref, want := range cs.bad {
				h, rec, up := loadCloudSecret(t, src, cs.scheme, ref, time.Hour)
				args, _ := json.Marshal(abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/v1/x", Credential: "token"})
				res := call(h, "hostile.fetch", string(args))
				if res.OK || res.Error == nil || res.Error.Code != "credential_unavailable" {
					t.Errorf("%s: result %+v, want credential_unavailable", ref, res)
					continue
				}
				if !strings.Contains(res.Error.Message, want) {
					t.Errorf("%s: the agent was told %q\nwant it to contain %q", ref, res.Error.Message, want)
				}
				if len(up.saw()) != 0 {
					t.Errorf("%s: the upstream was called without a credential", ref)
				}
				noCloudKeys(t, rec)
				if strings.Contains(res.Error.Message, cloudKeyOne) {
					t.Errorf("%s: the error carries the key", ref)
				}
			}
		})
	}
}
