package grant

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/airlock-dev/airlock/host/manifest"
)

// Salesforce signs users in on one of its login hosts, and the token endpoint and the JWT
// audience depend on which: login.salesforce.com for production orgs, test.salesforce.com for
// sandboxes, or the org's My Domain (the only host that serves the client credentials flow).
// A manifest whose OAuth slot uses Salesforce's token endpoint may declare the config key
// LoginHostKey; the grant's value moves that slot's token URL and audience to the host it
// names, after checking that it is a Salesforce login host.

// LoginHostKey is the config key that sets the Salesforce login host of a grant.
const LoginHostKey = "login_host"

// salesforceLogin is Salesforce's production login host, the one manifests name.
const salesforceLogin = "login.salesforce.com"

// myDomainRE is a My Domain login host: acme.my.salesforce.com, and the sandbox, scratch,
// Developer Edition, demo, patch and Trailhead forms (acme--uat.sandbox.my.salesforce.com,
// acme-dev-ed.develop.my.salesforce.com).
var myDomainRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,78}[a-z0-9])?\.((sandbox|scratch|develop|demo|patch|trailblaze)\.)?my\.salesforce\.com$`)

// salesforceHost checks a login_host value and returns the audience its JWT assertions carry.
func salesforceHost(host string) (aud string, ok bool) {
	switch {
	case host == salesforceLogin:
		return "https://" + salesforceLogin, true
	case host == "test.salesforce.com":
		return "https://test.salesforce.com", true
	case myDomainRE.MatchString(host):
		// A sandbox or scratch org's assertions name the sandbox login, others production's.
		if strings.HasSuffix(host, ".sandbox.my.salesforce.com") || strings.HasSuffix(host, ".scratch.my.salesforce.com") {
			return "https://test.salesforce.com", true
		}
		return "https://" + salesforceLogin, true
	}
	return "", false
}

// salesforceEndpoints applies the grant's Salesforce login host to the filled OAuth slots that
// use Salesforce's token endpoint (and authorization endpoint), recording the changed OAuth sections in p.OAuth, and checks
// that a client credentials slot signs in on a My Domain, the only host where Salesforce serves
// that flow.
func salesforceEndpoints(m *manifest.Manifest, p *Policy) []error {
	var errs []error
	host, set := p.Config[LoginHostKey]
	if set {
		host = strings.ToLower(strings.TrimSpace(host))
	}
	for i := range m.Credentials {
		c := &m.Credentials[i]
		if _, filled := p.Credentials[c.Name]; !filled || c.OAuth == nil {
			continue
		}
		tu, err := url.Parse(c.OAuth.TokenURL)
		if err != nil || tu.Hostname() != salesforceLogin {
			continue
		}
		login := salesforceLogin
		if set {
			aud, ok := salesforceHost(host)
			if !ok {
				errs = append(errs, fmt.Errorf("config.%s: %q is not a Salesforce login host: use login.salesforce.com (production), test.salesforce.com (sandbox) or your org's My Domain, such as acme.my.salesforce.com or acme--uat.sandbox.my.salesforce.com (a host name, without https://)", LoginHostKey, host))
				continue
			}
			o := *c.OAuth
			o.Scopes = append([]string(nil), o.Scopes...)
			o.TokenURL = onHost(tu, host)
			if au, err := url.Parse(o.AuthorizeURL); err == nil && au.Hostname() == salesforceLogin {
				o.AuthorizeURL = onHost(au, host) // an authorization-code slot signs users in there too
			}
			if o.Audience == "" || o.Audience == "https://"+salesforceLogin {
				o.Audience = aud
			}
			p.OAuth[c.Name] = &o
			login = host
		}
		if c.Kind == manifest.KindOAuth2ClientCredentials && !myDomainRE.MatchString(login) {
			errs = append(errs, fmt.Errorf("credentials.%s: Salesforce serves the client credentials flow only on an org's My Domain, not on %s: set config.%s to your My Domain login host, such as acme.my.salesforce.com", c.Name, login, LoginHostKey))
		}
	}
	return errs
}

// onHost returns u with its host replaced.
func onHost(u *url.URL, host string) string {
	moved := *u
	moved.Host = host
	return moved.String()
}
