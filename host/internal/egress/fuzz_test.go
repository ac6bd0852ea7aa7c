package egress

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// FuzzCheckURL checks the URL normaliser and the policy matcher: they never panic, and any URL
// they allow re-parses (with net/url and net/http) to a granted host, port and path, with no
// userinfo, no dot segments and no encoded slash.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://slack.com/api/chat.postMessage?x=1#f",
		"HTTPS://SLACK.COM./api/x",
		"https://slack.com@evil.test/",
		"https://user:pw@slack.com/api/",
		"https://slack.com%40evil.test/api/",
		`https://evil.test\@slack.com/api/`,
		"https://%73lack.com/api/",
		"https://bücher.example/",
		"https://[fe80::1%25eth0]/",
		"https://[::ffff:127.0.0.1]/",
		"http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/", "http://127.1/",
		"http://169.254.169.254/latest/meta-data/",
		"https://slack.com/api/../admin", "https://slack.com/api/%2e%2e/admin",
		"https://slack.com/api%2fx", "https://slack.com/api/..;/admin", "https://slack.com/apiX",
		"https://a.files.slack.com/x", "https://files.slack.com.evil.test/x",
		"https://slack.com:443/api/", "https://slack.com:0443/api/", "https://slack.com:/api/",
		"https://slack.com/api/\x00", "https://SLACK.com\x00.evil.test/",
		"https://slack.com/api/%zz", "//slack.com/api/", "https:\\\\slack.com/api/",
		"http://127.0.0.1:8080/", "http://[::1]:8080/x",
	} {
		f.Add(s, "GET")
	}
	f.Add("https://slack.com/api/x", "post")
	f.Add("https://slack.com/api/x", "TRACE")

	c, err := New(Config{Rules: []Rule{
		{Host: "slack.com", PathPrefix: "/api/", Methods: []string{"GET", "POST"}},
		{Host: "*.files.slack.com"},
		{Scheme: "http", Host: "127.0.0.1", Port: 8080},
		{Scheme: "http", Host: "::1", Port: 8080, PathPrefix: "/x"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()

	f.Fuzz(func(t *testing.T, raw, method string) {
		m, fl := normalizeMethod(method)
		if fl != nil {
			return
		}
		tg, fl := parseTarget(raw)
		if fl != nil {
			if fl.msg == "" || (fl.code != abi.CodeBadRequest && fl.code != abi.CodeEgressDenied) {
				t.Fatalf("parseTarget(%q) failure %+v", raw, fl)
			}
			return
		}
		if c.allow(tg, m) != "" {
			return
		}
		sent := tg.u.String()
		u, err := url.Parse(sent)
		if err != nil {
			t.Fatalf("allowed %q but its normal form %q does not parse: %v", raw, sent, err)
		}
		if u.User != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Fragment != "" {
			t.Fatalf("allowed %q as %q: userinfo, scheme or fragment survived", raw, sent)
		}
		if got := u.Hostname(); got != tg.host || got != strings.ToLower(got) {
			t.Fatalf("allowed %q: %q re-parses to host %q, checked %q", raw, sent, got, tg.host)
		}
		if !matchAny([]hostPattern{{host: "slack.com"}, {host: ".files.slack.com", wildcard: true}, {host: "127.0.0.1"}, {host: "::1"}}, tg) {
			t.Fatalf("allowed %q for ungranted host %q", raw, tg.host)
		}
		if hasDotSegment(u.Path) || strings.Contains(strings.ToLower(u.EscapedPath()), "%2f") {
			t.Fatalf("allowed %q with a dot segment or encoded slash: %q", raw, sent)
		}
		req, err := http.NewRequest(m, sent, nil)
		if err != nil {
			t.Fatalf("allowed %q but net/http refuses %q: %v", raw, sent, err)
		}
		if req.URL.Hostname() != tg.host {
			t.Fatalf("net/http reads %q as host %q, checked %q", sent, req.URL.Hostname(), tg.host)
		}
		// Normalising is idempotent.
		again, fl := parseTarget(sent)
		if fl != nil || again.host != tg.host || again.port != tg.port || again.u.String() != sent {
			t.Fatalf("parseTarget(%q) is not idempotent: %v %v", sent, again, fl)
		}
		if c.allow(again, m) != "" {
			t.Fatalf("%q allowed, its normal form %q denied", raw, sent)
		}
	})
}

// BenchmarkDo sends a credentialed POST to a loopback server and reads a small JSON answer,
// through the whole pipeline (checks, injection, dial checks, response cap, scrubbing).
func BenchmarkDo(b *testing.B) {
	body := []byte(`{"ok":true,"channel":"C0123","ts":"1712345678.000100","message":{"text":"hello"}}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer srv.Close()
	slots := map[string]Slot{"bot": {Kind: KindBearer, Hosts: []string{"slack.com"}, Secret: secret.New(canaryBearer)}}

	run := func(b *testing.B, c *Client, rawURL string) {
		req := abi.HTTPRequest{Method: "POST", URL: rawURL, Credential: "bot",
			Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(`{"channel":"C0123","text":"hello"}`)}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if resp := c.Do(context.Background(), req); resp.Error != nil || resp.Status != 200 {
					b.Fatalf("Do: %v %d", resp.Error, resp.Status)
				}
			}
		})
	}
	b.Run("upstream", func(b *testing.B) {
		c, err := New(Config{
			Rules:     []Rule{{Host: "slack.com", PathPrefix: "/api/", Methods: []string{"POST"}}},
			Slots:     slots,
			Upstreams: map[string]string{"https://slack.com": srv.URL},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		run(b, c, "https://slack.com/api/chat.postMessage")
	})
	b.Run("allow_private", func(b *testing.B) {
		u, _ := url.Parse(srv.URL)
		slots := map[string]Slot{"bot": {Kind: KindBearer, Hosts: []string{"127.0.0.1"}, Secret: secret.New(canaryBearer)}}
		c, err := New(Config{
			Rules:        []Rule{{Scheme: "http", Host: "127.0.0.1", Port: mustPortB(u.Port()), PathPrefix: "/api/", Methods: []string{"POST"}}},
			Slots:        slots,
			AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		run(b, c, srv.URL+"/api/chat.postMessage")
	})
}

func mustPortB(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// BenchmarkCheck measures URL parsing and policy matching alone.
func BenchmarkCheck(b *testing.B) {
	c, err := New(Config{Rules: []Rule{{Host: "slack.com", PathPrefix: "/api/", Methods: []string{"GET", "POST"}}, {Host: "*.slack-edge.com"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	for b.Loop() {
		t, f := parseTarget("https://slack.com/api/conversations.history?channel=C0123&limit=100")
		if f != nil || c.allow(t, "GET") != "" {
			b.Fatal("denied")
		}
	}
}
