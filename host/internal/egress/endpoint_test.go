package egress

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

type staticResolver map[string][]netip.Addr

func (r staticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return r[host], nil
}

// TestEndpointTransportRefusesPrivateTargets: a hostile manifest's OAuth token_url cannot make
// the host post client credentials to a metadata or loopback address, by IP literal or by a
// name that resolves there; plain http is refused unless the grant maps the origin; a mapped
// origin reaches its target.
func TestEndpointTransportRefusesPrivateTargets(t *testing.T) {
	var hits atomic.Int32
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"access_token":"x"}`))
	}))
	defer local.Close()
	port := local.URL[strings.LastIndex(local.URL, ":")+1:]
	c, err := New(Config{
		Upstreams: map[string]string{"https://login.example.test": local.URL},
		Resolver: staticResolver{
			"metadata.example.test": {netip.MustParseAddr("169.254.169.254")},
			"loop.example.test":     {netip.MustParseAddr("127.0.0.1")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rt := c.EndpointTransport()
	for u, why := range map[string]string{
		"https://169.254.169.254/latest/meta-data/iam/": "resolves to 169.254.169.254",
		"https://metadata.example.test/token":           "resolves to 169.254.169.254",
		"https://loop.example.test:" + port + "/token":  "resolves to 127.0.0.1",
		"https://127.0.0.1:" + port + "/token":          "resolves to 127.0.0.1",
		"https://[::1]:" + port + "/token":              "resolves to ::1",
		"http://login.other.test/token":                 "must use https", // not https, not mapped
	} {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader("client_secret=canary"))
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("POST %s went through (status %d); want it refused", u, resp.StatusCode)
			continue
		}
		if !strings.Contains(err.Error(), why) {
			t.Errorf("POST %s: %v; want it refused by the address checks (%q)", u, err, why)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server received %d requests from refused URLs", n)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://login.example.test/oauth/token", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("the mapped token endpoint: %v", err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Errorf("the mapped token endpoint got %d requests, want 1", hits.Load())
	}
}
