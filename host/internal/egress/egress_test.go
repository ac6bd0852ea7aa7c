package egress

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

const (
	apiIP   = "93.184.216.34"
	otherIP = "93.184.216.35"
	evilIP  = "93.184.216.36"
)

func apiRules() []Rule {
	return []Rule{
		{Scheme: "http", Host: "api.example.test", PathPrefix: "/api/", Methods: allMethods},
		{Scheme: "http", Host: "other.example.test", Methods: allMethods},
	}
}

func TestCredentialInjection(t *testing.T) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(canaryUser+":"+canaryPass))
	tests := []struct {
		slot       string
		wantAuth   string
		wantAPIKey string
		wantQuery  string // value of api_key in the query
	}{
		{slot: ""},
		{slot: "bearer", wantAuth: "Bearer " + canaryBearer},
		{slot: "basic", wantAuth: basic},
		{slot: "key", wantAPIKey: canaryAPIKey},
		{slot: "query_key", wantQuery: canaryAPIKey},
	}
	for _, tt := range tests {
		t.Run("slot="+tt.slot, func(t *testing.T) {
			h := newHarness(t)
			api := h.serve("api.example.test", apiIP, nil)
			c := h.client(Config{Rules: apiRules(), Slots: testSlots()})

			resp := c.Do(context.Background(), abi.HTTPRequest{
				Method: "post",
				URL:    "http://api.example.test/api/chat.postMessage?channel=C1&api_key=plugin-supplied&API_KEY=plugin-supplied&token=" + canaryQuery,
				Headers: map[string][]string{
					"authorization":       {"Bearer plugin-supplied"},
					"Proxy-Authorization": {"Basic plugin-supplied"},
					"Cookie":              {"session=plugin-supplied"},
					"X-Api-Key":           {"plugin-supplied"},
					"x-api-key":           {"plugin-supplied"},
					"Host":                {"evil.test"},
					"Connection":          {"close, X-Hop"},
					"X-Hop":               {"plugin-supplied"},
					"Proxy-Foo":           {"plugin-supplied"},
					"Accept-Encoding":     {"br"},
					"Content-Type":        {"application/json"},
					"X-Request-Id":        {"r-1"},
				},
				Body:       []byte(`{"text":"hi"}`),
				Credential: tt.slot,
			})
			wantStatus(t, resp, http.StatusOK)

			reqs := api.requests()
			if len(reqs) != 1 {
				t.Fatalf("upstream saw %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if got.Method != "POST" || got.Host != "api.example.test" || got.Path != "/api/chat.postMessage" || got.Body != `{"text":"hi"}` {
				t.Errorf("upstream saw %s %s %s body %q", got.Method, got.Host, got.Path, got.Body)
			}
			if a := got.Header.Get("Authorization"); a != tt.wantAuth {
				t.Errorf("Authorization = %q, want %q", a, tt.wantAuth)
			}
			if k := got.Header.Values("X-Api-Key"); tt.wantAPIKey == "" && len(k) != 0 || tt.wantAPIKey != "" && (len(k) != 1 || k[0] != tt.wantAPIKey) {
				t.Errorf("X-Api-Key = %q, want %q", k, tt.wantAPIKey)
			}
			q, err := url.ParseQuery(got.Query)
			if err != nil {
				t.Fatalf("upstream query %q: %v", got.Query, err)
			}
			wantQ := url.Values{"channel": {"C1"}, "token": {canaryQuery}}
			if tt.wantQuery != "" {
				wantQ["api_key"] = []string{tt.wantQuery}
			}
			if diff := cmp.Diff(wantQ, q); diff != "" {
				t.Errorf("upstream query mismatch (-want +got):\n%s", diff)
			}
			for k, vs := range got.Header {
				for _, v := range vs {
					if strings.Contains(v, "plugin-supplied") || v == "evil.test" {
						t.Errorf("smuggled header reached the upstream: %s: %s", k, v)
					}
				}
			}
			for _, k := range []string{"Cookie", "Proxy-Authorization", "Proxy-Foo", "X-Hop"} {
				if _, ok := got.Header[k]; ok {
					t.Errorf("header %s reached the upstream", k)
				}
			}
			if got.Header.Get("X-Request-Id") != "r-1" || got.Header.Get("Content-Type") != "application/json" {
				t.Errorf("ordinary headers were not forwarded: %v", got.Header)
			}
			if ae := got.Header.Get("Accept-Encoding"); ae != "gzip" {
				t.Errorf("Accept-Encoding = %q, want the transport's gzip", ae)
			}
			// The echo carries the credential back; the plugin must see it redacted.
			if tt.slot != "" && !bytes.Contains(resp.Body, []byte(scrub.Redacted)) {
				t.Errorf("echoed credential not redacted: %s", resp.Body)
			}
			if tt.wantAuth != "" && resp.Headers["X-Echo-Authorization"][0] == tt.wantAuth {
				t.Errorf("echoed Authorization header not scrubbed")
			}
			rec := h.recs()
			want := []Record{{Method: "POST", URL: "http://api.example.test/api/chat.postMessage", Host: "api.example.test",
				Status: 200, Credential: tt.slot, Injected: tt.slot != "", Decision: DecisionAllowed, Attempt: 1}}
			if diff := cmp.Diff(want, rec, cmpRecord); diff != "" {
				t.Errorf("records mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpRecord = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Duration" }, cmp.Ignore())

func TestCredentialHostScope(t *testing.T) {
	h := newHarness(t)
	h.serve("api.example.test", apiIP, nil)
	other := h.serve("other.example.test", otherIP, nil)
	c := h.client(Config{Rules: apiRules(), Slots: testSlots()})
	ctx := context.Background()

	// A slot limited to api.example.test is not sent, nor is the request sent without it.
	for _, slot := range []string{"bearer", "basic", "key", "query_key"} {
		resp := c.Do(ctx, abi.HTTPRequest{URL: "http://other.example.test/x", Credential: slot})
		wantError(t, resp, abi.CodeEgressDenied)
		if !strings.Contains(resp.Error.Message, "may not be sent to other.example.test") {
			t.Errorf("message = %q", resp.Error.Message)
		}
	}
	if n := len(other.requests()); n != 0 {
		t.Fatalf("other.example.test received %d requests, want 0", n)
	}
	// A slot that lists other.example.test is sent there.
	resp := c.Do(ctx, abi.HTTPRequest{URL: "http://other.example.test/x", Credential: "wide"})
	wantStatus(t, resp, 200)
	if got := other.requests()[0].Header.Get("Authorization"); got != "Bearer "+canaryBearer {
		t.Errorf("Authorization = %q, want the wide slot's bearer", got)
	}

	resp = c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/api/x", Credential: "nope"})
	wantError(t, resp, abi.CodeUnknownSlot)
	if !strings.Contains(resp.Error.Message, "basic, bearer, empty, key, query_key, wide") {
		t.Errorf("unknown slot message does not list the slots: %q", resp.Error.Message)
	}
	resp = c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/api/x", Credential: "empty"})
	wantError(t, resp, abi.CodeCredential)
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		raw      string
		wantCode string // "" = accepted
		host     string
		port     int
		url      string // normalised URL sent
	}{
		{raw: "https://slack.com/api/chat.postMessage?x=1#frag", host: "slack.com", port: 443, url: "https://slack.com/api/chat.postMessage?x=1"},
		{raw: "HTTPS://SLACK.COM./api/x", host: "slack.com", port: 443, url: "https://slack.com/api/x"},
		{raw: "https://slack.com:443", host: "slack.com", port: 443, url: "https://slack.com/"},
		{raw: "http://slack.com:8080/a", host: "slack.com", port: 8080, url: "http://slack.com:8080/a"},
		{raw: "https://127.0.0.1/", host: "127.0.0.1", port: 443, url: "https://127.0.0.1/"},
		{raw: "https://[::1]:8443/x", host: "::1", port: 8443, url: "https://[::1]:8443/x"},
		{raw: "https://[::ffff:127.0.0.1]/", host: "127.0.0.1", port: 443, url: "https://127.0.0.1/"},
		{raw: "https://[::ffff:7f00:1]/", host: "127.0.0.1", port: 443, url: "https://127.0.0.1/"},
		{raw: "https://xn--bcher-kva.example/", host: "xn--bcher-kva.example", port: 443, url: "https://xn--bcher-kva.example/"},
		{raw: "https://slack.com/a%20b/%61pi", host: "slack.com", port: 443, url: "https://slack.com/a%20b/%61pi"},
		{raw: "https://slack.com/v%2e1/x", host: "slack.com", port: 443, url: "https://slack.com/v%2e1/x"},

		// Schemes and shapes.
		{raw: "", wantCode: abi.CodeBadRequest},
		{raw: "/relative", wantCode: abi.CodeBadRequest},
		{raw: "slack.com/api", wantCode: abi.CodeBadRequest},
		{raw: "ftp://slack.com/", wantCode: abi.CodeEgressDenied},
		{raw: "file:///etc/passwd", wantCode: abi.CodeEgressDenied},
		{raw: "gopher://127.0.0.1:6379/_x", wantCode: abi.CodeEgressDenied},
		{raw: "https:slack.com", wantCode: abi.CodeBadRequest},
		{raw: "https:/slack.com", wantCode: abi.CodeBadRequest},
		{raw: "https:///path", wantCode: abi.CodeBadRequest},
		{raw: "https://slack.com:0/", wantCode: abi.CodeBadRequest},
		{raw: "https://slack.com:65536/", wantCode: abi.CodeBadRequest},
		{raw: "https://slack.com:99999999999999999999/", wantCode: abi.CodeBadRequest},
		{raw: "https://slack.com/\x00", wantCode: abi.CodeBadRequest},
		{raw: "https://" + strings.Repeat("a", maxURLLen), wantCode: abi.CodeBadRequest},

		// Userinfo.
		{raw: "https://slack.com@evil.test/", wantCode: abi.CodeEgressDenied},
		{raw: "https://user:pw@slack.com/", wantCode: abi.CodeEgressDenied},
		{raw: "https://:@slack.com/", wantCode: abi.CodeEgressDenied},
		{raw: "https://slack.com%40evil.test/", wantCode: abi.CodeBadRequest},
		{raw: `https://evil.test\@slack.com/`, wantCode: abi.CodeBadRequest},
		{raw: `https://slack.com\.evil.test/`, wantCode: abi.CodeBadRequest},

		// Host encodings.
		{raw: "https://%73lack.com/", wantCode: abi.CodeBadRequest},
		{raw: "https://slack%2ecom/", wantCode: abi.CodeBadRequest},
		{raw: "https://bücher.example/", wantCode: abi.CodeBadRequest},
		{raw: "https://slаck.com/", wantCode: abi.CodeBadRequest}, // Cyrillic a
		{raw: "https://[fe80::1%25eth0]/", wantCode: abi.CodeBadRequest},
		{raw: "https://[1.2.3.4]/", wantCode: abi.CodeBadRequest},
		{raw: "https://slack..com/", wantCode: abi.CodeBadRequest},
		{raw: "https://slack.com../", wantCode: abi.CodeBadRequest},
		{raw: "https://sla ck.com/", wantCode: abi.CodeBadRequest},
		{raw: "https://slack.com*/", wantCode: abi.CodeBadRequest},

		// Numeric hosts in non-canonical forms.
		{raw: "http://2130706433/", wantCode: abi.CodeBadRequest},
		{raw: "http://0177.0.0.1/", wantCode: abi.CodeBadRequest},
		{raw: "http://0x7f.1/", wantCode: abi.CodeBadRequest},
		{raw: "http://0x7f000001/", wantCode: abi.CodeBadRequest},
		{raw: "http://127.1/", wantCode: abi.CodeBadRequest},
		{raw: "http://127.0.1/", wantCode: abi.CodeBadRequest},
		{raw: "http://127.000.000.001/", wantCode: abi.CodeBadRequest},
		{raw: "http://1.2.3.4.5/", wantCode: abi.CodeBadRequest},
		{raw: "http://0/", wantCode: abi.CodeBadRequest},
		{raw: "http://0x/", wantCode: abi.CodeBadRequest},
		{raw: "http://evil.test.0x10/", wantCode: abi.CodeBadRequest},
		{raw: "http://169.254.169.254.", host: "169.254.169.254", port: 80, url: "http://169.254.169.254/"},

		// Paths.
		{raw: "https://slack.com/api/../admin", wantCode: abi.CodeEgressDenied},
		{raw: "https://slack.com/api/%2e%2e/admin", wantCode: abi.CodeEgressDenied},
		{raw: "https://slack.com/api/%2E./admin", wantCode: abi.CodeEgressDenied},
		{raw: "https://slack.com/api/./x", wantCode: abi.CodeEgressDenied},
		{raw: "https://slack.com/api/..;/admin", wantCode: abi.CodeEgressDenied},
		{raw: "https://slack.com/api%2f..%2fadmin", wantCode: abi.CodeEgressDenied},
		{raw: "https://slack.com/api%2Fx", wantCode: abi.CodeEgressDenied},
		{raw: `https://slack.com/api\..\admin`, wantCode: abi.CodeEgressDenied},
		{raw: "https://slack.com/api%5c..%5cadmin", wantCode: abi.CodeEgressDenied},
		{raw: "https://slack.com/api/%00", wantCode: abi.CodeEgressDenied},
		{raw: "https://slack.com/api/..", wantCode: abi.CodeEgressDenied},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, f := parseTarget(tt.raw)
			if tt.wantCode != "" {
				if f == nil {
					t.Fatalf("parseTarget(%q) = %s, want error %s", tt.raw, got.u, tt.wantCode)
				}
				if f.code != tt.wantCode {
					t.Errorf("parseTarget(%q) code = %s (%s), want %s", tt.raw, f.code, f.msg, tt.wantCode)
				}
				if strings.Contains(f.msg, "pw") || strings.Contains(f.msg, "evil.test/") {
					t.Errorf("message echoes userinfo or the raw URL: %q", f.msg)
				}
				return
			}
			if f != nil {
				t.Fatalf("parseTarget(%q) failed: %s", tt.raw, f.msg)
			}
			if got.host != tt.host || got.port != tt.port || got.u.String() != tt.url {
				t.Errorf("parseTarget(%q) = host %q port %d url %q; want %q %d %q", tt.raw, got.host, got.port, got.u, tt.host, tt.port, tt.url)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	h := newHarness(t)
	for _, host := range []string{"slack.com", "files.slack.com", "a.b.slack-edge.com", "slack-edge.com", "slackX.com", "evil.test"} {
		h.serve(host, fmt.Sprintf("93.184.217.%d", len(h.routes)+1), nil)
	}
	c := h.client(Config{Rules: []Rule{
		{Host: "slack.com", PathPrefix: "/api/", Methods: []string{"get", "POST"}},
		{Scheme: "http", Host: "slack.com", Port: 8080, PathPrefix: "/api"},
		{Host: "*.slack-edge.com"},
		{Host: "files.slack.com", PathPrefix: "/files-pri/T1"},
	}})
	// The https requests go to a plain-http test server and fail the TLS handshake, so
	// "allowed" means: not egress_denied.
	tests := []struct {
		method, url string
		allowed     bool
		reason      string
	}{
		{"GET", "https://slack.com/api/chat.postMessage", true, ""},
		{"post", "https://slack.com/api/chat.postMessage", true, ""},
		{"GET", "https://slack.com/api/", true, ""},
		{"GET", "https://slack.com/api", true, ""},
		{"GET", "https://slack.com/apiX", false, "path /apiX is outside the granted prefixes /api/"},
		{"GET", "https://slack.com/", false, "path / is outside"},
		{"GET", "https://slack.com/API/x", false, "outside the granted prefixes"},
		{"GET", "https://slack.com/%61pi/x", false, "outside the granted prefixes"},
		{"DELETE", "https://slack.com/api/x", false, "method DELETE is not granted for this path; granted: GET, POST"},
		{"PUT", "https://slack.com/api/x", false, "method PUT"},
		{"GET", "http://slack.com/api/x", false, "port 80 is not granted for slack.com; granted: 8080"},
		{"GET", "https://slack.com:8443/api/x", false, "port 8443 is not granted"},
		{"GET", "http://slack.com:8080/api/x", true, ""},
		{"GET", "http://slack.com:8080/apix", false, "outside the granted prefixes /api"},
		{"POST", "http://slack.com:8080/api/x", false, "method POST"},
		{"GET", "https://slack.com:8080/api/x", false, "port 8080 is not granted"},
		{"GET", "https://evil.test/api/x", false, "host evil.test is not granted"},
		{"GET", "https://slackX.com/api/x", false, "host slackx.com is not granted"},
		{"GET", "https://a.b.slack-edge.com/x", true, ""},
		{"GET", "https://slack-edge.com/x", false, "host slack-edge.com is not granted"},
		{"GET", "https://evilslack-edge.com/x", false, "host evilslack-edge.com is not granted"},
		{"GET", "https://files.slack.com/files-pri/T1/x", true, ""},
		{"GET", "https://files.slack.com/files-pri/T12/x", false, "outside the granted prefixes /files-pri/T1"},
		{"GET", "https://files.slack.com/files-pri/T1", true, ""},
		{"CONNECT", "https://slack.com/api/x", false, "may not send CONNECT"},
		{"TRACE", "https://slack.com/api/x", false, "may not send TRACE"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.url, func(t *testing.T) {
			resp := c.Do(context.Background(), abi.HTTPRequest{Method: tt.method, URL: tt.url})
			if tt.allowed {
				if resp.Error != nil && resp.Error.Code == abi.CodeEgressDenied {
					t.Errorf("denied: %s", resp.Error.Message)
				}
				return
			}
			wantError(t, resp, abi.CodeEgressDenied)
			if resp.Error.Category != abi.Fatal {
				t.Errorf("category = %s, want fatal", resp.Error.Category)
			}
			if !strings.Contains(resp.Error.Message, tt.reason) {
				t.Errorf("message %q does not contain %q", resp.Error.Message, tt.reason)
			}
		})
	}

	resp := c.Do(context.Background(), abi.HTTPRequest{Method: "FOO", URL: "https://slack.com/api/x"})
	wantError(t, resp, abi.CodeBadRequest)
	resp = c.Do(context.Background(), abi.HTTPRequest{Method: "GET", URL: "https://slack.com/api/x", TimeoutMS: -1})
	wantError(t, resp, abi.CodeBadRequest)
	resp = c.Do(context.Background(), abi.HTTPRequest{URL: "https://slack.com/api/x", Headers: map[string][]string{"X-Bad": {"a\r\nInjected: 1"}}})
	wantError(t, resp, abi.CodeBadRequest)
	resp = c.Do(context.Background(), abi.HTTPRequest{URL: "https://slack.com/api/x", Headers: map[string][]string{"Bad Name": {"a"}}})
	wantError(t, resp, abi.CodeBadRequest)
	if h.dialed("93.184.217.6") {
		t.Error("evil.test was dialed")
	}
}

func TestDeniedMessage(t *testing.T) {
	h := newHarness(t)
	c := h.client(Config{Rules: apiRules()})
	resp := c.Do(context.Background(), abi.HTTPRequest{URL: "http://evil.test:8080/?token=" + canaryQuery})
	wantError(t, resp, abi.CodeEgressDenied)
	want := "the connector may not reach http://evil.test:8080/ (host evil.test is not granted); ask an admin to grant it if this is expected"
	if resp.Error.Message != want {
		t.Errorf("message = %q, want %q", resp.Error.Message, want)
	}
	wantRecs := []Record{{Method: "GET", URL: "http://evil.test:8080/", Host: "evil.test", Decision: DecisionDenied, Reason: want}}
	if diff := cmp.Diff(wantRecs, h.recs(), cmpRecord); diff != "" {
		t.Errorf("records mismatch (-want +got):\n%s", diff)
	}
}

func TestAddressChecks(t *testing.T) {
	tests := []struct {
		answer  []string
		allow   []string // AllowPrivate
		allowed bool
	}{
		{answer: []string{"93.184.216.34"}, allowed: true},
		{answer: []string{"2606:2800:220:1:248:1893:25c8:1946"}, allowed: true},
		{answer: []string{"127.0.0.1"}},
		{answer: []string{"127.5.6.7"}},
		{answer: []string{"10.1.2.3"}},
		{answer: []string{"172.16.0.1"}},
		{answer: []string{"172.31.255.255"}},
		{answer: []string{"192.168.1.1"}},
		{answer: []string{"169.254.169.254"}},
		{answer: []string{"100.64.0.1"}},
		{answer: []string{"100.127.255.254"}},
		{answer: []string{"0.0.0.0"}},
		{answer: []string{"224.0.0.1"}},
		{answer: []string{"255.255.255.255"}},
		{answer: []string{"198.18.0.1"}},
		{answer: []string{"::1"}},
		{answer: []string{"::"}},
		{answer: []string{"fe80::1"}},
		{answer: []string{"fc00::1"}},
		{answer: []string{"fd12:3456::1"}},
		{answer: []string{"ff02::1"}},
		{answer: []string{"::ffff:127.0.0.1"}},
		{answer: []string{"::ffff:169.254.169.254"}},
		{answer: []string{"::127.0.0.1"}},
		{answer: []string{"64:ff9b::a9fe:a9fe"}},
		{answer: []string{"2002:7f00:1::1"}},
		{answer: []string{"2001:0:4136:e378:8000:63bf:3fff:fdd2"}},
		{answer: []string{"fd00:ec2::254"}},
		{answer: []string{"93.184.216.34", "127.0.0.1"}},
		{answer: []string{"10.1.2.3"}, allow: []string{"10.0.0.0/8"}, allowed: true},
		{answer: []string{"169.254.169.254"}, allow: []string{"10.0.0.0/8"}},
		{answer: []string{"::ffff:10.1.2.3"}, allow: []string{"10.0.0.0/8"}, allowed: true},
		{answer: []string{"127.0.0.1"}, allow: []string{"127.0.0.1/32"}, allowed: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.answer, ",")+" allow "+strings.Join(tt.allow, ","), func(t *testing.T) {
			h := newHarness(t)
			h.serve("", tt.answer[0], nil)
			h.resolveTo("api.example.test", tt.answer)
			var allow []netip.Prefix
			for _, p := range tt.allow {
				allow = append(allow, netip.MustParsePrefix(p))
			}
			c := h.client(Config{Rules: apiRules(), AllowPrivate: allow, Slots: testSlots()})
			resp := c.Do(context.Background(), abi.HTTPRequest{URL: "http://api.example.test/api/x", Credential: "bearer"})
			if tt.allowed {
				wantStatus(t, resp, 200)
				return
			}
			wantError(t, resp, abi.CodeEgressDenied)
			if !strings.Contains(resp.Error.Message, "private_targets") {
				t.Errorf("message = %q", resp.Error.Message)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.dials) != 0 {
				t.Errorf("dialed %v, want no dial", h.dials)
			}
		})
	}
}

func TestControlRechecks(t *testing.T) {
	c, err := New(Config{AllowPrivate: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		addr    string
		trusted bool
		ok      bool
	}{
		{"93.184.216.34:443", false, true},
		{"127.0.0.1:80", false, false},
		{"[::1]:80", false, false},
		{"[::ffff:127.0.0.1]:80", false, false},
		{"169.254.169.254:80", false, false},
		{"10.9.9.9:80", false, true},
		{"127.0.0.1:80", true, true},
		{"not-an-address", false, false},
	}
	for _, tt := range tests {
		err := c.control(tt.trusted)("tcp", tt.addr, nil)
		if (err == nil) != tt.ok {
			t.Errorf("control(trusted=%v)(%q) = %v, want ok=%v", tt.trusted, tt.addr, err, tt.ok)
		}
	}
	// The real dialer runs Control: even if dialContext were bypassed, loopback is refused.
	_, err = c.dialChecked(context.Background(), "tcp", netip.MustParseAddrPort("127.0.0.1:1"), false)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("dialChecked(127.0.0.1) = %v, want a loopback refusal", err)
	}
}

func TestDNSRebinding(t *testing.T) {
	h := newHarness(t)
	// The upstream closes every connection, so each request dials (and resolves) again.
	h.serve("", apiIP, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		echo(w, r)
	})
	h.routes[netip.MustParseAddr("127.0.0.1")] = "127.0.0.1:1" // a dial to 127.0.0.1 would be recorded
	h.resolveTo("api.example.test", []string{apiIP}, []string{"127.0.0.1"})
	c := h.client(Config{Rules: apiRules(), Slots: testSlots()})
	ctx := context.Background()

	wantStatus(t, c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/api/1", Credential: "bearer"}), 200)
	for range 3 {
		resp := c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/api/2", Credential: "bearer"})
		wantError(t, resp, abi.CodeEgressDenied)
	}
	if h.dialed("127.0.0.1") {
		t.Fatal("the rebound address 127.0.0.1 was dialed")
	}
	if h.lookups["api.example.test"] < 2 {
		t.Errorf("resolver called %d times, want one per dial", h.lookups["api.example.test"])
	}
	recs := h.recs()
	if last := recs[len(recs)-1]; last.Decision != DecisionDenied || !strings.Contains(last.Reason, "127.0.0.1") {
		t.Errorf("last record = %+v, want denied naming 127.0.0.1", last)
	}
}

func TestRedirects(t *testing.T) {
	type hopWant struct {
		Server string // which upstream
		Path   string
		Auth   string // Authorization seen
		Method string
		Body   string
	}
	tests := []struct {
		name      string
		method    string
		body      string
		slot      string
		location  string // where /api/start redirects
		status    int
		maxRedir  int
		wantCode  string // "" = success
		wantFinal int
		hops      []hopWant
	}{
		{name: "same host keeps credential", slot: "bearer", location: "/api/next", status: 302, wantFinal: 200,
			hops: []hopWant{{"api", "/api/start", "Bearer " + canaryBearer, "GET", ""}, {"api", "/api/next", "Bearer " + canaryBearer, "GET", ""}}},
		{name: "same host absolute", slot: "bearer", location: "http://api.example.test/api/next", status: 301, wantFinal: 200,
			hops: []hopWant{{"api", "/api/start", "Bearer " + canaryBearer, "GET", ""}, {"api", "/api/next", "Bearer " + canaryBearer, "GET", ""}}},
		{name: "cross host drops credential even if the slot allows it", slot: "wide", location: "http://other.example.test/x", status: 302, wantFinal: 200,
			hops: []hopWant{{"api", "/api/start", "Bearer " + canaryBearer, "GET", ""}, {"other", "/x", "", "GET", ""}}},
		{name: "scheme-relative cross host", slot: "wide", location: "//other.example.test/x", status: 307, wantFinal: 200,
			hops: []hopWant{{"api", "/api/start", "Bearer " + canaryBearer, "GET", ""}, {"other", "/x", "", "GET", ""}}},
		{name: "not granted host", slot: "bearer", location: "http://evil.test/steal", status: 302, wantCode: abi.CodeEgressDenied,
			hops: []hopWant{{"api", "/api/start", "Bearer " + canaryBearer, "GET", ""}}},
		{name: "not granted path", slot: "bearer", location: "/admin", status: 302, wantCode: abi.CodeEgressDenied,
			hops: []hopWant{{"api", "/api/start", "Bearer " + canaryBearer, "GET", ""}}},
		{name: "loopback", location: "http://127.0.0.1/", status: 302, wantCode: abi.CodeEgressDenied,
			hops: []hopWant{{"api", "/api/start", "", "GET", ""}}},
		{name: "metadata", location: "http://169.254.169.254/latest/meta-data/", status: 302, wantCode: abi.CodeEgressDenied,
			hops: []hopWant{{"api", "/api/start", "", "GET", ""}}},
		{name: "odd notation", location: "http://2130706433/", status: 302, wantCode: abi.CodeBadRequest,
			hops: []hopWant{{"api", "/api/start", "", "GET", ""}}},
		{name: "userinfo", slot: "bearer", location: "http://api.example.test@evil.test/", status: 302, wantCode: abi.CodeEgressDenied,
			hops: []hopWant{{"api", "/api/start", "Bearer " + canaryBearer, "GET", ""}}},
		{name: "dot segments", location: "/api/../admin", status: 302, wantCode: abi.CodeEgressDenied,
			hops: []hopWant{{"api", "/api/start", "", "GET", ""}}},
		{name: "non-http scheme", location: "file:///etc/passwd", status: 302, wantCode: abi.CodeEgressDenied,
			hops: []hopWant{{"api", "/api/start", "", "GET", ""}}},
		{name: "303 turns POST into GET", method: "POST", body: "payload", slot: "bearer", location: "/api/next", status: 303, wantFinal: 200,
			hops: []hopWant{{"api", "/api/start", "Bearer " + canaryBearer, "POST", "payload"}, {"api", "/api/next", "Bearer " + canaryBearer, "GET", ""}}},
		{name: "302 turns POST into GET", method: "POST", body: "payload", location: "/api/next", status: 302, wantFinal: 200,
			hops: []hopWant{{"api", "/api/start", "", "POST", "payload"}, {"api", "/api/next", "", "GET", ""}}},
		{name: "307 keeps POST and body", method: "POST", body: "payload", slot: "key", location: "/api/next", status: 307, wantFinal: 200,
			hops: []hopWant{{"api", "/api/start", "", "POST", "payload"}, {"api", "/api/next", "", "POST", "payload"}}},
		{name: "308 keeps PUT", method: "PUT", body: "payload", location: "/api/next", status: 308, wantFinal: 200,
			hops: []hopWant{{"api", "/api/start", "", "PUT", "payload"}, {"api", "/api/next", "", "PUT", "payload"}}},
		{name: "redirect loop", location: "/api/start", status: 302, wantCode: abi.CodeUpstreamError,
			hops: []hopWant{{"api", "/api/start", "", "GET", ""}, {"api", "/api/start", "", "GET", ""}, {"api", "/api/start", "", "GET", ""}}},
		{name: "not followed", location: "http://evil.test/", status: 302, maxRedir: -1, wantFinal: 302,
			hops: []hopWant{{"api", "/api/start", "", "GET", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			api := h.serve("api.example.test", apiIP, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/start" {
					http.Redirect(w, r, tt.location, tt.status)
					return
				}
				echo(w, r)
			})
			other := h.serve("other.example.test", otherIP, nil)
			evil := h.serve("evil.test", evilIP, nil)
			h.routes[netip.MustParseAddr("127.0.0.1")] = evil.Listener.Addr().String()
			h.routes[netip.MustParseAddr("169.254.169.254")] = evil.Listener.Addr().String()
			maxRedir := tt.maxRedir
			if tt.name == "redirect loop" {
				maxRedir = 2
			}
			rules := append(apiRules(), Rule{Scheme: "http", Host: "169.254.169.254"}) // a careless grant
			c := h.client(Config{Rules: rules, Slots: testSlots(), MaxRedirects: maxRedir})
			resp := c.Do(context.Background(), abi.HTTPRequest{Method: tt.method, URL: "http://api.example.test/api/start?q=" + canaryQuery,
				Body: []byte(tt.body), Credential: tt.slot})
			if tt.wantCode != "" {
				wantError(t, resp, tt.wantCode)
			} else {
				wantStatus(t, resp, tt.wantFinal)
			}
			if n := len(evil.requests()); n != 0 {
				t.Errorf("evil.test or a private address received %d requests", n)
			}
			var got []hopWant
			servers := map[*upstream]string{api: "api", other: "other"}
			// Interleave by hop order: api requests first, then other (tests have at most one switch).
			for _, u := range []*upstream{api, other} {
				for _, r := range u.requests() {
					got = append(got, hopWant{servers[u], r.Path, r.Header.Get("Authorization"), r.Method, r.Body})
					if tt.slot == "key" && r.Header.Get("X-Api-Key") != canaryAPIKey {
						t.Errorf("hop %s lost the api key", r.Path)
					}
				}
			}
			if diff := cmp.Diff(tt.hops, got); diff != "" {
				t.Errorf("hops mismatch (-want +got):\n%s", diff)
			}
			for i, r := range h.recs() {
				if r.Redirect != i {
					t.Errorf("record %d has Redirect %d", i, r.Redirect)
				}
			}
		})
	}
}

func TestRedirectDowngradeDropsCredential(t *testing.T) {
	h := newHarness(t)
	var plain *upstream
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://api.example.test/api/next", http.StatusFound)
	}))
	defer tlsSrv.Close()
	plain = h.serve("", "93.184.216.40", nil)
	// https goes to the TLS server, http to the plain one: distinct ports, one name.
	h.resolveTo("api.example.test", []string{"93.184.216.41"})
	h.routes[netip.MustParseAddr("93.184.216.41")] = "" // replaced below by a port-aware dialer
	c := h.client(Config{Rules: []Rule{{Host: "api.example.test"}, {Scheme: "http", Host: "api.example.test"}}, Slots: testSlots()})
	c.transport.TLSClientConfig = tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	c.transport.TLSClientConfig.InsecureSkipVerify = true // the test certificate is for example.com
	c.dialAddr = func(ctx context.Context, network string, ap netip.AddrPort, trusted bool) (net.Conn, error) {
		dest := plain.Listener.Addr().String()
		if ap.Port() == 443 {
			dest = tlsSrv.Listener.Addr().String()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, dest)
	}
	resp := c.Do(context.Background(), abi.HTTPRequest{URL: "https://api.example.test/api/start", Credential: "bearer"})
	wantStatus(t, resp, 200)
	reqs := plain.requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "" {
		t.Fatalf("plain-http hop saw %+v, want one request without Authorization", reqs)
	}
	recs := h.recs()
	if len(recs) != 2 || !recs[0].Injected || recs[1].Injected || recs[1].Credential != "bearer" {
		t.Errorf("records = %+v, want injected then dropped", recs)
	}
}

func TestUpstreams(t *testing.T) {
	// No harness dialer: the real dialer connects to the loopback httptest server, which is
	// allowed only because it is an Upstreams target.
	var srvURL string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/abs":
			http.Redirect(w, r, srvURL+"/api/next", http.StatusFound) // absolute, to the target
		default:
			echo(w, r)
		}
	}))
	defer srv.Close()
	srvURL = srv.URL
	var recs []Record
	var mu sync.Mutex
	c, err := New(Config{
		Rules:     []Rule{{Host: "api.example.test", PathPrefix: "/api/"}, {Scheme: "http", Host: "127.0.0.1", Port: mustPort(t, srv.URL)}},
		Slots:     testSlots(),
		Upstreams: map[string]string{"https://api.example.test": srv.URL},
		Observe:   func(r Record) { mu.Lock(); recs = append(recs, r); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	resp := c.Do(ctx, abi.HTTPRequest{URL: "https://api.example.test/api/x", Credential: "bearer"})
	wantStatus(t, resp, 200)
	var got seen
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimPrefix(srv.URL, "http://"); got.Host != want {
		t.Errorf("Host header = %q, want the target %q", got.Host, want)
	}
	if got.Header.Get("Authorization") != "Bearer "+scrub.Redacted {
		t.Errorf("Authorization echoed as %q, want the bearer, redacted", got.Header.Get("Authorization"))
	}

	// An absolute redirect to the target is mapped back to the origin, so the credential stays.
	resp = c.Do(ctx, abi.HTTPRequest{URL: "https://api.example.test/api/abs", Credential: "bearer"})
	wantStatus(t, resp, 200)
	mu.Lock()
	last := recs[len(recs)-1]
	mu.Unlock()
	if last.URL != "https://api.example.test/api/next" || !last.Injected {
		t.Errorf("redirect record = %+v, want the origin URL with the credential", last)
	}

	// The target address itself is not a public address: a direct request is refused at dial.
	resp = c.Do(ctx, abi.HTTPRequest{URL: srv.URL + "/api/x"})
	wantError(t, resp, abi.CodeEgressDenied)
}

func mustPort(t *testing.T, raw string) int {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(u.Port(), &p)
	return p
}

func TestAllowPrivateLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	port := mustPort(t, srv.URL)
	rules := []Rule{{Scheme: "http", Host: "127.0.0.1", Port: port}}
	c, err := New(Config{Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantError(t, c.Do(context.Background(), abi.HTTPRequest{URL: srv.URL + "/"}), abi.CodeEgressDenied)

	c2, err := New(Config{Rules: rules, AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	wantStatus(t, c2.Do(context.Background(), abi.HTTPRequest{URL: srv.URL + "/"}), 200)
	// [::ffff:127.0.0.1] is the same address.
	wantStatus(t, c2.Do(context.Background(), abi.HTTPRequest{URL: fmt.Sprintf("http://[::ffff:127.0.0.1]:%d/", port)}), 200)
}

func TestResponses(t *testing.T) {
	big := strings.Repeat("x", 1000)
	h := newHarness(t)
	h.serve("api.example.test", apiIP, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/exact":
			w.Write([]byte(big))
		case "/api/big":
			w.Write([]byte(big + "y"))
		case "/api/chunked":
			for range 3 {
				w.Write([]byte(big[:400]))
				w.(http.Flusher).Flush()
			}
		case "/api/cookie":
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "s3ss10n"})
			w.Header().Set("X-Token", canaryBearer)
			w.Header().Set("X-"+canaryBearer, "in the name")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":"not_found","echo":%q}`, base64.StdEncoding.EncodeToString([]byte(canaryBearer)))
		case "/api/gzip":
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			fmt.Fprintf(zw, `{"token":%q}`, canaryBearer)
			zw.Close()
		case "/api/br":
			w.Header().Set("Content-Encoding", "br")
			w.Write([]byte(canaryBearer))
		case "/api/500":
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("oops"))
		case "/api/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		default:
			echo(w, r)
		}
	})
	c := h.client(Config{Rules: apiRules(), Slots: testSlots(), MaxResponseBytes: 1000})
	ctx := context.Background()
	do := func(path string, timeout int64) abi.HTTPResponse {
		return c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test" + path + "?token=" + canaryQuery, Credential: "bearer", TimeoutMS: timeout})
	}

	resp := do("/api/exact", 0)
	wantStatus(t, resp, 200)
	if len(resp.Body) != 1000 {
		t.Errorf("body is %d bytes, want 1000", len(resp.Body))
	}
	for _, p := range []string{"/api/big", "/api/chunked"} {
		resp = do(p, 0)
		wantError(t, resp, abi.CodeResponseTooLarge)
		if !strings.Contains(resp.Error.Message, "1000 bytes") {
			t.Errorf("message %q does not state the limit", resp.Error.Message)
		}
	}

	resp = do("/api/cookie", 0)
	wantStatus(t, resp, http.StatusNotFound) // a non-2xx status is not an error here
	if _, ok := resp.Headers["Set-Cookie"]; ok {
		t.Error("Set-Cookie reached the plugin")
	}
	if got := resp.Headers["X-Token"]; len(got) != 1 || got[0] != scrub.Redacted {
		t.Errorf("X-Token = %q, want redacted", got)
	}
	if _, ok := resp.Headers["X-"+scrub.Redacted]; !ok {
		t.Errorf("header name holding the secret not scrubbed: %v", resp.Headers)
	}
	if !bytes.Contains(resp.Body, []byte(`"echo":"[REDACTED]"`)) {
		t.Errorf("base64 of the secret not scrubbed: %s", resp.Body)
	}

	resp = do("/api/gzip", 0)
	wantStatus(t, resp, 200)
	if string(resp.Body) != `{"token":"[REDACTED]"}` {
		t.Errorf("gzip body = %q, want decoded and scrubbed", resp.Body)
	}
	wantError(t, do("/api/br", 0), abi.CodeUpstreamError)
	wantStatus(t, do("/api/500", 0), 500)

	start := time.Now()
	resp = do("/api/slow", 50)
	wantError(t, resp, abi.CodeTimeout)
	if resp.Error.Category != abi.Retryable {
		t.Errorf("timeout category = %s, want retryable", resp.Error.Category)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// The context's deadline wins over a longer timeout_ms.
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	resp = c.Do(tctx, abi.HTTPRequest{URL: "http://api.example.test/api/slow", TimeoutMS: 60_000})
	wantError(t, resp, abi.CodeTimeout)

	resp = c.Do(ctx, abi.HTTPRequest{Method: "HEAD", URL: "http://api.example.test/api/exact"})
	wantStatus(t, resp, 200)
	if len(resp.Body) != 0 {
		t.Errorf("HEAD returned a body of %d bytes", len(resp.Body))
	}
}

func TestNetworkErrors(t *testing.T) {
	h := newHarness(t)
	c := h.client(Config{Rules: apiRules(), Slots: testSlots()})
	ctx := context.Background()

	// Unresolvable name.
	resp := c.Do(ctx, abi.HTTPRequest{URL: "http://other.example.test/?token=" + canaryQuery, Credential: "wide"})
	wantError(t, resp, abi.CodeUpstreamError)
	if resp.Error.Category != abi.Correctable || !strings.Contains(resp.Error.Message, "could not be resolved") {
		t.Errorf("DNS failure = %+v", resp.Error)
	}

	// Connection refused, with an api key in the query: the message and logs must hold neither.
	h.resolveTo("api.example.test", []string{apiIP})
	h.dialErr = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	resp = c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/api/x?token=" + canaryQuery, Credential: "query_key"})
	wantError(t, resp, abi.CodeUpstreamError)
	if resp.Error.Category != abi.Retryable || !strings.Contains(resp.Error.Message, "refused the connection") {
		t.Errorf("refused = %+v", resp.Error)
	}
	if strings.Contains(resp.Error.Message, "?") {
		t.Errorf("message contains a query string: %q", resp.Error.Message)
	}

	// Cancelled context.
	h.dialErr = nil
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	resp = c.Do(cctx, abi.HTTPRequest{URL: "http://api.example.test/api/x"})
	if resp.Error == nil {
		t.Fatal("cancelled context: no error")
	}
	checkResponseClean(t, resp)

	c.Close()
	wantError(t, c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/api/x"}), abi.CodeUnavailable)
}

func TestNew(t *testing.T) {
	good := Slot{Kind: KindBearer, Hosts: []string{"a.test"}}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "empty", cfg: Config{}, ok: true},
		{name: "defaults", cfg: Config{Rules: []Rule{{Host: "slack.com"}}, Slots: map[string]Slot{"s": good}}, ok: true},
		{name: "ip rule", cfg: Config{Rules: []Rule{{Host: "[::1]"}, {Host: "10.0.0.1"}}}, ok: true},
		{name: "wildcard", cfg: Config{Rules: []Rule{{Host: "*.slack.com"}}}, ok: true},
		{name: "bad scheme", cfg: Config{Rules: []Rule{{Scheme: "ftp", Host: "slack.com"}}}},
		{name: "bad host", cfg: Config{Rules: []Rule{{Host: "sla ck.com"}}}},
		{name: "numeric host", cfg: Config{Rules: []Rule{{Host: "2130706433"}}}},
		{name: "wildcard too broad", cfg: Config{Rules: []Rule{{Host: "*.com"}}}},
		{name: "wildcard in middle", cfg: Config{Rules: []Rule{{Host: "a.*.com"}}}},
		{name: "bare star", cfg: Config{Rules: []Rule{{Host: "*"}}}},
		{name: "bad port", cfg: Config{Rules: []Rule{{Host: "slack.com", Port: 70000}}}},
		{name: "bad prefix", cfg: Config{Rules: []Rule{{Host: "slack.com", PathPrefix: "api"}}}},
		{name: "dot prefix", cfg: Config{Rules: []Rule{{Host: "slack.com", PathPrefix: "/api/../"}}}},
		{name: "trace", cfg: Config{Rules: []Rule{{Host: "slack.com", Methods: []string{"TRACE"}}}}},
		{name: "slot name mismatch", cfg: Config{Slots: map[string]Slot{"s": {Name: "t", Kind: KindBearer, Hosts: []string{"a.test"}}}}},
		{name: "slot kind", cfg: Config{Slots: map[string]Slot{"s": {Kind: "oauth", Hosts: []string{"a.test"}}}}},
		{name: "slot no hosts", cfg: Config{Slots: map[string]Slot{"s": {Kind: KindBearer}}}},
		{name: "api_key no param", cfg: Config{Slots: map[string]Slot{"s": {Kind: KindAPIKey, Hosts: []string{"a.test"}}}}},
		{name: "api_key bad in", cfg: Config{Slots: map[string]Slot{"s": {Kind: KindAPIKey, In: "cookie", Param: "k", Hosts: []string{"a.test"}}}}},
		{name: "api_key query", cfg: Config{Slots: map[string]Slot{"s": {Kind: KindAPIKey, In: "query", Param: "key", Hosts: []string{"a.test"}}}}, ok: true},
		{name: "api_key host param", cfg: Config{Slots: map[string]Slot{"s": {Kind: KindAPIKey, Param: "Host", Hosts: []string{"a.test"}}}}},
		{name: "basic without colon", cfg: Config{Slots: map[string]Slot{"s": {Kind: KindBasic, Hosts: []string{"a.test"}, Secret: secret.New(canaryPass)}}}},
		{name: "secret with newline", cfg: Config{Slots: map[string]Slot{"s": {Kind: KindBearer, Hosts: []string{"a.test"}, Secret: secret.New(canaryBearer + "\r\nX: y")}}}},
		{name: "upstream", cfg: Config{Upstreams: map[string]string{"https://slack.com": "http://127.0.0.1:8099"}}, ok: true},
		{name: "upstream origin with path", cfg: Config{Upstreams: map[string]string{"https://slack.com/api": "http://127.0.0.1:8099"}}},
		{name: "upstream target with path", cfg: Config{Upstreams: map[string]string{"https://slack.com": "http://127.0.0.1:8099/x"}}},
		{name: "upstream target ftp", cfg: Config{Upstreams: map[string]string{"https://slack.com": "ftp://127.0.0.1"}}},
		{name: "negative max", cfg: Config{MaxResponseBytes: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.ok {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("New succeeded, want an error")
			}
			for _, canary := range canaries {
				if strings.Contains(err.Error(), canary) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

func TestConfigIsCopied(t *testing.T) {
	rules := []Rule{{Scheme: "http", Host: "api.example.test"}}
	h := newHarness(t)
	h.serve("api.example.test", apiIP, nil)
	c := h.client(Config{Rules: rules})
	rules[0].Host = "evil.test"
	wantStatus(t, c.Do(context.Background(), abi.HTTPRequest{URL: "http://api.example.test/"}), 200)
}

// TestConcurrentDo hammers one Client from many goroutines (run with -race).
func TestConcurrentDo(t *testing.T) {
	h := newHarness(t)
	h.serve("api.example.test", apiIP, nil)
	h.serve("other.example.test", otherIP, nil)
	c := h.client(Config{Rules: apiRules(), Slots: testSlots()})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				slots := []string{"", "bearer", "basic", "key", "query_key"}
				resp := c.Do(context.Background(), abi.HTTPRequest{
					Method: "POST", URL: fmt.Sprintf("http://api.example.test/api/%d/%d", g, i),
					Credential: slots[(g+i)%len(slots)], Body: []byte("x"),
				})
				if resp.Error != nil || resp.Status != 200 {
					t.Errorf("Do: %v %d", resp.Error, resp.Status)
					return
				}
				checkResponseClean(t, resp)
				if resp := c.Do(context.Background(), abi.HTTPRequest{URL: "http://evil.test/"}); resp.Error == nil {
					t.Error("evil.test allowed")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestSharedScrubber(t *testing.T) {
	s := scrub.New()
	c, err := New(Config{Slots: testSlots(), Scrubber: s})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, canary := range []string{canaryBearer, canaryAPIKey, canaryPass, canaryUser + ":" + canaryPass} {
		if got := s.String("x" + canary + "x"); got != "x[REDACTED]x" {
			t.Errorf("shared scrubber does not know a slot secret: %q", got)
		}
	}
}
