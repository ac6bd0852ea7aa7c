package secret_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/cloudsecrettest"
)

const azureClientSecret = "azure-client-secret-canary-5d1"

// newAzure starts a fake Key Vault and Entra ID with vault contoso-prod holding slack-bot (two
// versions, the canary current), and returns a source signing in with client credentials.
func newAzure(t *testing.T, ttl time.Duration, clock *fakeClock) (*cloudsecrettest.Azure, *secret.AzureKeyVault, string) {
	t.Helper()
	f := cloudsecrettest.NewAzure(t, azureClientSecret)
	old := f.Set("contoso-prod", "slack-bot", "old-"+canary)
	f.Set("contoso-prod", "slack-bot", canary)
	cfg := &secret.AzureConfig{TenantID: cloudsecrettest.AzureTenantID, ClientID: cloudsecrettest.AzureClientID, ClientSecret: "env:AZ_SECRET",
		Secrets:       staticSecrets(map[string]string{"AZ_SECRET": azureClientSecret}),
		AuthorityHost: cloudsecrettest.AzureAuthorityHost, Transport: f.Client(), CacheTTL: ttl}
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
	resolves(t, a, map[string]string{
		"azure-kv:contoso-prod/slack-bot":                                                         canary,
		"azure-kv:contoso-prod/slack-bot/" + old:                                                  "old-" + canary,
		"azure-kv:https://contoso-prod.vault.azure.net/slack-bot":                                 canary,
		"azure-kv:https://contoso-prod.vault.azure.net/secrets/slack-bot/" + old:                  "old-" + canary,
		"azure-kv:https://CONTOSO-PROD.vault.azure.net/secrets/slack-bot/" + strings.ToUpper(old): "old-" + canary,
	}, f.Stats, "eyJ0eXAiOiJKV1Qi.fake-entra-token-")
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
	failsClearly(t, a, []refError{
		{"azure-kv:contoso-prod/nope", secret.ErrNotFound, "there is no secret nope in vault https://contoso-prod.vault.azure.net: create it (az keyvault secret set --vault-name contoso-prod --name nope"},
		{"azure-kv:contoso-prod/slack-bot/0123456789abcdef0123456789abcdef", secret.ErrNotFound, "has no version 0123456789abcdef0123456789abcdef"},
		{"azure-kv:contoso-prod/locked", secret.ErrDenied, `assign the host's identity the role "Key Vault Secrets User"`},
		{"azure-kv:contoso-prod/paused", secret.ErrNotFound, "secret https://contoso-prod.vault.azure.net/secrets/paused is disabled: enable it"},
		{"azure-kv:contoso-prod/salesforce#client_secret", secret.ErrNotFound, `has no key "client_secret" (it has fields client_id, n)`},
		{"azure-kv:contoso-prod/salesforce#n", nil, `key "n" is a number, not a string`},
		{"azure-kv:contoso-prod/slack-bot#k", secret.ErrNotFound, "is not a JSON object"},
	}, azureCanaries...)
	// A vault URL in another cloud than the configured one is refused before any request.
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
	if n := f.Stats().Reads + f.Stats().Tokens; n != 0 {
		t.Errorf("malformed references reached the fake %d times", n)
	}
}

func TestAzureKeyVaultCredentials(t *testing.T) {
	f := cloudsecrettest.NewAzure(t, azureClientSecret)
	f.Set("contoso-prod", "slack-bot", canary)
	var current atomic.Value
	current.Store("wrong-" + azureClientSecret)
	a, err := secret.NewAzureKeyVault(&secret.AzureConfig{TenantID: cloudsecrettest.AzureTenantID, ClientID: cloudsecrettest.AzureClientID,
		ClientSecret: "env:AZURE_KV_CLIENT_SECRET", AuthorityHost: cloudsecrettest.AzureAuthorityHost, Transport: f.Client(), CacheTTL: -1,
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

	// The vault refuses the cached token (revoked early): the source signs in again, once.
	tokens := f.Stats().Tokens
	f.RevokeTokens()
	if v, err := a.Resolve(ctx, ref); err != nil || v.Expose() != canary {
		t.Errorf("after the token was revoked: %v", err)
	}
	if n := f.Stats().Tokens - tokens; n != 1 {
		t.Errorf("%d new tokens after a revocation, want 1", n)
	}

	// DefaultAzureCredential from the AZURE_* variables.
	t.Setenv("AZURE_TENANT_ID", cloudsecrettest.AzureTenantID)
	t.Setenv("AZURE_CLIENT_ID", cloudsecrettest.AzureClientID)
	t.Setenv("AZURE_CLIENT_SECRET", azureClientSecret)
	t.Setenv("AZURE_AUTHORITY_HOST", cloudsecrettest.AzureAuthorityHost)
	d, err := secret.NewAzureKeyVault(&secret.AzureConfig{Transport: f.Client(), CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := d.Resolve(ctx, ref); err != nil || v.Expose() != canary {
		t.Errorf("DefaultAzureCredential with AZURE_* variables: %v", err)
	}

	// A managed identity (App Service's IDENTITY_ENDPOINT), user-assigned.
	t.Setenv("IDENTITY_ENDPOINT", cloudsecrettest.AzureIdentityEndpoint)
	t.Setenv("IDENTITY_HEADER", cloudsecrettest.AzureIdentityHeader)
	mi, err := secret.NewAzureKeyVault(&secret.AzureConfig{ManagedIdentity: true, ClientID: "11111111-2222-3333-4444-555555555555", Transport: f.Client(), CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := mi.Resolve(ctx, ref); err != nil || v.Expose() != canary {
		t.Errorf("managed identity: %v", err)
	}

	// Every token refused: one more sign-in, then a clear error, no loop.
	f.RefuseAllTokens()
	tokens = f.Stats().Tokens
	_, err = d.Resolve(ctx, ref)
	if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "the vault refused the host's Entra ID token") {
		t.Errorf("tokens refused: %v", err)
	}
	if n := f.Stats().Tokens - tokens; n != 1 {
		t.Errorf("%d new tokens while every token is refused, want 1 (no loop)", n)
	}
	noLeak(t, "refused", err, azureCanaries...)

	for _, cfg := range []*secret.AzureConfig{
		{ClientSecret: "env:X"},
		{TenantID: "t", ClientID: "c", ClientSecret: "env:X", ManagedIdentity: true},
	} {
		if _, err := secret.NewAzureKeyVault(cfg); err == nil {
			t.Errorf("NewAzureKeyVault(%+v) accepted an incomplete or contradictory identity", cfg)
		}
	}
}
