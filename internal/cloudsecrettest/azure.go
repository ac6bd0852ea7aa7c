package cloudsecrettest

// Azure is a local Azure Key Vault and Microsoft Entra ID for tests. Over TLS (the
// SDK refuses to send bearer tokens over plain HTTP) it serves, under their real names:
//
//   - Key Vault's Get Secret (GET https://NAME.vault.azure.net/secrets/SECRET[/VERSION]?api-version=…)
//     with the 401 WWW-Authenticate challenge the SDK's challenge policy expects before it asks
//     for a token, the error JSON {"error":{"code":"SecretNotFound",…}}, Forbidden for an
//     identity without access, and disabled versions;
//   - Entra ID's instance discovery, OpenID configuration and v2.0 token endpoint (client
//     credentials flow), which checks the client ID, the client secret and the scope.
//
// [Azure.Client] is an HTTP client that trusts the fake's CA and dials it for those names, so
// the unmodified azidentity and azsecrets clients talk to it with their own URLs.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The identity the fake Entra ID knows.
const (
	AzureTenantID      = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	AzureClientID      = "0b5c6a0e-7f0d-4b51-9a49-6f3b1ad2c7e1"
	AzureAuthorityHost = "https://login.airlock.test/"
	// AzureIdentityEndpoint and AzureIdentityHeader are what App Service gives a managed identity
	// (IDENTITY_ENDPOINT, IDENTITY_HEADER).
	AzureIdentityEndpoint = "https://login.airlock.test/msi/token"
	AzureIdentityHeader   = "fake-identity-header-3c9"
	loginHost             = "login.airlock.test"
	discoveryHost         = "login.microsoftonline.com" // Entra ID's instance discovery, asked about any authority host it does not know
	vaultSuffix           = ".vault.azure.net"
)

type kvVersion struct {
	id      string
	value   string
	enabled bool
}

// Azure is a fake Key Vault service (any vault NAME.vault.azure.net) with its Entra ID.
type Azure struct {
	recorder

	t   testing.TB
	srv *httptest.Server
	ca  *x509.CertPool

	secret string                            // the client secret Entra ID accepts
	vaults map[string]map[string][]kvVersion // vault → secret → versions, newest last
	denied map[string]bool                   // "vault/secret" or "vault" the identity may not read
}

// NewAzure starts the fake; clientSecret is the client secret of [AzureClientID] it accepts.
func NewAzure(t testing.TB, clientSecret string) *Azure {
	t.Helper()
	s := &Azure{t: t, secret: clientSecret, vaults: map[string]map[string][]kvVersion{}, denied: map[string]bool{}}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cloudsecrettest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: "*" + vaultSuffix}, DNSNames: []string{"*" + vaultSuffix, loginHost, discoveryHost},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	s.ca = x509.NewCertPool()
	s.ca.AddCert(caCert)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// Client returns an HTTP client that trusts the fake's CA and reaches the fake for
// login.airlock.test, login.microsoftonline.com (instance discovery) and *.vault.azure.net, and
// nothing else.
func (s *Azure) Client() *http.Client {
	addr := s.srv.Listener.Addr().String()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.ca, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(hostport)
			if host != loginHost && host != discoveryHost && !strings.HasSuffix(host, vaultSuffix) {
				return nil, fmt.Errorf("cloudsecrettest: no route to %s", host)
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}}
}

// Set stores value as a new version of vault/secret, which becomes its current version (as
// az keyvault secret set does), and returns the version's ID.
func (s *Azure) Set(vault, secret, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	if s.vaults[vault] == nil {
		s.vaults[vault] = map[string][]kvVersion{}
	}
	s.vaults[vault][secret] = append(s.vaults[vault][secret], kvVersion{id: id, value: value, enabled: true})
	return id
}

// Disable disables version id of vault/secret ("" the current one).
func (s *Azure) Disable(vault, secret, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.vaults[vault][secret]
	for i := range vs {
		if vs[i].id == id || id == "" && i == len(vs)-1 {
			vs[i].enabled = false
		}
	}
}

// Deny takes away the identity's access to vault/secret (secret "" for the whole vault).
func (s *Azure) Deny(vault, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[strings.TrimSuffix(vault+"/"+secret, "/")] = true
}

// SetClientSecret rotates the application's client secret; tokens already issued stay valid.
func (s *Azure) SetClientSecret(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secret = secret
}

func (s *Azure) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	host, _, _ := strings.Cut(r.Host, ":")
	if host == loginHost || host == discoveryHost {
		s.serveEntra(w, r)
		return
	}
	if vault, ok := strings.CutSuffix(host, vaultSuffix); ok {
		s.serveVault(w, r, vault)
		return
	}
	s.reject("unknown host " + r.Host)
	http.NotFound(w, r)
}

func (s *Azure) serveEntra(w http.ResponseWriter, r *http.Request) {
	base := strings.TrimSuffix(AzureAuthorityHost, "/")
	tenantPath := "/" + AzureTenantID
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/common/discovery/instance":
		writeJSON(w, 200, map[string]any{
			"tenant_discovery_endpoint": base + tenantPath + "/v2.0/.well-known/openid-configuration",
			"api-version":               "1.1",
			"metadata":                  []any{map[string]any{"preferred_network": loginHost, "preferred_cache": loginHost, "aliases": []string{loginHost}}},
		})
	case r.Method == http.MethodGet && r.URL.Path == tenantPath+"/v2.0/.well-known/openid-configuration":
		writeJSON(w, 200, map[string]any{
			"token_endpoint":                        base + tenantPath + "/oauth2/v2.0/token",
			"authorization_endpoint":                base + tenantPath + "/oauth2/v2.0/authorize",
			"issuer":                                base + tenantPath + "/v2.0",
			"jwks_uri":                              base + tenantPath + "/discovery/v2.0/keys",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"tenant_region_scope":                   "WW",
		})
	case r.Method == http.MethodGet && r.URL.Path == "/msi/token": // App Service's managed identity endpoint
		q := r.URL.Query()
		switch {
		case r.Header.Get("X-IDENTITY-HEADER") != AzureIdentityHeader:
			s.reject("msi: wrong X-IDENTITY-HEADER")
			writeJSON(w, 400, map[string]any{"statusCode": 400, "message": "Missing or invalid X-IDENTITY-HEADER"})
		case q.Get("api-version") == "" || q.Get("resource") != "https://vault.azure.net":
			s.reject("msi: resource " + q.Get("resource"))
			writeJSON(w, 400, map[string]any{"statusCode": 400, "message": "invalid resource or api-version"})
		default:
			tok := s.issue(func(n int) string { return fmt.Sprintf("eyJ0eXAiOiJKV1Qi.fake-entra-token-%d", n) })
			writeJSON(w, 200, map[string]any{"access_token": tok, "expires_on": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
				"resource": q.Get("resource"), "token_type": "Bearer", "client_id": q.Get("client_id")})
		}
	case r.Method == http.MethodPost && r.URL.Path == tenantPath+"/oauth2/v2.0/token":
		_ = r.ParseForm()
		f := r.PostForm
		aadErr := func(code int, e, desc string, n int) {
			s.reject("token: " + desc)
			writeJSON(w, code, map[string]any{"error": e, "error_description": desc, "error_codes": []int{n},
				"timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"), "trace_id": "00000000-0000-0000-0000-000000000000"})
		}
		switch {
		case f.Get("grant_type") != "client_credentials":
			aadErr(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", 70003)
		case f.Get("client_id") != AzureClientID:
			aadErr(400, "unauthorized_client", "AADSTS700016: Application not found in the directory.", 700016)
		case f.Get("client_secret") != s.secret:
			aadErr(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.", 7000215)
		case !slices.Contains(strings.Fields(f.Get("scope")), "https://vault.azure.net/.default"): // MSAL adds openid offline_access profile
			aadErr(400, "invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' is not valid: "+f.Get("scope"), 70011)
		default:
			tok := s.issue(func(n int) string { return fmt.Sprintf("eyJ0eXAiOiJKV1Qi.fake-entra-token-%d", n) })
			writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok})
		}
	default:
		s.reject("entra: unknown " + r.Method + " " + r.URL.Path)
		http.NotFound(w, r)
	}
}

func kvError(w http.ResponseWriter, code int, errCode, msg, inner string) {
	e := map[string]any{"code": errCode, "message": msg}
	if inner != "" {
		e["innererror"] = map[string]any{"code": inner}
	}
	writeJSON(w, code, map[string]any{"error": e})
}

func (s *Azure) serveVault(w http.ResponseWriter, r *http.Request, vault string) {
	if r.URL.Query().Get("api-version") == "" {
		kvError(w, 400, "BadParameter", "The request URI contains an invalid API version.", "")
		return
	}
	auth := r.Header.Get("Authorization")
	s.stats.LastAuthorization = auth
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || !s.valid(tok) {
		if auth != "" {
			s.reject("vault: a token the fake did not issue")
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/%s", resource="https://vault.azure.net"`, AzureTenantID))
		kvError(w, 401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", "")
		return
	}
	p := strings.Split(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/secrets/"), "/"), "/")
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/secrets/") || len(p) > 2 {
		s.reject("vault: unknown " + r.Method + " " + r.URL.Path)
		kvError(w, 400, "BadParameter", "Method or path not supported by cloudsecrettest.", "")
		return
	}
	s.stats.Reads++
	name, id := p[0], ""
	if len(p) == 2 {
		id = p[1]
	}
	if s.denied[vault] || s.denied[vault+"/"+name] {
		kvError(w, 403, "Forbidden", fmt.Sprintf("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=%s;oid=00000000-0000-0000-0000-000000000001\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/…/vaults/%s/secrets/%s'\r\nAssignment: (not found)\r\nVault: %s;location=westeurope\r\nToken: %s\r\n", AzureClientID, vault, name, vault, tok), "ForbiddenByRbac") // echoes the token: the client must not repeat the server's words
		return
	}
	versions := s.vaults[vault][name]
	var v *kvVersion
	for i := range versions {
		if id == "" && i == len(versions)-1 || versions[i].id == strings.ToLower(id) {
			v = &versions[i]
		}
	}
	if v == nil {
		what := name
		if id != "" {
			what += "/" + id
		}
		kvError(w, 404, "SecretNotFound", fmt.Sprintf("A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", what), "")
		return
	}
	if !v.enabled {
		kvError(w, 403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled")
		return
	}
	writeJSON(w, 200, map[string]any{
		"value": v.value,
		"id":    fmt.Sprintf("https://%s%s/secrets/%s/%s", vault, vaultSuffix, name, v.id),
		"attributes": map[string]any{"enabled": true, "created": 1767225600, "updated": 1767225600,
			"recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
		"tags": map[string]string{},
	})
}
