package secret_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/cloudsecrettest"
)

// newGCP starts a fake Secret Manager holding projects/test-project/secrets/slack-bot (two
// versions, the canary in the second) and returns a source that finds its service account key
// through Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS), as a host does.
func newGCP(t *testing.T, ttl time.Duration, clock *fakeClock) (*cloudsecrettest.GCP, *secret.GCPSecretManager) {
	t.Helper()
	f := cloudsecrettest.NewGCP(t)
	f.AddVersion("test-project", "slack-bot", "old-"+canary)
	f.AddVersion("test-project", "slack-bot", canary)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", f.KeyFile)
	cfg := &secret.GCPConfig{Endpoint: f.URL, CacheTTL: ttl}
	if clock != nil {
		cfg.Now = clock.Now
	}
	g := secret.NewGCPSecretManager(cfg)
	t.Cleanup(func() { g.Close() })
	return f, g
}

func TestGCPSecretManagerResolves(t *testing.T) {
	f, g := newGCP(t, -1, nil)
	ctx := context.Background()
	// The service account's JWT assertion is accepted once, and every read carries its token.
	resolves(t, g, map[string]string{
		"gcp-sm:projects/test-project/secrets/slack-bot/versions/latest": canary,
		"gcp-sm:projects/test-project/secrets/slack-bot":                 canary,
		"gcp-sm:projects/test-project/secrets/slack-bot/versions/2":      canary,
		"gcp-sm:projects/test-project/secrets/slack-bot/versions/1":      "old-" + canary,
	}, f.Stats, "ya29.fake-access-token-")

	// A JSON secret: one key of it.
	f.AddVersion("test-project", "salesforce", `{"client_id":"cid","client_secret":"`+canary+`","port":443}`)
	got, err := g.Resolve(ctx, "gcp-sm:projects/test-project/secrets/salesforce/versions/latest#client_secret")
	if err != nil || got.Expose() != canary {
		t.Errorf("Resolve(#client_secret) = %v, want the key's value", err)
	}
	// Through a Mux, as the host resolves it.
	if _, err := (secret.Mux{"gcp-sm": g}).Resolve(ctx, "gcp-sm:projects/test-project/secrets/slack-bot"); err != nil {
		t.Errorf("through a Mux: %v", err)
	}
}

func TestGCPSecretManagerErrors(t *testing.T) {
	f, g := newGCP(t, -1, nil)
	f.AddVersion("test-project", "salesforce", `{"client_id":"cid","client_secret":"`+canary+`","port":443}`)
	f.AddVersion("test-project", "plain", canary)
	f.AddVersion("test-project", "locked", canary)
	f.Deny("test-project", "locked")
	f.AddVersion("test-project", "retired", "v1-"+canary)
	f.AddVersion("test-project", "retired", "v2-"+canary)
	f.AddVersion("test-project", "retired", "v3-"+canary)
	f.SetState("test-project", "retired", 1, cloudsecrettest.Destroyed)
	f.SetState("test-project", "retired", 2, cloudsecrettest.Disabled)
	const p = "gcp-sm:projects/test-project/secrets/"
	failsClearly(t, g, []refError{
		{p + "nope/versions/latest", secret.ErrNotFound, "there is no secret nope in project test-project with an enabled version: create it (gcloud secrets create nope"},
		{p + "slack-bot/versions/7", secret.ErrNotFound, "there is no secret slack-bot in project test-project with a version 7"},
		{p + "locked/versions/latest", secret.ErrDenied, "grant the host's service account the role roles/secretmanager.secretAccessor on secret locked"},
		{p + "retired/versions/2", secret.ErrNotFound, "version 2 of secret retired is disabled: enable it (gcloud secrets versions enable 2 --secret retired"},
		{p + "retired/versions/1", secret.ErrNotFound, "version 1 of secret retired is destroyed and cannot come back"},
		{p + "salesforce/versions/latest#secret", secret.ErrNotFound, `has no key "secret" (it has fields client_id, client_secret, port)`},
		{p + "salesforce/versions/latest#port", nil, `key "port" is a number, not a string`},
		{p + "plain/versions/latest#key", secret.ErrNotFound, "is not a JSON object, so it has no key"},
	}, []byte(canary), []byte("ya29.fake"))
	// The latest version still resolves while older ones are disabled or destroyed.
	if v, err := g.Resolve(context.Background(), p+"retired"); err != nil || v.Expose() != "v3-"+canary {
		t.Errorf("latest of retired: %v", err)
	}
}

func TestGCPSecretManagerRejectsMalformedReferences(t *testing.T) {
	f, g := newGCP(t, -1, nil)
	for _, ref := range []string{
		"gcp-sm:", "gcp-sm:slack-bot", "gcp-sm:projects/test-project", "gcp-sm:projects/test-project/secrets/",
		"gcp-sm:projects/test-project/secrets/a/versions/", "gcp-sm:projects/test-project/secrets/a/versions/0",
		"gcp-sm:projects/test-project/secrets/a/versions/01", "gcp-sm:projects/test-project/secrets/a/versions/-1",
		"gcp-sm:projects/test-project/secrets/a/versions/newest", "gcp-sm:projects/Test-Project/secrets/a",
		"gcp-sm:projects/short/secrets/a", "gcp-sm:projects/test-project/secrets/a b", "gcp-sm:projects/test-project/secrets/a%2f..",
		"gcp-sm:projects/test-project/secrets/../secrets/a", "gcp-sm:projects/test-project/secrets/a/versions/1#",
		"gcp-sm:projects/test-project/secrets/a/versions/1/extra", "gcp-sm:projects/p-123456/locations/eu/secrets/a",
		"gcp-sm:projects/test-project/secrets/a?alt=media", "gcp-sm:" + canary, canary,
	} {
		_, err := g.Resolve(context.Background(), ref)
		if !errors.Is(err, secret.ErrBadReference) {
			t.Errorf("Resolve(%q) = %v, want ErrBadReference", ref, err)
		}
		if err != nil && !strings.Contains(err.Error(), "gcp-sm:projects/PROJECT/secrets/SECRET/versions/VERSION") {
			t.Errorf("Resolve(%q) = %v, want the error to show the syntax", ref, err)
		}
		noLeak(t, "Resolve", err, []byte(canary))
	}
	if n := f.Stats().Reads + f.Stats().Tokens; n != 0 {
		t.Errorf("malformed references reached the fake %d times", n)
	}
	// A project number is a valid project.
	f.AddVersion("123456789012", "n", canary)
	if _, err := g.Resolve(context.Background(), "gcp-sm:projects/123456789012/secrets/n/versions/1"); err != nil {
		t.Errorf("project number: %v", err)
	}
}

// Errors are not cached: a version enabled again is read at the next use.
func TestGCPSecretManagerDoesNotCacheErrors(t *testing.T) {
	f, g := newGCP(t, time.Hour, &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	f.AddVersion("test-project", "later", canary)
	f.SetState("test-project", "later", 1, cloudsecrettest.Disabled)
	if _, err := g.Resolve(context.Background(), "gcp-sm:projects/test-project/secrets/later"); !errors.Is(err, secret.ErrNotFound) {
		t.Fatalf("a disabled version: %v", err)
	}
	f.SetState("test-project", "later", 1, cloudsecrettest.Enabled)
	if _, err := g.Resolve(context.Background(), "gcp-sm:projects/test-project/secrets/later"); err != nil {
		t.Errorf("the version enabled again: %v (errors must not be cached)", err)
	}
}

func TestGCPSecretManagerChecksCRC32C(t *testing.T) {
	f, g := newGCP(t, -1, nil)
	f.CorruptChecksums()
	_, err := g.Resolve(context.Background(), "gcp-sm:projects/test-project/secrets/slack-bot")
	if err == nil || !strings.Contains(err.Error(), "does not match its CRC32C checksum") {
		t.Errorf("a corrupted payload: %v", err)
	}
	noLeak(t, "crc", err, []byte(canary))
}

func TestGCPSecretManagerCredentials(t *testing.T) {
	// A key the token endpoint does not know (another private key, same account): the signed
	// assertion is refused and the error says to check the key, without a token or a value.
	f, _ := newGCP(t, -1, nil)
	other := cloudsecrettest.NewGCP(t)
	kf, _ := os.ReadFile(other.KeyFile)
	forged := strings.Replace(string(kf), other.TokenURL, f.TokenURL, 1)
	path := t.TempDir() + "/forged.json"
	os.WriteFile(path, []byte(forged), 0o600)
	bad := secret.NewGCPSecretManager(&secret.GCPConfig{Endpoint: f.URL, CredentialsFile: path, CacheTTL: -1})
	defer bad.Close()
	_, err := bad.Resolve(context.Background(), "gcp-sm:projects/test-project/secrets/slack-bot")
	if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "token endpoint refused the host's credentials") {
		t.Errorf("a key signed by another private key: %v", err)
	}
	if f.Stats().Reads != 0 || len(f.Stats().Rejected) == 0 {
		t.Errorf("the forged assertion: %d accesses, rejections %q; want 0 and the signature refused", f.Stats().Reads, f.Stats().Rejected)
	}
	noLeak(t, "forged", err, []byte(canary))

	// The configured key file is used instead of ADC.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
	good := secret.NewGCPSecretManager(&secret.GCPConfig{Endpoint: f.URL, CredentialsFile: f.KeyFile, CacheTTL: -1})
	defer good.Close()
	if v, err := good.Resolve(context.Background(), "gcp-sm:projects/test-project/secrets/slack-bot"); err != nil || v.Expose() != canary {
		t.Errorf("credentials_file: %v", err)
	}

	// The access token revoked before it expires: Secret Manager answers 401, and the source
	// gets a new token and reads again, once.
	tokens := f.Stats().Tokens
	f.RevokeTokens()
	if v, err := good.Resolve(context.Background(), "gcp-sm:projects/test-project/secrets/slack-bot"); err != nil || v.Expose() != canary {
		t.Errorf("after the token was revoked: %v", err)
	}
	if n := f.Stats().Tokens - tokens; n != 1 {
		t.Errorf("%d new tokens after a revocation, want 1", n)
	}
	// Every token refused: one new token, then a clear error, no loop.
	f.RefuseAllTokens()
	tokens = f.Stats().Tokens
	_, err = good.Resolve(context.Background(), "gcp-sm:projects/test-project/secrets/slack-bot")
	if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "refused the host's Google credentials") {
		t.Errorf("tokens refused: %v", err)
	}
	if n := f.Stats().Tokens - tokens; n != 1 {
		t.Errorf("%d new tokens while every token is refused, want 1 (no loop)", n)
	}

	// Secret Manager unreachable (the token endpoint answers): a transient error naming the
	// secret, not ErrNotFound, so the host keeps the last value.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	unreachable := secret.NewGCPSecretManager(&secret.GCPConfig{Endpoint: down.URL, CredentialsFile: f.KeyFile, CacheTTL: -1})
	defer unreachable.Close()
	_, err = unreachable.Resolve(context.Background(), "gcp-sm:projects/test-project/secrets/slack-bot")
	if err == nil || errors.Is(err, secret.ErrNotFound) || errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "cannot reach Secret Manager") {
		t.Errorf("Secret Manager down: %v", err)
	}

	// No credentials anywhere: a clear error at the first use, not at start.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", t.TempDir()+"/missing.json")
	none := secret.NewGCPSecretManager(&secret.GCPConfig{Endpoint: f.URL})
	_, err = none.Resolve(context.Background(), "gcp-sm:projects/test-project/secrets/slack-bot")
	if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "no Google credentials found") {
		t.Errorf("no credentials: %v", err)
	}
}
