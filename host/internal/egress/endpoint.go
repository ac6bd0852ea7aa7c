package egress

import (
	"fmt"
	"net/http"
	"net/url"
)

// EndpointTransport returns a RoundTripper for the host's own requests on a connector's behalf
// (OAuth token endpoints): it dials with the same address checks as plugin requests (no
// private or metadata addresses unless the grant allows them), follows the grant's Upstreams
// (so a test can route https://login.example.com to a local fake), never uses an environment
// proxy, and refuses any URL that is not https or a mapped origin.
func (c *Client) EndpointTransport() http.RoundTripper { return endpointTransport{c} }

type endpointTransport struct{ c *Client }

func (t endpointTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.c.closed.Load() {
		return nil, fmt.Errorf("egress: connector unloaded")
	}
	tg, f := parseTarget(req.URL.String())
	if f != nil {
		return nil, fmt.Errorf("egress: %s", f.msg)
	}
	if to, ok := t.c.upstreams[tg.originKey()]; ok {
		r2 := req.Clone(req.Context())
		u := *req.URL
		u.Scheme, u.Host = to.Scheme, to.Host
		r2.URL = &u
		r2.Host = ""
		return t.c.upTransport.RoundTrip(r2)
	}
	if req.URL.Scheme != "https" {
		return nil, fmt.Errorf("egress: %s: OAuth endpoints must use https", (&url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host}).String())
	}
	return t.c.transport.RoundTrip(req)
}
