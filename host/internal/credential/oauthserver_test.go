package credential_test

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/oauthtest"
)

// The OAuth 2.0 server of these tests is ory/fosite, through internal/oauthtest.

const (
	ccClientID   = oauthtest.CCClientID
	webClientID  = oauthtest.WebClientID
	jwtClientID  = oauthtest.JWTClientID
	jwtUser      = oauthtest.JWTUser
	clientSecret = oauthtest.ClientSecret
	testUser     = oauthtest.User
	rsaKeyID     = oauthtest.RSAKeyID
	ecKeyID      = oauthtest.ECKeyID
)

func newOAuthServer(t *testing.T) *oauthtest.Server { return oauthtest.New(t) }

func pemKey(t *testing.T, key crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// clock is an injected clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
