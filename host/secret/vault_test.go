package secret_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
)

const (
	vaultToken    = "hvs.canary-static-TOKEN-91f"
	vaultRoleID   = "role-canary-0c5"
	vaultSecretID = "secretid-canary-77d"
)

// fakeVault answers like a Vault / OpenBao server with a KV v2 engine at "secret" and the
// AppRole auth method at "approle", using the documented response shapes.
type fakeVault struct {
	t         *testing.T
	namespace string

	mu       sync.Mutex
	tokens   map[string]bool // valid tokens
	logins   int
	reads    int
	lease    int // lease_duration of AppRole tokens, in seconds
	lastRead http.Header
	loginHdr http.Header
}

func newFakeVault(t *testing.T) (*fakeVault, *httptest.Server) {
	f := &fakeVault{t: t, tokens: map[string]bool{vaultToken: true}, lease: 60}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeVault) revokeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.namespace != "" && r.Header.Get("X-Vault-Namespace") != f.namespace {
		writeJSON(w, 403, `{"errors":["permission denied"]}`)
		return
	}
	if r.URL.Path == "/v1/auth/approle/login" {
		f.loginHdr = r.Header.Clone()
		var body struct{ RoleID, SecretID string }
		var raw map[string]string
		_ = json.NewDecoder(r.Body).Decode(&raw)
		body.RoleID, body.SecretID = raw["role_id"], raw["secret_id"]
		if r.Method != http.MethodPut && r.Method != http.MethodPost || body.RoleID != vaultRoleID || body.SecretID != vaultSecretID {
			writeJSON(w, 400, `{"errors":["invalid role or secret ID"]}`)
			return
		}
		f.logins++
		tok := fmt.Sprintf("hvs.approle-canary-%d", f.logins)
		f.tokens[tok] = true
		writeJSON(w, 200, fmt.Sprintf(`{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":null,"wrap_info":null,"warnings":null,
			"auth":{"client_token":%q,"accessor":"a","policies":["default","airlock"],"token_policies":["default","airlock"],
			"metadata":{"role_name":"airlock"},"lease_duration":%d,"renewable":true,"entity_id":"e","token_type":"service","orphan":true}}`, tok, f.lease))
		return
	}
	if !f.tokens[r.Header.Get("X-Vault-Token")] {
		// A hostile or misconfigured server may echo anything: our errors must not repeat it.
		writeJSON(w, 403, `{"errors":["permission denied", "token `+r.Header.Get("X-Vault-Token")+`"]}`)
		return
	}
	if r.Method != http.MethodGet {
		writeJSON(w, 405, `{"errors":[]}`)
		return
	}
	f.reads++
	f.lastRead = r.Header.Clone()
	version := r.URL.Query().Get("version")
	meta := func(v int, deleted string) string {
		return fmt.Sprintf(`{"created_time":"2026-01-0%dT10:00:00Z","custom_metadata":null,"deletion_time":%q,"destroyed":false,"version":%d}`, v, deleted, v)
	}
	switch r.URL.Path {
	case "/v1/secret/data/slack/prod":
		switch version {
		case "", "0", "2":
			writeJSON(w, 200, `{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
				"data":{"data":{"bot_token":"`+canary+`","retries":3,"nested":{"a":"b"},"list":["x"],"flag":true,"nothing":null,"blank":""},
				"metadata":`+meta(2, "")+`},"wrap_info":null,"warnings":null,"auth":null}`)
		case "1":
			writeJSON(w, 200, `{"data":{"data":{"bot_token":"old-`+canary+`"},"metadata":`+meta(1, "")+`}}`)
		case "3":
			// A soft-deleted version: 404 with the metadata and null data.
			writeJSON(w, 404, `{"data":{"data":null,"metadata":`+meta(3, "2026-01-04T10:00:00Z")+`}}`)
		default:
			writeJSON(w, 404, `{"errors":[]}`)
		}
	case "/v1/secret/data/forbidden":
		writeJSON(w, 403, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`)
	case "/v1/secret/data/broken":
		writeJSON(w, 500, `{"errors":["internal error `+canary+`"]}`)
	default:
		writeJSON(w, 404, `{"errors":[]}`)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func staticSecrets(m map[string]string) secret.Source {
	return secret.Env{Lookup: func(name string) (string, bool) { v, ok := m[name]; return v, ok }}
}

func newTokenVault(t *testing.T, srv *httptest.Server, ttl time.Duration, clock *fakeClock) *secret.Vault {
	t.Helper()
	cfg := &secret.VaultConfig{
		Address:  srv.URL,
		Token:    "env:MY_VAULT_TOKEN",
		Secrets:  staticSecrets(map[string]string{"MY_VAULT_TOKEN": vaultToken}),
		CacheTTL: ttl,
	}
	if clock != nil {
		cfg.Now = clock.Now
	}
	v, err := secret.NewVault(cfg)
	if err != nil {
		t.Fatalf("NewVault: %v", err)
	}
	return v
}

var vaultCanaries = [][]byte{[]byte(canary), []byte(vaultToken), []byte(vaultRoleID), []byte(vaultSecretID), []byte("hvs.approle-canary")}

func TestVaultKVv2(t *testing.T) {
	f, srv := newFakeVault(t)
	v := newTokenVault(t, srv, -1, nil)
	ctx := context.Background()

	got, err := v.Resolve(ctx, "vault:secret/slack/prod#bot_token")
	if err != nil || got.Expose() != canary {
		t.Fatalf("Resolve(latest) = %v, want the canary", err)
	}
	if h := f.lastRead.Get("X-Vault-Token"); h != vaultToken {
		t.Errorf("the read carried token %q, want the configured one", h)
	}
	got, err = v.Resolve(ctx, "vault:secret/slack/prod#bot_token@1")
	if err != nil || got.Expose() != "old-"+canary {
		t.Errorf("Resolve(@1) = %v, want version 1's value", err)
	}

	tests := []struct {
		ref      string
		notFound bool
		want     string // in the error
	}{
		{"vault:secret/slack/prod#missing", true, `has no field "missing" (it has fields blank, bot_token, flag, list, nested, nothing, retries)`},
		{"vault:secret/slack/prod#retries", false, `field "retries" of secret secret/slack/prod is a number, not a string`},
		{"vault:secret/slack/prod#nested", false, "is an object, not a string"},
		{"vault:secret/slack/prod#list", false, "is a list"},
		{"vault:secret/slack/prod#flag", false, "is a boolean"},
		{"vault:secret/slack/prod#nothing", false, "is null"},
		{"vault:secret/slack/prod#blank", true, "is empty"},
		{"vault:secret/slack/prod#bot_token@3", true, "secret/slack/prod version 3 is deleted or destroyed"},
		{"vault:secret/slack/prod#bot_token@9", true, "there is no secret at secret/slack/prod version 9"},
		{"vault:secret/nope#x", true, `there is no secret at secret/nope (KV v2 mount "secret")`},
		{"vault:other/slack/prod#bot_token", true, "there is no secret at other/slack/prod"},
		{"vault:secret/forbidden#x", false, `permission denied reading secret/forbidden: give the token's policy the "read" capability on secret/data/forbidden`},
		{"vault:secret/broken#x", false, "failed with HTTP status 500"},
	}
	for _, tt := range tests {
		_, err := v.Resolve(ctx, tt.ref)
		if err == nil {
			t.Errorf("Resolve(%q) succeeded, want an error", tt.ref)
			continue
		}
		if errors.Is(err, secret.ErrNotFound) != tt.notFound {
			t.Errorf("Resolve(%q) = %v; errors.Is(ErrNotFound) = %v, want %v", tt.ref, err, !tt.notFound, tt.notFound)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Resolve(%q) = %v\nwant it to contain %q", tt.ref, err, tt.want)
		}
		if !strings.Contains(err.Error(), "secret/") && !strings.Contains(err.Error(), "other/") {
			t.Errorf("Resolve(%q) = %v, want the error to name the reference", tt.ref, err)
		}
		noLeak(t, tt.ref, err, vaultCanaries...)
	}
}

func TestVaultRejectsMalformedReferences(t *testing.T) {
	f, srv := newFakeVault(t)
	v := newTokenVault(t, srv, -1, nil)
	for _, ref := range []string{
		"vault:", "vault:secret/x", "vault:secret/x#", "vault:secret#f", "vault:/x#f", "vault:secret//x#f",
		"vault:secret/../sys/raw#f", "vault:secret/x?version=1#f", "vault:secret/x#f@", "vault:secret/x#f@0",
		"vault:secret/x#f@-1", "vault:secret/x#f@+1", "vault:secret/x#f@1.5", "vault:secret/x%2f..#f", "vault:secret/a b#f",
		"vault:secret/x#f\x00", "env:X", canary, "vault:" + canary + "!#x",
	} {
		_, err := v.Resolve(context.Background(), ref)
		if err == nil {
			t.Errorf("Resolve(%q) succeeded, want an error", ref)
		}
		noLeak(t, "Resolve", err, vaultCanaries...)
	}
	if f.reads != 0 {
		t.Errorf("malformed references reached the server %d times", f.reads)
	}
}

func TestVaultCache(t *testing.T) {
	f, srv := newFakeVault(t)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	v := newTokenVault(t, srv, 30*time.Second, clock)
	ctx := context.Background()
	for range 3 {
		if _, err := v.Resolve(ctx, "vault:secret/slack/prod#bot_token"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Resolve(ctx, "vault:secret/slack/prod#retries"); err == nil {
		t.Fatal("want the non-string error from the cached secret")
	}
	if f.reads != 1 {
		t.Errorf("4 resolves of one secret within the TTL made %d reads, want 1", f.reads)
	}
	if _, err := v.Resolve(ctx, "vault:secret/slack/prod#bot_token@1"); err != nil {
		t.Fatal(err)
	}
	if f.reads != 2 {
		t.Errorf("another version made %d reads in total, want 2 (versions are cached apart)", f.reads)
	}
	clock.Add(31 * time.Second)
	if _, err := v.Resolve(ctx, "vault:secret/slack/prod#bot_token"); err != nil {
		t.Fatal(err)
	}
	if f.reads != 3 {
		t.Errorf("a resolve after the TTL made %d reads in total, want 3", f.reads)
	}
	// After a 401 the host asks past the cache.
	if _, err := v.Resolve(secret.Uncached(ctx), "vault:secret/slack/prod#bot_token"); err != nil {
		t.Fatal(err)
	}
	if f.reads != 4 {
		t.Errorf("an Uncached resolve within the TTL made %d reads in total, want 4", f.reads)
	}
	// Errors are not cached.
	_, _ = v.Resolve(ctx, "vault:secret/nope#x")
	_, _ = v.Resolve(ctx, "vault:secret/nope#x")
	if f.reads != 6 {
		t.Errorf("two failing reads made %d reads in total, want 6", f.reads)
	}
}

func newAppRoleVault(t *testing.T, srv *httptest.Server, clock *fakeClock, secretID string) *secret.Vault {
	t.Helper()
	v, err := secret.NewVault(&secret.VaultConfig{
		Address:  srv.URL,
		AppRole:  &secret.AppRole{RoleID: "env:ROLE", SecretID: "env:SECRET_ID"},
		Secrets:  staticSecrets(map[string]string{"ROLE": vaultRoleID, "SECRET_ID": secretID}),
		CacheTTL: -1,
		Now:      clock.Now,
	})
	if err != nil {
		t.Fatalf("NewVault: %v", err)
	}
	return v
}

func TestVaultAppRole(t *testing.T) {
	t.Setenv("VAULT_TOKEN", vaultToken) // must not be used when AppRole is configured
	f, srv := newFakeVault(t)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	v := newAppRoleVault(t, srv, clock, vaultSecretID)
	ctx := context.Background()
	const ref = "vault:secret/slack/prod#bot_token"

	// Many concurrent first calls log in once.
	var wg sync.WaitGroup
	var fails atomic.Int64
	for range 20 {
		wg.Go(func() {
			if got, err := v.Resolve(ctx, ref); err != nil || got.Expose() != canary {
				fails.Add(1)
			}
		})
	}
	wg.Wait()
	if fails.Load() != 0 || f.logins != 1 {
		t.Fatalf("20 concurrent first calls: %d failed, %d logins; want 0 and 1", fails.Load(), f.logins)
	}
	if f.loginHdr.Get("X-Vault-Token") != "" {
		t.Error("the login request carried a token")
	}
	if got := f.lastRead.Get("X-Vault-Token"); got != "hvs.approle-canary-1" {
		t.Errorf("reads use token %q, want the AppRole token", got)
	}

	// Within the lease: no new login. Past it: one new login.
	clock.Add(30 * time.Second)
	if _, err := v.Resolve(ctx, ref); err != nil || f.logins != 1 {
		t.Fatalf("within the lease: %v, %d logins; want success and 1", err, f.logins)
	}
	clock.Add(31 * time.Second)
	if _, err := v.Resolve(ctx, ref); err != nil || f.logins != 2 {
		t.Fatalf("after the lease: %v, %d logins; want success and 2", err, f.logins)
	}

	// The server revokes the token early: the 403 triggers one re-login and the read succeeds.
	f.revokeAll()
	if got, err := v.Resolve(ctx, ref); err != nil || got.Expose() != canary || f.logins != 3 {
		t.Fatalf("after revocation: %v, %d logins; want success and 3", err, f.logins)
	}

	// A genuinely forbidden path: one re-login at most, then a clear error, no loop.
	logins := f.logins
	_, err := v.Resolve(ctx, "vault:secret/forbidden#x")
	if err == nil || !strings.Contains(err.Error(), "permission denied reading secret/forbidden") {
		t.Errorf("forbidden path: %v", err)
	}
	if f.logins-logins > 1 {
		t.Errorf("a forbidden path caused %d logins, want at most 1", f.logins-logins)
	}
	noLeak(t, "forbidden", err, vaultCanaries...)
}

func TestVaultAppRoleRefused(t *testing.T) {
	f, srv := newFakeVault(t)
	clock := &fakeClock{now: time.Now()}
	v := newAppRoleVault(t, srv, clock, "wrong-"+vaultSecretID)
	_, err := v.Resolve(context.Background(), "vault:secret/slack/prod#bot_token")
	if err == nil || !strings.Contains(err.Error(), "AppRole login at auth/approle/login was refused with HTTP status 400") {
		t.Errorf("refused login: %v", err)
	}
	noLeak(t, "login", err, append(vaultCanaries, []byte("wrong-"+vaultSecretID))...)
	if f.reads != 0 {
		t.Errorf("%d reads without a token", f.reads)
	}

	// A reference to a missing secret_id says which one, without a value.
	v2, _ := secret.NewVault(&secret.VaultConfig{
		Address: srv.URL,
		AppRole: &secret.AppRole{RoleID: "env:ROLE", SecretID: "env:MISSING"},
		Secrets: staticSecrets(map[string]string{"ROLE": vaultRoleID}),
	})
	_, err = v2.Resolve(context.Background(), "vault:secret/slack/prod#bot_token")
	if !errors.Is(err, secret.ErrNotFound) || !strings.Contains(err.Error(), "secret_id") {
		t.Errorf("missing secret_id reference: %v", err)
	}
	if _, err := secret.NewVault(&secret.VaultConfig{AppRole: &secret.AppRole{RoleID: "env:R"}}); err == nil {
		t.Error("NewVault accepted AppRole without a secret_id")
	}
}

func TestVaultTokenAuthFailures(t *testing.T) {
	f, srv := newFakeVault(t)
	v := newTokenVault(t, srv, -1, nil)
	f.revokeAll()
	_, err := v.Resolve(context.Background(), "vault:secret/slack/prod#bot_token")
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("revoked token: %v", err)
	}
	noLeak(t, "revoked token", err, vaultCanaries...)

	t.Setenv("VAULT_TOKEN", "")
	v2, err := secret.NewVault(&secret.VaultConfig{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v2.Resolve(context.Background(), "vault:secret/slack/prod#bot_token")
	if !errors.Is(err, secret.ErrNotFound) || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Errorf("no token: %v", err)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	v3 := newTokenVault(t, closed, -1, nil)
	_, err = v3.Resolve(context.Background(), "vault:secret/slack/prod#bot_token")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the server") {
		t.Errorf("server down: %v", err)
	}
	noLeak(t, "server down", err, vaultCanaries...)
}

func TestVaultNamespaceAndDefaults(t *testing.T) {
	f, srv := newFakeVault(t)
	f.namespace = "team-a"
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", vaultToken)
	v, err := secret.NewVault(&secret.VaultConfig{Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Resolve(context.Background(), "vault:secret/slack/prod#bot_token"); err != nil || got.Expose() != canary {
		t.Errorf("VAULT_ADDR + VAULT_TOKEN + namespace: %v", err)
	}
	mux := secret.Mux{"vault": v}
	if _, err := mux.Resolve(context.Background(), "vault:secret/slack/prod#bot_token"); err != nil {
		t.Errorf("through a Mux: %v", err)
	}
}

func TestVaultRereadsARenewedTokenAfter403(t *testing.T) {
	f, srv := newFakeVault(t)
	var current atomic.Value
	current.Store(vaultToken)
	v, err := secret.NewVault(&secret.VaultConfig{
		Address:  srv.URL,
		Token:    "env:TOKEN_FROM_AGENT_SINK",
		Secrets:  secret.Env{Lookup: func(string) (string, bool) { return current.Load().(string), true }},
		CacheTTL: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ref = "vault:secret/slack/prod#bot_token"
	if _, err := v.Resolve(ctx, ref); err != nil {
		t.Fatal(err)
	}
	// The agent renews the token: the old one is revoked, the reference now yields a new one.
	f.revokeAll()
	f.mu.Lock()
	f.tokens["hvs.renewed-canary"] = true
	f.mu.Unlock()
	current.Store("hvs.renewed-canary")
	if got, err := v.Resolve(ctx, ref); err != nil || got.Expose() != canary {
		t.Fatalf("after the token was renewed: %v", err)
	}
	if got := f.lastRead.Get("X-Vault-Token"); got != "hvs.renewed-canary" {
		t.Errorf("read with token %q, want the renewed one", got)
	}
	// The same (revoked) token again: one attempt, a clear error, no loop.
	f.revokeAll()
	_, err = v.Resolve(ctx, ref)
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("revoked and not renewed: %v", err)
	}
	noLeak(t, "revoked", err, append(vaultCanaries, []byte("hvs.renewed-canary"))...)
}
