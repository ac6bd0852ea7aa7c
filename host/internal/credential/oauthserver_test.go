package credential_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/storage"
)

// The OAuth 2.0 server of these tests is ory/fosite (nobody here wrote it): PKCE enforced,
// refresh-token rotation with reuse detection, RFC 7523 JWT bearer grant, in-memory storage,
// on a loopback httptest server.

const (
	ccClientID     = "cc-client"
	webClientID    = "web-client"
	jwtClientID    = "3MVG9abc-jwt-client"
	jwtUser        = "integration@acme.com"
	clientSecret   = "canary-client-secret-Hq3Zk8Vw"
	testUser       = "alice-at-provider"
	rsaKeyID       = "rsa-1"
	ecKeyID        = "ec-1"
	serverHMACSeed = "fosite-global-secret-of-32-bytes!!"
)

type oauthServer struct {
	*httptest.Server
	t        *testing.T
	store    *storage.MemoryStore
	provider fosite.OAuth2Provider
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey

	mu          sync.Mutex
	hits        map[string]int // grant_type → token endpoint requests
	seen        []string       // every assertion, code and token the server handed out or received
	omitExpiry  bool
	instanceURL string
	failStatus  int // if set, the token endpoint answers this status
}

func newOAuthServer(t *testing.T) *oauthServer {
	t.Helper()
	s := &oauthServer{t: t, hits: map[string]int{}}
	s.Server = httptest.NewUnstartedServer(nil)
	s.Server.Start()
	t.Cleanup(s.Close)

	hasher := &fosite.BCrypt{Config: &fosite.Config{HashCost: 4}}
	hash, err := hasher.Hash(context.Background(), []byte(clientSecret))
	if err != nil {
		t.Fatal(err)
	}
	s.rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	s.ecKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.store = storage.NewMemoryStore()
	s.store.Clients[ccClientID] = &fosite.DefaultClient{ID: ccClientID, Secret: hash,
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}}
	s.store.Clients[webClientID] = &fosite.DefaultClient{ID: webClientID, Secret: hash,
		RedirectURIs: []string{"http://127.0.0.1/callback"}, ResponseTypes: []string{"code"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"api", "offline"}}
	s.store.IssuerPublicKeys[jwtClientID] = storage.IssuerPublicKeys{Issuer: jwtClientID, KeysBySub: map[string]storage.SubjectPublicKeys{
		jwtUser: {Subject: jwtUser, Keys: map[string]storage.PublicKeyScopes{
			rsaKeyID: {Key: &jose.JSONWebKey{Key: s.rsaKey.Public(), Algorithm: "RS256", Use: "sig", KeyID: rsaKeyID}, Scopes: []string{"api"}},
			ecKeyID:  {Key: &jose.JSONWebKey{Key: s.ecKey.Public(), Algorithm: "ES256", Use: "sig", KeyID: ecKeyID}, Scopes: []string{"api"}},
		}},
	}}
	cfg := &fosite.Config{
		AccessTokenLifespan:                 time.Hour,
		GlobalSecret:                        []byte(serverHMACSeed),
		EnforcePKCE:                         true,
		EnablePKCEPlainChallengeMethod:      false,
		TokenURL:                            s.URL + "/token",
		GrantTypeJWTBearerCanSkipClientAuth: true, // Salesforce: the assertion is the client's proof
		ClientSecretsHasher:                 hasher,
	}
	sigKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	s.provider = compose.ComposeAllEnabled(cfg, s.store, sigKey)

	mux := http.NewServeMux()
	mux.HandleFunc("/auth", s.authorize)
	mux.HandleFunc("/token", s.token)
	s.Config.Handler = mux
	return s
}

func (s *oauthServer) tokenURL() string     { return s.URL + "/token" }
func (s *oauthServer) authorizeURL() string { return s.URL + "/auth" }

func (s *oauthServer) count(grant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[grant]
}

func (s *oauthServer) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.hits {
		n += v
	}
	return n
}

func (s *oauthServer) secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{clientSecret}, s.seen...)
}

// authorize auto-consents for testUser: the test drives it with an HTTP GET.
func (s *oauthServer) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	sess := openid.NewDefaultSession()
	sess.Subject = testUser
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	s.mu.Lock()
	s.seen = append(s.seen, resp.GetParameters().Get("code"))
	s.mu.Unlock()
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

func (s *oauthServer) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	_ = r.ParseForm()
	s.mu.Lock()
	if r.Header.Get("X-Test-Direct") != "" {
		s.hits["direct"]++
	} else {
		s.hits[r.PostForm.Get("grant_type")]++
	}
	for _, k := range []string{"assertion", "refresh_token", "code", "code_verifier"} {
		if v := r.PostForm.Get(k); v != "" {
			s.seen = append(s.seen, v)
		}
	}
	omit, inst, fail := s.omitExpiry, s.instanceURL, s.failStatus
	s.mu.Unlock()
	if fail != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fail)
		_, _ = w.Write([]byte(`{"error":"temporarily_unavailable"}`))
		return
	}
	ar, err := s.provider.NewAccessRequest(ctx, r, openid.NewDefaultSession())
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	m := resp.ToMap()
	if omit {
		delete(m, "expires_in")
	}
	if inst != "" {
		m["instance_url"] = inst
	}
	s.mu.Lock()
	for _, k := range []string{"access_token", "refresh_token"} {
		if v, _ := m[k].(string); v != "" {
			s.seen = append(s.seen, v)
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(m)
}

// refreshDirect posts a refresh grant as another client would, to see what the server thinks of
// a refresh token.
func (s *oauthServer) refreshDirect(t *testing.T, refreshToken string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	req, _ := http.NewRequest(http.MethodPost, s.tokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(webClientID, clientSecret)
	req.Header.Set("X-Test-Direct", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error
}

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
