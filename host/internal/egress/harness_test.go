package egress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Canary values: none of them may appear in a plugin-visible error, a record or a log line.
const (
	canaryBearer = "canary-bearer-Q7x2Lm9Pz4"
	canaryAPIKey = "canary-apikey+/=R8w1Kd3"
	canaryUser   = "canaryuser"
	canaryPass   = "canary-pass-W5t6Yh"
	canaryQuery  = "qcanary-tok-99Zz" // a token the plugin puts in a query string
)

var canaries = []string{canaryBearer, canaryAPIKey, canaryPass, canaryQuery}

// seen is what an upstream received.
type seen struct {
	Method string
	Host   string
	Path   string
	Query  string
	Header http.Header
	Body   string
}

// upstream is an httptest server that records requests.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

// echo answers with the request it received as JSON, like an httpbin /anything endpoint.
func echo(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Echo-Authorization", r.Header.Get("Authorization"))
	_ = json.NewEncoder(w).Encode(seen{Method: r.Method, Host: r.Host, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Header: r.Header, Body: string(body)})
}

// harness routes fake public IP addresses to local httptest servers through Client.dialAddr,
// so tests use real-looking host names without any network access.
type harness struct {
	t       *testing.T
	mu      sync.Mutex
	answers map[string][][]netip.Addr // host → successive resolver answers (the last repeats)
	lookups map[string]int
	routes  map[netip.Addr]string // IP → listener address
	dials   []netip.AddrPort
	records []Record
	logs    bytes.Buffer
	dialErr error // if set, every dial fails with it
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, answers: map[string][][]netip.Addr{}, lookups: map[string]int{}, routes: map[netip.Addr]string{}}
	t.Cleanup(h.checkNoLeaks)
	return h
}

// serve starts an upstream reachable as host, which resolves to ip.
func (h *harness) serve(host, ip string, handler http.HandlerFunc) *upstream {
	u := &upstream{}
	if handler == nil {
		handler = echo
	}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{Method: r.Method, Host: r.Host, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: string(body)})
		u.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		handler(w, r)
	}))
	h.t.Cleanup(u.Close)
	a := netip.MustParseAddr(ip)
	h.mu.Lock()
	if host != "" {
		h.answers[host] = append(h.answers[host], []netip.Addr{a})
	}
	h.routes[a.Unmap()] = u.Listener.Addr().String()
	h.mu.Unlock()
	return u
}

// resolveTo sets the successive answers for host.
func (h *harness) resolveTo(host string, answers ...[]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers[host] = nil
	for _, ans := range answers {
		var as []netip.Addr
		for _, s := range ans {
			as = append(as, netip.MustParseAddr(s))
		}
		h.answers[host] = append(h.answers[host], as)
	}
}

func (h *harness) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ans, ok := h.answers[host]
	if !ok || len(ans) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := h.lookups[host]
	h.lookups[host]++
	return ans[min(n, len(ans)-1)], nil
}

func (h *harness) dial(ctx context.Context, network string, ap netip.AddrPort, trusted bool) (net.Conn, error) {
	h.mu.Lock()
	h.dials = append(h.dials, ap)
	dest, ok := h.routes[ap.Addr()]
	err := h.dialErr
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("test harness: no route to %s", ap)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, dest)
}

func (h *harness) dialed(ip string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := netip.MustParseAddr(ip)
	for _, d := range h.dials {
		if d.Addr() == a {
			return true
		}
	}
	return false
}

func (h *harness) recs() []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Record(nil), h.records...)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// client builds a Client whose resolver, dialer, observer and logger are the harness.
func (h *harness) client(cfg Config) *Client {
	h.t.Helper()
	cfg.Resolver = h
	cfg.Observe = func(r Record) {
		h.mu.Lock()
		h.records = append(h.records, r)
		h.mu.Unlock()
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&h.mu, &h.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(cfg)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	c.dialAddr = h.dial
	h.t.Cleanup(c.Close)
	return c
}

// checkNoLeaks fails the test if a canary reached a record or a log line.
func (h *harness) checkNoLeaks() {
	h.mu.Lock()
	defer h.mu.Unlock()
	js, _ := json.Marshal(h.records)
	for _, out := range []string{string(js), h.logs.String()} {
		for _, c := range canaries {
			if strings.Contains(out, c) {
				h.t.Errorf("canary %q leaked into records or logs:\n%s", c, out)
			}
		}
	}
}

// checkResponseClean fails if a secret canary appears anywhere in the response, or the query
// canary in an error message. (The plugin wrote the query itself; an upstream may echo it.)
func checkResponseClean(t *testing.T, resp abi.HTTPResponse) {
	t.Helper()
	js, _ := json.Marshal(resp)
	text := string(js) + string(resp.Body)
	for _, c := range []string{canaryBearer, canaryAPIKey, canaryPass} {
		if strings.Contains(text, c) {
			t.Errorf("canary %q reached the plugin: %s", c, text)
		}
	}
	if resp.Error != nil && strings.Contains(resp.Error.Message, canaryQuery) {
		t.Errorf("error message contains the query string: %s", resp.Error.Message)
	}
}

func wantError(t *testing.T, resp abi.HTTPResponse, code string) {
	t.Helper()
	if resp.Error == nil {
		t.Fatalf("got status %d, want error %s", resp.Status, code)
	}
	if resp.Error.Code != code {
		t.Fatalf("error = %v, want code %s", resp.Error, code)
	}
	if resp.Status != 0 {
		t.Errorf("error response has status %d", resp.Status)
	}
	var e *abi.Error
	if !errors.As(error(resp.Error), &e) || e.Message == "" {
		t.Errorf("error has no message: %#v", resp.Error)
	}
	checkResponseClean(t, resp)
}

func wantStatus(t *testing.T, resp abi.HTTPResponse, status int) {
	t.Helper()
	if resp.Error != nil {
		t.Fatalf("got error %v, want status %d", resp.Error, status)
	}
	if resp.Status != status {
		t.Fatalf("status = %d, want %d", resp.Status, status)
	}
	checkResponseClean(t, resp)
}

// Standard slots, each limited to api.example.test.
func testSlots() map[string]Slot {
	hosts := []string{"api.example.test"}
	return map[string]Slot{
		"bearer":    {Kind: KindBearer, Hosts: hosts, Secret: secret.New(canaryBearer)},
		"basic":     {Kind: KindBasic, Hosts: hosts, Secret: secret.New(canaryUser + ":" + canaryPass)},
		"key":       {Kind: KindAPIKey, In: "header", Param: "X-Api-Key", Hosts: hosts, Secret: secret.New(canaryAPIKey)},
		"query_key": {Kind: KindAPIKey, In: "query", Param: "api_key", Hosts: hosts, Secret: secret.New(canaryAPIKey)},
		"empty":     {Kind: KindBearer, Hosts: hosts},
		"wide":      {Kind: KindBearer, Hosts: []string{"api.example.test", "other.example.test"}, Secret: secret.New(canaryBearer)},
	}
}

var allMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
