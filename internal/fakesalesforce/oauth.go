package fakesalesforce

import (
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Identifiers of the fake org, as they appear in token responses.
const (
	OrgID  = "00DD0000000FakeOrg"
	UserID = "005D0000001FakeUsr"
)

// MaxAssertionLifetime is how far ahead a JWT bearer assertion's exp may be: Salesforce accepts
// assertions that expire within three minutes.
const MaxAssertionLifetime = 3 * time.Minute

// assertionSkew is the clock skew tolerated on an exp already past. None is tolerated beyond
// MaxAssertionLifetime: an assertion valid for 3.5 minutes is refused.
const assertionSkew = 30 * time.Second

type jwtClient struct {
	username string
	key      *rsa.PublicKey
}

// RegisterJWTClient registers a connected app for the JWT bearer flow: assertions with iss
// consumerKey and sub username, signed (RS256) with the private key of pub, get a token.
func (s *Server) RegisterJWTClient(consumerKey, username string, pub *rsa.PublicKey) {
	s.mu.Lock()
	s.jwtClients[consumerKey] = &jwtClient{username: username, key: pub}
	s.mu.Unlock()
}

// RegisterClient registers a connected app for the client credentials flow.
func (s *Server) RegisterClient(clientID, clientSecret string) {
	s.mu.Lock()
	s.ccClients[clientID] = clientSecret
	s.mu.Unlock()
}

// TokenResponse is the token endpoint's success answer. Salesforce sends no expires_in.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	InstanceURL string `json:"instance_url"`
	ID          string `json:"id"`
	TokenType   string `json:"token_type"`
	IssuedAt    string `json:"issued_at"` // milliseconds since the epoch, as a string
	Signature   string `json:"signature"`
	Scope       string `json:"scope,omitempty"`
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func (s *Server) token(w http.ResponseWriter, r *http.Request, body []byte) int {
	w.Header().Set("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")
	if r.Method != http.MethodPost {
		return writeJSON(w, http.StatusMethodNotAllowed, oauthError{"invalid_request", "must use HTTP POST"})
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "the body must be application/x-www-form-urlencoded"})
	}
	var e *oauthError
	secret := ""
	switch form.Get("grant_type") {
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		e = s.checkAssertion(form.Get("assertion"))
		secret = "jwt"
	case "client_credentials":
		// Salesforce serves this flow only on an org's My Domain, never on login.salesforce.com
		// or test.salesforce.com.
		if !myDomain(s.audience) {
			e = &oauthError{"invalid_grant", "request not supported on this domain"}
			break
		}
		id, sec, ok := r.BasicAuth()
		if !ok {
			id, sec = form.Get("client_id"), form.Get("client_secret")
		}
		want, known := s.ccClients[id]
		if !known || id == "" || subtle.ConstantTimeCompare([]byte(want), []byte(sec)) != 1 {
			e = &oauthError{"invalid_client", "invalid client credentials"}
		}
		secret = want
	case "":
		e = &oauthError{"unsupported_grant_type", "grant type not supported"}
	default:
		e = &oauthError{"unsupported_grant_type", "grant type not supported"}
	}
	if e != nil {
		return writeJSON(w, http.StatusBadRequest, e)
	}
	tok := s.newToken()
	issued := strconv.FormatInt(s.now().UnixMilli(), 10)
	id := "https://login.salesforce.com/id/" + OrgID + "/" + UserID
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(id + issued))
	return writeJSON(w, http.StatusOK, TokenResponse{
		AccessToken: tok, InstanceURL: s.instanceURL, ID: id, TokenType: "Bearer", IssuedAt: issued,
		Signature: base64.StdEncoding.EncodeToString(mac.Sum(nil)), Scope: "api",
	})
}

// checkAssertion verifies a JWT bearer assertion the way Salesforce documents it.
func (s *Server) checkAssertion(assertion string) *oauthError {
	invalid := &oauthError{"invalid_grant", "invalid assertion"}
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return invalid
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Exp json.Number     `json:"exp"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		return invalid
	}
	if header.Alg != "RS256" {
		return &oauthError{"invalid_grant", "invalid assertion: the algorithm must be RS256"}
	}
	c, ok := s.jwtClients[claims.Iss]
	if !ok {
		return &oauthError{"invalid_client_id", "client identifier invalid"}
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(c.key, crypto.SHA256, digest[:], sig) != nil {
		return invalid
	}
	if !audienceOK(claims.Aud, s.audience) {
		return &oauthError{"invalid_grant", "audience is invalid"}
	}
	exp, err := claims.Exp.Int64()
	now := s.now()
	if err != nil || time.Unix(exp, 0).Before(now.Add(-assertionSkew)) {
		return &oauthError{"invalid_grant", "expired authorization code"}
	}
	if time.Unix(exp, 0).After(now.Add(MaxAssertionLifetime)) {
		return &oauthError{"invalid_grant", "invalid assertion: exp must be within 3 minutes"}
	}
	if claims.Sub != c.username {
		return &oauthError{"invalid_grant", "user hasn't approved this consumer"}
	}
	return nil
}

// myDomain reports whether a login URL is an org's My Domain (https://acme.my.salesforce.com,
// https://acme--dev.sandbox.my.salesforce.com).
func myDomain(loginURL string) bool {
	u, err := url.Parse(loginURL)
	return err == nil && strings.HasSuffix(u.Hostname(), ".my.salesforce.com")
}

// audienceOK accepts aud as a string or an array holding want.
func audienceOK(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, a := range many {
			if a == want {
				return true
			}
		}
	}
	return false
}
