package host_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

// TestUpstreamEchoesTokenTransformed drives the hostile plugin against an upstream that takes
// the bearer token it received and hands it back transformed: into a redirect's host
// (lowercased by URL parsing), past the 200-byte cut of a long redirect path, in another case,
// %-encoded, and in a gzip body behind an "identity" Content-Encoding line. No run of 8 bytes
// of the token, in any case or %-decoded, may reach the tool result the agent gets (which is
// what the plugin read), the audit events or the host's log.
func TestUpstreamEchoesTokenTransformed(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch r.URL.Path {
		case "/host":
			w.Header()["Location"] = []string{"https://" + tok + ".api.example.test/landing"}
		case "/long":
			w.Header()["Location"] = []string{"/landing/" + strings.Repeat("p", 190) + tok}
		case "/case":
			w.Header()["Location"] = []string{"https://other.example.test/" + strings.ToUpper(tok)}
		case "/percent":
			w.Header()["Location"] = []string{"/landing/" + url.PathEscape(tok) + "/" + percentEvery(tok)}
		case "/encoding":
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			json.NewEncoder(zw).Encode(map[string]string{"you_sent": tok, "lower": strings.ToLower(tok)})
			zw.Close()
			w.Header()["Content-Encoding"] = []string{"identity", "gzip"}
			w.Write(buf.Bytes())
			return
		default:
			w.Write([]byte(`{"ok":true}`))
			return
		}
		w.WriteHeader(http.StatusFound)
	}))
	t.Cleanup(api.Close)
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, rec := hosttest.New(t, host.Config{Secrets: secrets(), Resolver: fakeDNS{}})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"*"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN", "other_key": "env:OTHER_KEY"}),
		Upstreams:   map[string]string{"https://api.example.test": api.URL, "https://other.example.test": api.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}

	var results []*host.Result
	for _, path := range []string{"/host", "/long", "/case", "/percent", "/encoding"} {
		args, _ := json.Marshal(abi.HTTPRequest{Method: "GET", URL: "https://api.example.test" + path, Credential: "token"})
		res := call(h, "hostile.fetch", string(args))
		if !res.OK {
			t.Fatalf("fetch %s: %+v", path, res.Error)
		}
		results = append(results, res)
		var resp abi.HTTPResponse
		json.Unmarshal(res.Data, &resp)
		if path == "/encoding" {
			if resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), `"you_sent":"[REDACTED]"`) {
				t.Errorf("gzip behind identity = %d %q, want the decoded body with the token redacted", resp.Status, resp.Body)
			}
		} else if resp.Error == nil {
			t.Errorf("the redirect of %s carrying the token was followed (status %d)", path, resp.Status)
		}
	}

	events, _ := json.Marshal(rec.Audit.Events())
	sinks := map[string]string{"audit": string(events), "logs": rec.Logs()}
	for i, r := range results {
		b, _ := json.Marshal(r)
		sinks["result "+string(rune('0'+i))] = string(b)
	}
	for name, text := range sinks {
		if run := tokenRun(text); run != "" {
			t.Errorf("%q of the token reached the %s:\n%s", run, name, text)
		}
	}
}

func percentEvery(s string) string {
	const hexd = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte('%')
		b.WriteByte(hexd[s[i]>>4])
		b.WriteByte(hexd[s[i]&15])
	}
	return b.String()
}

var pctXX = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)

// tokenRun returns the first 8-byte run of canary in text, ignoring case, also after %-decoding.
func tokenRun(text string) string {
	dec := pctXX.ReplaceAllStringFunc(text, func(m string) string { s, _ := url.PathUnescape(m); return s })
	lc := strings.ToLower(canary)
	for _, t := range []string{strings.ToLower(text), strings.ToLower(dec)} {
		for i := 0; i+8 <= len(lc); i++ {
			if strings.Contains(t, lc[i:i+8]) {
				return canary[i : i+8]
			}
		}
	}
	return ""
}
