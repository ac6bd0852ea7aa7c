package host_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/fakesalesforce"
)

// sfJWTSetup starts a fake Salesforce whose connected app 3MVG9-consumer accepts JWT bearer
// assertions for username signed with a new key, and returns it, its URL, the shipped
// Salesforce connector, a secret source holding the key as env:SF_KEY, and the key's PEM.
func sfJWTSetup(t *testing.T, username string) (*fakesalesforce.Server, string, *manifest.Manifest, []byte, secret.Mux, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	fake := fakesalesforce.New()
	fake.RegisterJWTClient("3MVG9-consumer", username, &key.PublicKey)
	u, stop := fake.Start()
	t.Cleanup(stop)
	m, wasm := hosttest.Connector(t, "./plugins/salesforce", "manifests/salesforce.yaml")
	src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return keyPEM, n == "SF_KEY" }}}
	return fake, u, m, wasm, src, keyPEM
}

// TestSalesforceSandboxLogin: a grant whose login_host is test.salesforce.com signs in there,
// with assertions whose aud is the sandbox login, as Salesforce requires for a sandbox org; a
// login host outside Salesforce's domains is refused when the grant is checked.
func TestSalesforceSandboxLogin(t *testing.T) {
	fake, u, m, wasm, src, _ := sfJWTSetup(t, "integration@acme.example.uat")
	fake.SetAudience("https://test.salesforce.com") // a sandbox refuses production's audience
	grant := func(login string) *manifest.Grant {
		return &manifest.Grant{Connector: "salesforce", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
			Credentials: map[string]manifest.CredentialGrant{"salesforce": {
				ClientID: "3MVG9-consumer", Username: "integration@acme.example.uat", PrivateKey: "env:SF_KEY"}},
			Config:         map[string]string{"login_host": login},
			PrivateTargets: []string{"127.0.0.1/32"},
			Upstreams: map[string]string{
				"https://" + login:                u, // the sandbox token endpoint
				fakesalesforce.DefaultInstanceURL: u,
			}}
	}

	for _, bad := range []string{"evil.example.com", "login.salesforce.com.evil.example", "https://test.salesforce.com", "salesforce.com"} {
		g := grant("test.salesforce.com")
		g.Config["login_host"] = bad
		delete(g.Upstreams, "https://test.salesforce.com")
		err := host.CheckGrant(m, g)
		if err == nil || !strings.Contains(err.Error(), "not a Salesforce login host") {
			t.Errorf("login_host %q: CheckGrant = %v, want it refused", bad, err)
		}
	}

	h, _ := hosttest.New(t, host.Config{Secrets: src})
	if err := h.LoadModule(context.Background(), m, wasm, grant("test.salesforce.com")); err != nil {
		t.Fatal(err)
	}
	res := h.Call(context.Background(), host.CallRequest{Tool: "salesforce.get_record", Agent: "a",
		Arguments: []byte(`{"object":"Account","id":"` + fakesalesforce.Acme + `","fields":["Name"]}`)})
	if !res.OK || !strings.Contains(string(res.Data), "Acme Corporation") {
		t.Fatalf("get_record on a sandbox = %+v %s", res.Error, res.Data)
	}
	if n := fake.TokensIssued(); n != 1 {
		t.Errorf("the sandbox issued %d tokens, want 1", n)
	}
}
