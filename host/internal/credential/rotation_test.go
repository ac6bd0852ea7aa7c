package credential_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/internal/credential"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
)

// A leaked JWT bearer signing key is revoked at the IdP and the admin rewrote the mounted key
// file (read again only after an hour): the IdP refuses the next assertion, the provider reads
// the file at once, signs again with the new key and gets a token. Neither key reaches an error
// or a log.
func TestRotatedJWTKeyFileAfterRefusal(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "key.pem")
	oldKey, newKey := pemKey(t, e.srv.RSAKey), pemKey(t, e.srv.ECKey)
	os.WriteFile(file, []byte(oldKey), 0o600)
	cfg := e.config(manifest.KindOAuth2JWTBearer)
	cfg.PrivateKey = secret.Value{}
	cfg.PrivateKeyRef = credential.NewRef(credential.RefConfig{Connector: connector, Slot: "api", Field: "private_key",
		Reference: "file:" + file, Secrets: secret.Mux{"file": secret.File{}}, TTL: time.Hour, Scrubber: e.scrub})
	p := e.provider(cfg)
	first := e.cred(p, "")

	e.srv.RemoveKey(rsaKeyID)
	os.WriteFile(file, []byte(newKey), 0o600)
	p.Invalidate("", first.Token) // the upstream answered 401: the next Credential fetches
	if c, err := p.Credential(context.Background(), ""); err != nil || c.Token.Expose() == first.Token.Expose() {
		t.Fatalf("after the key rotation: %v, want a new token signed with the new key", err)
	}
	if n := e.srv.Count("urn:ietf:params:oauth:grant-type:jwt-bearer"); n != 3 {
		t.Errorf("jwt-bearer requests = %d, want 3 (first, refused with the revoked key, retried with the new)", n)
	}

	// A file that no longer holds a key: a clear error that quotes neither key.
	os.WriteFile(file, []byte("not a key"), 0o600)
	e.srv.RemoveKey(ecKeyID)
	p.Invalidate("", first.Token)
	p2 := e.provider(cfg) // a fresh provider, past any cool-down
	_, err := p2.Credential(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("with a broken key file: %v, want an error naming the private key", err)
	}
	for _, k := range []string{oldKey[30:90], newKey[30:90], "not a key"} {
		if strings.Contains(err.Error(), k) || strings.Contains(e.logs.String(), k) {
			t.Errorf("%q reached an error or the logs", k)
		}
	}
}

// A token endpoint whose tokens live less than the refresh margin (here no expires_in and an
// assumed lifetime of 30 s against the default 60 s margin) gets one request per Credential, not
// an endless loop of them.
func TestShortLivedTokenFetchedOnce(t *testing.T) {
	e := newEnv(t)
	e.srv.OmitExpiry = true
	cfg := e.config(manifest.KindOAuth2ClientCredentials)
	cfg.Slot.OAuth.AssumedLifetimeS = 30
	p := e.provider(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := p.Credential(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Count("client_credentials"); n != 1 {
		t.Errorf("token requests for one Credential = %d, want 1", n)
	}
}
