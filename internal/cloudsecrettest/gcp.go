package cloudsecrettest

// GCP is a local Google Secret Manager: the REST/JSON API's AccessSecretVersion
// (GET /v1/projects/P/secrets/S/versions/V:access) with its documented response and error
// shapes, and an OAuth 2.0 token endpoint that issues access tokens for a service account's
// signed JWT assertion (RFC 7523, as Google's token_uri does). The unmodified official client
// talks to it through option.WithEndpoint and a service account key file whose token_uri points
// here.
//
// What it checks: the assertion's RS256 signature against the service account's public key, its
// iss, aud (the token_uri), scope and lifetime; the bearer token of every Secret Manager call;
// the caller's access per secret (roles/secretmanager.secretAccessor, granted by default).

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GCPClientEmail is the service account the key file names.
const GCPClientEmail = "airlock-host@test-project.iam.gserviceaccount.com"

// Version states, as the API names them.
const (
	Enabled   = "ENABLED"
	Disabled  = "DISABLED"
	Destroyed = "DESTROYED"
)

type version struct {
	data  []byte
	state string
}

// GCP is a fake Secret Manager with its token endpoint.
type GCP struct {
	recorder

	// URL is the Secret Manager endpoint (option.WithEndpoint); TokenURL the token_uri.
	URL, TokenURL string
	// KeyFile is a service account key file (JSON) whose token_uri is TokenURL.
	KeyFile string

	t   testing.TB
	key *rsa.PrivateKey

	secrets map[string][]version // "project/secret" → versions 1…n
	denied  map[string]bool      // "project/secret" the service account may not access
	badCRC  bool
}

// NewGCP starts a fake Secret Manager and its token endpoint, and writes a key file for them.
func NewGCP(t testing.TB) *GCP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := &GCP{t: t, key: key, secrets: map[string][]version{}, denied: map[string]bool{}}
	api := httptest.NewServer(http.HandlerFunc(s.serveAPI))
	tok := httptest.NewServer(http.HandlerFunc(s.serveToken))
	t.Cleanup(api.Close)
	t.Cleanup(tok.Close)
	s.URL, s.TokenURL = api.URL, tok.URL+"/token"

	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	kf, _ := json.Marshal(map[string]string{
		"type":                        "service_account",
		"project_id":                  "test-project",
		"private_key_id":              "0123456789abcdef",
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                GCPClientEmail,
		"client_id":                   "100000000000000000001",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   s.TokenURL,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"universe_domain":             "googleapis.com",
	})
	s.KeyFile = filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(s.KeyFile, kf, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// AddVersion adds a version holding data to project/secret (creating the secret) and returns
// its number; it becomes "latest", as a rotation does.
func (s *GCP) AddVersion(project, secret, data string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := project + "/" + secret
	s.secrets[k] = append(s.secrets[k], version{data: []byte(data), state: Enabled})
	return len(s.secrets[k])
}

// SetState sets the state of version n of project/secret (Disabled, Destroyed, Enabled).
func (s *GCP) SetState(project, secret string, n int, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.secrets[project+"/"+secret]
	v[n-1].state = state
	if state == Destroyed {
		v[n-1].data = nil
	}
}

// Deny removes the service account's access to project/secret.
func (s *GCP) Deny(project, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[project+"/"+secret] = true
}

// CorruptChecksums makes every later response carry a wrong CRC32C.
func (s *GCP) CorruptChecksums() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badCRC = true
}

func (s *GCP) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	oauthErr := func(code, desc string) {
		s.reject(desc)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		oauthErr("invalid_request", "POST to /token")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthErr("invalid_request", "form")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthErr("unsupported_grant_type", "grant_type "+gt)
		return
	}
	claims, err := s.verifyJWT(r.PostForm.Get("assertion"))
	if err != nil {
		oauthErr("invalid_grant", "Invalid JWT Signature: "+err.Error())
		return
	}
	now := time.Now().Unix()
	switch {
	case claims.Iss != GCPClientEmail:
		oauthErr("invalid_grant", "iss "+claims.Iss)
		return
	case claims.Aud != s.TokenURL:
		oauthErr("invalid_grant", "aud "+claims.Aud)
		return
	case !strings.Contains(" "+claims.Scope+" ", " https://www.googleapis.com/auth/cloud-platform "):
		oauthErr("invalid_scope", "scope "+claims.Scope)
		return
	case claims.Iat > now+60 || claims.Exp < now || claims.Exp-claims.Iat > 3600:
		oauthErr("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe")
		return
	}
	tok := s.issue(func(n int) string { return fmt.Sprintf("ya29.fake-access-token-%d", n) })
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

type jwtClaims struct {
	Iss   string `json:"iss"`
	Aud   string `json:"aud"`
	Scope string `json:"scope"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// verifyJWT checks an RS256 compact JWS against the service account's public key (RFC 7515).
func (s *GCP) verifyJWT(tok string) (*jwtClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a compact JWS")
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, fmt.Errorf("bad base64url")
	}
	var h struct{ Alg, Typ, Kid string }
	if err := json.Unmarshal(hb, &h); err != nil || h.Alg != "RS256" {
		return nil, fmt.Errorf("alg %q", h.Alg)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return nil, fmt.Errorf("signature")
	}
	var c jwtClaims
	if err := json.Unmarshal(cb, &c); err != nil {
		return nil, fmt.Errorf("claims")
	}
	return &c, nil
}

// apiError writes the JSON error shape of Google APIs (google.rpc.Status over HTTP).
func apiError(w http.ResponseWriter, code int, status, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
}

func (s *GCP) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	auth := r.Header.Get("Authorization")
	s.stats.LastAuthorization = auth
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || !s.valid(tok) {
		s.reject("API call without a valid bearer token")
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/"`)
		apiError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
		return
	}
	name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/"), ":access")
	p := strings.Split(name, "/")
	if r.Method != http.MethodGet || !ok || len(p) != 6 || p[0] != "projects" || p[2] != "secrets" || p[4] != "versions" {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "The requested URL was not found on this server.")
		return
	}
	project, secret, ver := p[1], p[3], p[5]
	k := project + "/" + secret
	if s.denied[k] {
		apiError(w, http.StatusForbidden, "PERMISSION_DENIED", fmt.Sprintf("Permission 'secretmanager.versions.access' denied for resource '%s' (or it may not exist). Token: %s", name, tok)) // echoes the token: the client must not repeat the server's words
		return
	}
	versions := s.secrets[k]
	n := len(versions)
	if ver != "latest" {
		var err error
		if n, err = strconv.Atoi(ver); err != nil || n < 1 {
			apiError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid resource field value in the request.")
			return
		}
	}
	if n == 0 || n > len(versions) {
		if len(versions) == 0 {
			apiError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Secret [projects/%s/secrets/%s] not found or has no versions.", project, secret))
		} else {
			apiError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("Secret Version [%s] not found.", name))
		}
		return
	}
	s.stats.Reads++
	v := versions[n-1]
	full := fmt.Sprintf("projects/%s/secrets/%s/versions/%d", project, secret, n)
	if v.state != Enabled {
		apiError(w, http.StatusBadRequest, "FAILED_PRECONDITION", fmt.Sprintf("Secret Version [%s] is in %s state.", full, v.state))
		return
	}
	sum := int64(crc32.Checksum(v.data, crc32.MakeTable(crc32.Castagnoli)))
	if s.badCRC {
		sum++
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"name": full,
		"payload": map[string]any{
			"data":       base64.StdEncoding.EncodeToString(v.data),
			"dataCrc32c": strconv.FormatInt(sum, 10), // int64 is a JSON string in proto3 JSON
		},
	})
}
