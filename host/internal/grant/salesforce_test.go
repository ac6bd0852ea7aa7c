package grant

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/manifest"
)

const sfManifest = `abi: 1
name: sf
version: 1.0.0
publisher: acme
description: Salesforce.
module: {path: sf.wasm}
credentials:
  - {name: jwt, kind: oauth2_jwt_bearer, hosts: ["*.my.salesforce.com"], oauth: {token_url: "https://login.salesforce.com/services/oauth2/token", instance_url: true}}
  - {name: code, kind: oauth2_authorization_code, hosts: ["*.my.salesforce.com"], oauth: {token_url: "https://login.salesforce.com/services/oauth2/token", authorize_url: "https://login.salesforce.com/services/oauth2/authorize"}}
  - {name: cc, kind: oauth2_client_credentials, hosts: ["*.my.salesforce.com"], oauth: {token_url: "https://login.salesforce.com/services/oauth2/token", instance_url: true}}
network:
  - {host: "*.my.salesforce.com", path_prefix: /services/data/}
config:
  - {name: login_host, default: login.salesforce.com}
tools:
  - {name: query, description: Query., input_schema: {type: object}, uses: {credentials: [jwt, code, cc]}}
`

// TestSalesforceLoginHost: a grant's login_host moves the token URL and the JWT audience to a
// Salesforce login host, and only to one.
func TestSalesforceLoginHost(t *testing.T) {
	m, err := manifest.Parse("sf.yaml", []byte(sfManifest))
	if err != nil {
		t.Fatal(err)
	}
	jwt := map[string]manifest.CredentialGrant{"jwt": {ClientID: "3MVG", PrivateKey: "env:K", Username: "u@acme.example"},
		"code": {ClientID: "3MVGcode"}}
	tests := []struct {
		login          string
		tokenURL, aud  string
		wantErr        string
		upstreamOrigin string
	}{
		{login: "", tokenURL: "https://login.salesforce.com/services/oauth2/token", aud: "https://login.salesforce.com"}, // the default
		{login: "login.salesforce.com", tokenURL: "https://login.salesforce.com/services/oauth2/token", aud: "https://login.salesforce.com"},
		{login: "test.salesforce.com", tokenURL: "https://test.salesforce.com/services/oauth2/token", aud: "https://test.salesforce.com",
			upstreamOrigin: "https://test.salesforce.com"},
		{login: "Test.Salesforce.com ", tokenURL: "https://test.salesforce.com/services/oauth2/token", aud: "https://test.salesforce.com"},
		{login: "acme.my.salesforce.com", tokenURL: "https://acme.my.salesforce.com/services/oauth2/token", aud: "https://login.salesforce.com"},
		{login: "acme--uat.sandbox.my.salesforce.com", tokenURL: "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token", aud: "https://test.salesforce.com"},
		{login: "acme-dev-ed.develop.my.salesforce.com", tokenURL: "https://acme-dev-ed.develop.my.salesforce.com/services/oauth2/token", aud: "https://login.salesforce.com"},
		{login: "evil.example.com", wantErr: "not a Salesforce login host"},
		{login: "https://test.salesforce.com", wantErr: "not a Salesforce login host"},
		{login: "test.salesforce.com:8443", wantErr: "not a Salesforce login host"},
		{login: "acme.my.salesforce.com.evil.example", wantErr: "not a Salesforce login host"},
		{login: "my.salesforce.com", wantErr: "not a Salesforce login host"},
		{login: "a.b.my.salesforce.com", wantErr: "not a Salesforce login host"},
	}
	for _, tt := range tests {
		t.Run(tt.login, func(t *testing.T) {
			g := &manifest.Grant{Connector: "sf", Tools: []string{"*"}, Hosts: []string{"*"}, Credentials: jwt}
			if tt.login != "" {
				g.Config = map[string]string{"login_host": tt.login}
			}
			if tt.upstreamOrigin != "" {
				g.Upstreams = map[string]string{tt.upstreamOrigin: "http://127.0.0.1:9"}
			}
			p, err := Effective(m, g)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Effective = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := p.OAuth["jwt"]
			if o == nil || o.TokenURL != tt.tokenURL || o.Audience != tt.aud || !o.InstanceURL {
				t.Errorf("OAuth[jwt] = %+v, want token URL %s, audience %s", o, tt.tokenURL, tt.aud)
			}
			if c := p.OAuth["code"]; c == nil || c.AuthorizeURL != strings.Replace(tt.tokenURL, "/token", "/authorize", 1) {
				t.Errorf("OAuth[code] = %+v, want the authorization endpoint on the login host too", c)
			}
			if m.Credentials[0].OAuth.TokenURL != "https://login.salesforce.com/services/oauth2/token" {
				t.Error("the manifest was changed")
			}
		})
	}
}

// TestSalesforceClientCredentials: Salesforce serves the client credentials flow only on an
// org's My Domain, so a grant filling such a slot must name one.
func TestSalesforceClientCredentials(t *testing.T) {
	m, err := manifest.Parse("sf.yaml", []byte(sfManifest))
	if err != nil {
		t.Fatal(err)
	}
	cc := map[string]manifest.CredentialGrant{"cc": {ClientID: "3MVG", ClientSecret: "env:S"}}
	for login, ok := range map[string]bool{"": false, "login.salesforce.com": false, "test.salesforce.com": false,
		"acme.my.salesforce.com": true, "acme--uat.sandbox.my.salesforce.com": true} {
		g := &manifest.Grant{Connector: "sf", Tools: []string{"*"}, Hosts: []string{"*"}, Credentials: cc}
		if login != "" {
			g.Config = map[string]string{"login_host": login}
		}
		p, err := Effective(m, g)
		switch {
		case ok && err != nil:
			t.Errorf("login_host %q: %v", login, err)
		case ok && p.OAuth["cc"].TokenURL != "https://"+login+"/services/oauth2/token":
			t.Errorf("login_host %q: token URL %s", login, p.OAuth["cc"].TokenURL)
		case !ok && (err == nil || !strings.Contains(err.Error(), "only on an org's My Domain")):
			t.Errorf("login_host %q: Effective = %v, want the client credentials flow refused", login, err)
		}
	}
}
