package egress

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host/internal/credential"
	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// fakeSource hands out canary tokens per subject: "<subject>-tok-N", N growing after Invalidate.
type fakeSource struct {
	mu      sync.Mutex
	gen     map[string]int
	hosts   []string
	fetches int
}

func (f *fakeSource) Credential(ctx context.Context, subject string) (credential.Credential, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetches++
	return credential.Credential{Kind: KindOAuth2AuthorizationCode, Token: secret.New(oauthCanary(subject, f.gen[subject])),
		Hosts: f.hosts}, nil
}

func (f *fakeSource) Invalidate(subject string, tok secret.Value) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if tok.Expose() == oauthCanary(subject, f.gen[subject]) {
		f.gen[subject]++
	}
}

func oauthCanary(subject string, n int) string {
	return "canary-oauth-" + subject + "-" + strings.Repeat("x", n+1) + "-Zq9"
}

func oauthClient(h *harness, src *fakeSource, hosts ...string) *Client {
	return h.client(Config{
		Rules: []Rule{{Scheme: "http", Host: "api.example.test", Methods: allMethods}, {Scheme: "http", Host: "other.example.test"},
			{Scheme: "http", Host: "*.my.salesforce.com", Methods: allMethods}},
		Slots:    map[string]Slot{"oauth": {Kind: KindOAuth2AuthorizationCode, Hosts: hosts, Source: src}},
		Scrubber: scrub.New(),
	})
}

func checkNoOAuthCanary(t *testing.T, h *harness, resp abi.HTTPResponse) {
	t.Helper()
	h.mu.Lock()
	out := h.logs.String()
	h.mu.Unlock()
	for _, r := range h.recs() {
		out += r.URL + r.Reason
	}
	if resp.Error != nil {
		out += resp.Error.Message
	}
	out += string(resp.Body)
	for _, v := range resp.Headers {
		out += strings.Join(v, " ")
	}
	if strings.Contains(out, "canary-oauth-") {
		t.Errorf("an OAuth token leaked into a response, record or log:\n%s", out)
	}
}

func TestOAuthTokenGoesOnlyToSlotHostsAndNotAcrossRedirect(t *testing.T) {
	h := newHarness(t)
	other := h.serve("other.example.test", "93.184.216.35", nil)
	api := h.serve("api.example.test", "93.184.216.34", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://other.example.test/landing", http.StatusFound)
			return
		}
		echo(w, r)
	})
	_ = api
	src := &fakeSource{gen: map[string]int{}}
	c := oauthClient(h, src, "api.example.test")
	ctx := WithSubject(context.Background(), "alice")

	// Echoed back by the upstream: scrubbed.
	resp := c.Do(ctx, abi.HTTPRequest{Method: "GET", URL: "http://api.example.test/x", Credential: "oauth"})
	wantStatus(t, resp, 200)
	checkNoOAuthCanary(t, h, resp)
	reqs := api.requests()
	if got := reqs[len(reqs)-1].Header.Get("Authorization"); got != "Bearer "+oauthCanary("alice", 0) {
		t.Fatalf("Authorization = %q, want alice's token", got)
	}

	// Another host: refused, nothing sent, no token fetched for it.
	resp = c.Do(ctx, abi.HTTPRequest{Method: "GET", URL: "http://other.example.test/x", Credential: "oauth"})
	wantError(t, resp, abi.CodeEgressDenied)
	if h.dialed("93.184.216.35") {
		t.Errorf("a request naming the slot was sent to another host")
	}

	// A cross-host redirect: followed without the token.
	resp = c.Do(ctx, abi.HTTPRequest{Method: "GET", URL: "http://api.example.test/redirect", Credential: "oauth"})
	checkNoOAuthCanary(t, h, resp)
	for _, r := range other.requests() {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("the token followed a cross-host redirect: %q", r.Header.Get("Authorization"))
		}
	}

	// Another subject gets its own token, never alice's.
	resp = c.Do(WithSubject(context.Background(), "bob"), abi.HTTPRequest{Method: "GET", URL: "http://api.example.test/x", Credential: "oauth"})
	wantStatus(t, resp, 200)
	reqs = api.requests()
	if got := reqs[len(reqs)-1].Header.Get("Authorization"); got != "Bearer "+oauthCanary("bob", 0) {
		t.Errorf("bob's request carried %q", got)
	}
}

func TestOAuthInstanceHostOnly(t *testing.T) {
	h := newHarness(t)
	acme := h.serve("acme.my.salesforce.com", "93.184.216.40", nil)
	h.serve("evil.my.salesforce.com", "93.184.216.41", nil)
	src := &fakeSource{gen: map[string]int{}, hosts: []string{"acme.my.salesforce.com"}}
	c := oauthClient(h, src, "*.my.salesforce.com")
	ctx := WithSubject(context.Background(), "default")

	resp := c.Do(ctx, abi.HTTPRequest{Method: "GET", URL: "http://acme.my.salesforce.com/services/data", Credential: "oauth"})
	wantStatus(t, resp, 200)
	if len(acme.requests()) != 1 || acme.requests()[0].Header.Get("Authorization") == "" {
		t.Fatalf("the instance host did not get the token")
	}
	resp = c.Do(ctx, abi.HTTPRequest{Method: "GET", URL: "http://evil.my.salesforce.com/services/data", Credential: "oauth"})
	wantError(t, resp, abi.CodeEgressDenied)
	if h.dialed("93.184.216.41") {
		t.Errorf("the token was sent to a host other than the instance")
	}
	checkNoOAuthCanary(t, h, resp)

	// A source that names a host outside the slot cannot widen it.
	src.hosts = []string{"evil.example.com"}
	resp = c.Do(ctx, abi.HTTPRequest{Method: "GET", URL: "http://acme.my.salesforce.com/x", Credential: "oauth"})
	wantError(t, resp, abi.CodeCredential)
}

func TestOAuth401RefreshesAndReplaysOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		always401 bool
		wantReqs  int
		wantCode  int
	}{
		{"old token refused once", false, 2, 200},
		{"every token refused", true, 2, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			api := h.serve("api.example.test", "93.184.216.34", func(w http.ResponseWriter, r *http.Request) {
				if tc.always401 || r.Header.Get("Authorization") == "Bearer "+oauthCanary("alice", 0) {
					w.WriteHeader(http.StatusUnauthorized)
					_, _ = w.Write([]byte(`[{"errorCode":"INVALID_SESSION_ID"}]`))
					return
				}
				echo(w, r)
			})
			src := &fakeSource{gen: map[string]int{}}
			c := oauthClient(h, src, "api.example.test")
			resp := c.Do(WithSubject(context.Background(), "alice"),
				abi.HTTPRequest{Method: "POST", URL: "http://api.example.test/x", Body: []byte(`{"a":1}`), Credential: "oauth"})
			wantStatus(t, resp, tc.wantCode)
			checkNoOAuthCanary(t, h, resp)
			reqs := api.requests()
			if len(reqs) != tc.wantReqs {
				t.Fatalf("upstream got %d requests, want %d (one replay)", len(reqs), tc.wantReqs)
			}
			if reqs[1].Header.Get("Authorization") != "Bearer "+oauthCanary("alice", 1) || reqs[1].Body != `{"a":1}` {
				t.Errorf("the replay did not carry the new token and the same body")
			}
			var replays int
			for _, r := range h.recs() {
				if r.Replay {
					replays++
				}
			}
			if replays != 1 {
				t.Errorf("records marked Replay = %d, want 1", replays)
			}
		})
	}
}

func TestStatic401NotReplayed(t *testing.T) {
	h := newHarness(t)
	api := h.serve("api.example.test", "93.184.216.34", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	})
	c := h.client(Config{Rules: []Rule{{Scheme: "http", Host: "api.example.test"}}, Slots: testSlots()})
	resp := c.Do(context.Background(), abi.HTTPRequest{Method: "GET", URL: "http://api.example.test/x", Credential: "bearer"})
	wantStatus(t, resp, 401)
	if n := len(api.requests()); n != 1 {
		t.Errorf("a static credential's 401 was replayed: %d requests", n)
	}
}
