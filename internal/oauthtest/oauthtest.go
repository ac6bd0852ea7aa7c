// Package oauthtest runs a real OAuth 2.0 authorization server for tests: ory/fosite (nobody here
// wrote it) with PKCE enforced, refresh-token rotation with reuse detection, the client
// credentials grant and the RFC 7523 JWT bearer grant, in-memory storage, on a loopback httptest
// server. Every token, code and assertion it hands out or receives is recorded, so tests can
// check none of them leaks.
package oauthtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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

// The clients, user and keys the server knows.
const (
	CCClientID   = "cc-client"                     // client credentials, scope api
	WebClientID  = "web-client"                    // authorization code + refresh, redirect http://127.0.0.1/callback (any port)
	JWTClientID  = "3MVG9abc-jwt-client"           // JWT bearer issuer
	JWTUser      = "integration@acme.com"          // JWT bearer subject
	ClientSecret = "canary-client-secret-Hq3Zk8Vw" // the secret of CCClientID and WebClientID
	User         = "alice-at-provider"             // who consents at /auth
	RSAKeyID     = "rsa-1"
	ECKeyID      = "ec-1"
	hmacSeed     = "fosite-global-secret-of-32-bytes!!"
)

// Server is the authorization server: /auth (consents for User at once) and /token. Set
// OmitExpiry, InstanceURL or FailStatus before the requests they should affect.
type Server struct {
	*httptest.Server
	store    *storage.MemoryStore
	provider fosite.OAuth2Provider
	RSAKey   *rsa.PrivateKey
	ECKey    *ecdsa.PrivateKey

	mu          sync.Mutex
	hits        map[string]int // grant_type → token endpoint requests
	seen        []string       // every assertion, code and token the server handed out or received
	issued      []string       // every access and refresh token it handed out
	OmitExpiry  bool
	InstanceURL string
	FailStatus  int // if set, the token endpoint answers this status
	revocations int
}

func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{hits: map[string]int{}}
	s.Server = httptest.NewUnstartedServer(nil)
	s.Server.Start()
	t.Cleanup(s.Close)

	hasher := &fosite.BCrypt{Config: &fosite.Config{HashCost: 4}}
	hash, err := hasher.Hash(context.Background(), []byte(ClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	s.RSAKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	s.ECKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s.store = storage.NewMemoryStore()
	s.store.Clients[CCClientID] = &fosite.DefaultClient{ID: CCClientID, Secret: hash,
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"}}
	s.store.Clients[WebClientID] = &fosite.DefaultClient{ID: WebClientID, Secret: hash,
		RedirectURIs: []string{"http://127.0.0.1/callback"}, ResponseTypes: []string{"code"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"api", "offline"}}
	s.store.IssuerPublicKeys[JWTClientID] = storage.IssuerPublicKeys{Issuer: JWTClientID, KeysBySub: map[string]storage.SubjectPublicKeys{
		JWTUser: {Subject: JWTUser, Keys: map[string]storage.PublicKeyScopes{
			RSAKeyID: {Key: &jose.JSONWebKey{Key: s.RSAKey.Public(), Algorithm: "RS256", Use: "sig", KeyID: RSAKeyID}, Scopes: []string{"api"}},
			ECKeyID:  {Key: &jose.JSONWebKey{Key: s.ECKey.Public(), Algorithm: "ES256", Use: "sig", KeyID: ECKeyID}, Scopes: []string{"api"}},
		}},
	}}
	cfg := &fosite.Config{
		AccessTokenLifespan:                 time.Hour,
		GlobalSecret:                        []byte(hmacSeed),
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
	mux.HandleFunc("/revoke", s.revoke)
	s.Config.Handler = mux
	return s
}

func (s *Server) TokenURL() string  { return s.URL + "/token" }
func (s *Server) RevokeURL() string { return s.URL + "/revoke" }

// revoke is the RFC 7009 revocation endpoint: revoking a refresh token ends its grant, and with
// it the access tokens issued under it.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	err := s.provider.NewRevocationRequest(r.Context(), r)
	if err == nil {
		s.mu.Lock()
		s.revocations++
		s.mu.Unlock()
	}
	s.provider.WriteRevocationResponse(r.Context(), w, err)
}

// Revocations counts the revocation requests the server accepted.
func (s *Server) Revocations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revocations
}
func (s *Server) AuthorizeURL() string { return s.URL + "/auth" }

func (s *Server) Count(grant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[grant]
}

func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.hits {
		n += v
	}
	return n
}

func (s *Server) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{ClientSecret}, s.seen...)
}

// authorize auto-consents for User: the test drives it with an HTTP GET.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
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
	sess.Subject = User
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

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
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
	omit, inst, fail := s.OmitExpiry, s.InstanceURL, s.FailStatus
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
			s.issued = append(s.issued, v)
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(m)
}

// refreshDirect posts a refresh grant as another client would, to see what the server thinks of
// a refresh token.
func (s *Server) RefreshDirect(t testing.TB, refreshToken string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	req, _ := http.NewRequest(http.MethodPost, s.TokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(WebClientID, ClientSecret)
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

// Issued reports whether the server handed out tok as an access or refresh token.
func (s *Server) Issued(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.issued, tok)
}

// SetClientSecret rotates the secret of a client (CCClientID or WebClientID): from now on the
// server accepts only the new one, as an IdP does after an admin rotates a leaked secret.
func (s *Server) SetClientSecret(t testing.TB, clientID, secret string) {
	t.Helper()
	hash, err := (&fosite.BCrypt{Config: &fosite.Config{HashCost: 4}}).Hash(context.Background(), []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := s.store.Clients[clientID].(*fosite.DefaultClient)
	if !ok {
		t.Fatalf("oauthtest: no client %s", clientID)
	}
	next := *c
	next.Secret = hash
	s.mu.Lock() // between requests: the handlers read the client map after this returns
	s.store.Clients[clientID] = &next
	s.mu.Unlock()
}

// RemoveKey makes the server forget one of the JWT bearer user's public keys (RSAKeyID or
// ECKeyID), as an IdP does when a leaked signing key is revoked.
func (s *Server) RemoveKey(keyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.store.IssuerPublicKeys[JWTClientID].KeysBySub[JWTUser].Keys, keyID)
}
