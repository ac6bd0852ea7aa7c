package secret_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/azurefake"
)

const azureClientSecret = "azure-client-secret-canary-5d1"

// newAzure starts a fake Key Vault and Entra ID with vault contoso-prod holding slack-bot (two
// versions, the canary current), and returns a source signing in with client credentials.
func newAzure(t *testing.T, ttl time.Duration, clock *fakeClock) (*azurefake.Server, *secret.AzureKeyVault, string) {
	t.Helper()
	f := azurefake.New(t, azureClientSecret)
	old := f.Set("contoso-prod", "slack-bot", "old-"+canary)
	f.Set("contoso-prod", "slack-bot", canary)
	cfg := &secret.AzureConfig{TenantID: azurefake.TenantID, ClientID: azurefake.ClientID, ClientSecret: "env:AZ_SECRET",
		Secrets:       staticSecrets(map[string]string{"AZ_SECRET": azureClientSecret}),
		AuthorityHost: azurefake.AuthorityHost, Transport: f.Client(), CacheTTL: ttl}
	if clock != nil {
		cfg.Now = clock.Now
	}
	a, err := secret.NewAzureKeyVault(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, a, old
}

var azureCanaries = [][]byte{[]byte(canary), []byte(azureClientSecret), []byte("fake-entra-token")}

func TestAzureKeyVaultResolves(t *testing.T) {
	f, a, old := newAzure(t, -1, nil)
	ctx := context.Background()
	for ref, want := range map[string]string{
		"azure-kv:contoso-prod/slack-bot":                                                         canary,
		"azure-kv:contoso-prod/slack-bot/" + old:                                                  "old-" + canary,
		"azure-kv:https://contoso-prod.vault.azure.net/slack-bot":                                 canary,
		"azure-kv:https://contoso-prod.vault.azure.net/secrets/slack-bot/" + old:                  "old-" + canary,
		"azure-kv:https://CONTOSO-PROD.vault.azure.net/secrets/slack-bot/" + strings.ToUpper(old): "old-" + canary,
	} {
		got, err := a.Resolve(ctx, ref)
		if err != nil || got.Expose() != want {
			t.Errorf("Resolve(%s) = %v, want the version's value", ref, err)
		}
	}
	if n := f.TokensIssued(); n != 1 {
		t.Errorf("%d tokens issued for 5 reads, want 1", n)
	}
	if a := f.LastAuthorization(); !strings.HasPrefix(a, "Bearer eyJ0eXAiOiJKV1Qi.fake-entra-token-") {
		t.Errorf("the read carried Authorization %q, want the Entra token", a)
	}
	if r := f.Rejected(); len(r) != 0 {
		t.Errorf("the fake refused or did not know requests: %q", r)
	}
	f.Set("contoso-prod", "salesforce", `{"client_id":"cid","client_secret":"`+canary+`"}`)
	if v, err := a.Resolve(ctx, "azure-kv:contoso-prod/salesforce#client_secret"); err != nil || v.Expose() != canary {
		t.Errorf("#client_secret: %v", err)
	}
	if _, err := (secret.Mux{"azure-kv": a}).Resolve(ctx, "azure-kv:contoso-prod/slack-bot"); err != nil {
		t.Errorf("through a Mux: %v", err)
	}
}

func TestAzureKeyVaultErrors(t *testing.T) {
	f, a, _ := newAzure(t, -1, nil)
	f.Set("contoso-prod", "locked", canary)
	f.Deny("contoso-prod", "locked")
	f.Set("contoso-prod", "paused", canary)
	f.Disable("contoso-prod", "paused", "")
	f.Set("contoso-prod", "salesforce", `{"client_id":"cid","n":1}`)
	tests := []struct {
		ref  string
		is   error
		want string
	}{
		{"azure-kv:contoso-prod/nope", secret.ErrNotFound, "there is no secret nope in vault https://contoso-prod.vault.azure.net: create it (az keyvault secret set --vault-name contoso-prod --name nope"},
		{"azure-kv:contoso-prod/slack-bot/0123456789abcdef0123456789abcdef", secret.ErrNotFound, "has no version 0123456789abcdef0123456789abcdef"},
		{"azure-kv:contoso-prod/locked", secret.ErrDenied, `assign the host's identity the role "Key Vault Secrets User"`},
		{"azure-kv:contoso-prod/paused", secret.ErrNotFound, "secret https://contoso-prod.vault.azure.net/secrets/paused is disabled: enable it"},
		{"azure-kv:contoso-prod/salesforce#client_secret", secret.ErrNotFound, `has no key "client_secret" (it has fields client_id, n)`},
		{"azure-kv:contoso-prod/salesforce#n", nil, `key "n" is a number, not a string`},
		{"azure-kv:contoso-prod/slack-bot#k", secret.ErrNotFound, "is not a JSON object"},
	}
	for _, tt := range tests {
		_, err := a.Resolve(context.Background(), tt.ref)
		if err == nil {
			t.Errorf("Resolve(%s) succeeded, want an error", tt.ref)
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("Resolve(%s) = %v, want errors.Is %v", tt.ref, err, tt.is)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Resolve(%s) = %v\nwant it to contain %q", tt.ref, err, tt.want)
		}
		noLeak(t, tt.ref, err, azureCanaries...)
	}
	// A vault that does not exist (no DNS name): the network error, without a value.
	_, err := a.Resolve(context.Background(), "azure-kv:https://contoso-prod.vault.azure.cn/x")
	if !errors.Is(err, secret.ErrBadReference) {
		t.Errorf("a vault in another cloud than configured: %v", err)
	}
}

func TestAzureKeyVaultRejectsMalformedReferences(t *testing.T) {
	f, a, _ := newAzure(t, -1, nil)
	for _, ref := range []string{
		"azure-kv:", "azure-kv:contoso-prod", "azure-kv:contoso-prod/", "azure-kv:ab/x", "azure-kv:1contoso/x",
		"azure-kv:contoso-/x", "azure-kv:con--toso/x", "azure-kv:a-vault-name-longer-than-24/x", "azure-kv:contoso-prod/sla_ck",
		"azure-kv:contoso-prod/slack/bot/x", "azure-kv:contoso-prod/slack-bot/abc", "azure-kv:contoso-prod/slack-bot/0123456789abcdef0123456789abcdeg",
		"azure-kv:contoso-prod/../x", "azure-kv:contoso-prod/x?api-version=1", "azure-kv:contoso-prod/x#",
		"azure-kv:http://contoso-prod.vault.azure.net/x", "azure-kv:https://evil.example/x", "azure-kv:https://contoso-prod.vault.azure.net.evil.example/x",
		"azure-kv:https://contoso-prod.vault.azure.net:8443/x", "azure-kv:" + canary + "/x!", canary,
	} {
		_, err := a.Resolve(context.Background(), ref)
		if !errors.Is(err, secret.ErrBadReference) {
			t.Errorf("Resolve(%q) = %v, want ErrBadReference", ref, err)
		}
		if err != nil && !strings.Contains(err.Error(), "azure-kv:VAULT/SECRET") {
			t.Errorf("Resolve(%q) = %v, want the syntax in the error", ref, err)
		}
		noLeak(t, "Resolve", err, []byte(canary))
	}
	if n := f.Gets() + f.TokensIssued(); n != 0 {
		t.Errorf("malformed references reached the fake %d times", n)
	}
}

// Rotation: az keyvault secret set makes a new current version. It is seen after the cache TTL,
// or at once with Reread (an upstream refused the cached value).
func TestAzureKeyVaultCacheAndRotation(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f, a, _ := newAzure(t, 30*time.Second, clock)
	ctx := context.Background()
	const ref = "azure-kv:contoso-prod/slack-bot"
	for range 3 {
		if v, err := a.Resolve(ctx, ref); err != nil || v.Expose() != canary {
			t.Fatalf("Resolve: %v", err)
		}
	}
	if n := f.Gets(); n != 1 {
		t.Errorf("3 reads within the TTL made %d Get Secret calls, want 1", n)
	}
	f.Set("contoso-prod", "slack-bot", "rotated-"+canary)
	if v, _ := a.Resolve(ctx, ref); v.Expose() != canary {
		t.Error("the cache did not hold the value within its TTL")
	}
	clock.Add(31 * time.Second)
	if v, err := a.Resolve(ctx, ref); err != nil || v.Expose() != "rotated-"+canary {
		t.Errorf("after the TTL: %v, want the rotated value", err)
	}
	f.Set("contoso-prod", "slack-bot", "again-"+canary)
	if v, err := a.Resolve(secret.Reread(ctx), ref); err != nil || v.Expose() != "again-"+canary {
		t.Errorf("Reread: %v, want the newest value", err)
	}
}

func TestAzureKeyVaultCredentials(t *testing.T) {
	f := azurefake.New(t, azureClientSecret)
	f.Set("contoso-prod", "slack-bot", canary)
	var current atomic.Value
	current.Store("wrong-" + azureClientSecret)
	a, err := secret.NewAzureKeyVault(&secret.AzureConfig{TenantID: azurefake.TenantID, ClientID: azurefake.ClientID,
		ClientSecret: "env:AZURE_KV_CLIENT_SECRET", AuthorityHost: azurefake.AuthorityHost, Transport: f.Client(), CacheTTL: -1,
		Secrets: secret.Env{Lookup: func(string) (string, bool) { return current.Load().(string), true }}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ref = "azure-kv:contoso-prod/slack-bot"
	_, err = a.Resolve(ctx, ref)
	if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "Entra ID refused the host's credentials (HTTP status 401): check the client secret env:AZURE_KV_CLIENT_SECRET is current") {
		t.Errorf("a wrong client secret: %v", err)
	}
	noLeak(t, "wrong secret", err, append(azureCanaries, []byte("wrong-"+azureClientSecret))...)
	// The admin fixes the client secret at its reference: the next read signs in with it.
	current.Store(azureClientSecret)
	if v, err := a.Resolve(ctx, ref); err != nil || v.Expose() != canary {
		t.Errorf("after the client secret was fixed: %v", err)
	}

	// DefaultAzureCredential from the AZURE_* variables.
	t.Setenv("AZURE_TENANT_ID", azurefake.TenantID)
	t.Setenv("AZURE_CLIENT_ID", azurefake.ClientID)
	t.Setenv("AZURE_CLIENT_SECRET", azureClientSecret)
	t.Setenv("AZURE_AUTHORITY_HOST", azurefake.AuthorityHost)
	d, err := secret.NewAzureKeyVault(&secret.AzureConfig{Transport: f.Client(), CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := d.Resolve(ctx, ref); err != nil || v.Expose() != canary {
		t.Errorf("DefaultAzureCredential with AZURE_* variables: %v", err)
	}

	for _, cfg := range []*secret.AzureConfig{
		{ClientSecret: "env:X"},
		{TenantID: "t", ClientID: "c", ClientSecret: "env:X", ManagedIdentity: true},
	} {
		if _, err := secret.NewAzureKeyVault(cfg); err == nil {
			t.Errorf("NewAzureKeyVault(%+v) accepted an incomplete or contradictory identity", cfg)
		}
	}
}
