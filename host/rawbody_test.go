package host_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

// A connector that asks for the response body raw (abi.HTTPRequest.RawBody, pdk/ABI.md) gets
// the same response as in base64, scrubbed the same way; one that sends the field wrongly gets
// the malformed-envelope refusal, not a crash or a half-read request. The hostile plugin's fetch
// passes its arguments to airlock_http as they are and returns the host's raw answer.
func TestRawBodyResponse(t *testing.T) {
	h, rec, _, _ := hostileHost(t)
	res := call(h, "hostile.fetch_raw", `{"method":"GET","url":"https://api.example.test/x","credential":"token","raw_body":true}`)
	if !res.OK {
		t.Fatalf("fetch with raw_body: %+v", res.Error)
	}
	var answer []byte
	if err := json.Unmarshal(res.Data, &answer); err != nil {
		t.Fatal(err)
	}
	var resp abi.HTTPResponse
	if err := abi.DecodeHTTPResponse(answer, &resp); err != nil {
		t.Fatalf("the raw answer %q does not decode: %v", answer, err)
	}
	if resp.Status != 200 || !json.Valid(resp.Body) || !strings.Contains(string(resp.Body), "[REDACTED]") {
		t.Fatalf("raw answer = %d %s", resp.Status, resp.Body)
	}
	if envelope, ok := bytes.CutSuffix(answer, resp.Body); !ok || bytes.Contains(envelope, []byte(`"body":`)) ||
		!bytes.Contains(envelope, []byte(`"raw_body_length":`)) {
		t.Errorf("the body was not sent raw: %s", answer)
	}
	leaks(t, rec, res)
	// The same request without the field: the ordinary envelope, the same body.
	plain := fetch(t, h, abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/x", Credential: "token"})
	if plain.Status != resp.Status || !bytes.Equal(plain.Body, resp.Body) {
		t.Errorf("raw body %s differs from the base64 one %s", resp.Body, plain.Body)
	}

	for _, bad := range []string{
		`{"method":"GET","url":"https://api.example.test/x","raw_body":"yes"}`,
		`{"method":"GET","url":"https://api.example.test/x","raw_body":1}`,
		`{"method":"GET","url":"https://api.example.test/x","raw_body":{"raw_body_length":5}}`,
	} {
		res := call(h, "hostile.fetch", bad)
		if !res.OK {
			t.Fatalf("fetch %s: %+v", bad, res.Error)
		}
		var resp abi.HTTPResponse
		if err := abi.DecodeHTTPResponse(res.Data, &resp); err != nil || resp.Error == nil || resp.Error.Code != abi.CodeBadRequest {
			t.Errorf("fetch %s = %s (%v), want the bad_request refusal", bad, res.Data, err)
		}
	}
	// A refusal is the plain envelope whether or not the body was asked for raw.
	res = call(h, "hostile.fetch", `{"method":"GET","url":"https://evil.example.test/","raw_body":true}`)
	if err := abi.DecodeHTTPResponse(res.Data, &resp); err != nil || resp.Error == nil || resp.Error.Code != abi.CodeEgressDenied ||
		!json.Valid(res.Data) {
		t.Errorf("denied fetch with raw_body = %s (%v), want a JSON egress_denied refusal", res.Data, err)
	}
}

// A connector that names the response headers it reads gets only those (matched ignoring case);
// a list longer than abi.MaxResponseHeaders, or not a list of strings, is refused.
func TestResponseHeadersNamed(t *testing.T) {
	h, _, _, _ := hostileHost(t)
	resp := fetch(t, h, abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/x", ResponseHeaders: []string{"content-TYPE", "X-Absent"}})
	if resp.Status != 200 || len(resp.Headers) != 1 || len(resp.Headers["Content-Type"]) != 1 || len(resp.Body) == 0 {
		t.Errorf("named headers: %d %v", resp.Status, resp.Headers)
	}
	if all := fetch(t, h, abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/x"}); len(all.Headers) < 2 {
		t.Errorf("without names the answer lost its headers: %v", all.Headers)
	}
	names := make([]string, abi.MaxResponseHeaders+1)
	for i := range names {
		names[i] = "X-" + strings.Repeat("a", i)
	}
	for _, bad := range []string{
		`{"method":"GET","url":"https://api.example.test/x","response_headers":"Content-Type"}`,
		`{"method":"GET","url":"https://api.example.test/x","response_headers":[1]}`,
		func() string {
			b, _ := json.Marshal(abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/x", ResponseHeaders: names})
			return string(b)
		}(),
	} {
		res := call(h, "hostile.fetch", bad)
		var resp abi.HTTPResponse
		if !res.OK || abi.DecodeHTTPResponse(res.Data, &resp) != nil || resp.Error == nil || resp.Error.Code != abi.CodeBadRequest {
			t.Errorf("fetch %.120s = %s %+v, want the bad_request refusal", bad, res.Data, res.Error)
		}
	}
}

// Attack (hostile upstream, red team s9): an upstream behind a plain-http Upstreams target (the
// HTTP/1.1 fast path) echoes the injected token everywhere a connector asking for a raw body and
// named headers reads: in WWW-Authenticate, in several values of one header (as sent, lower- and
// uppercased), under a header name sent in odd case, in a header's name, in Set-Cookie, and in a
// gzip body sent chunked in small pieces. The connector names those headers in odd case (and
// twice). No byte run of the token may reach the plugin's answer, the result, the audit or the log.
func TestRawBodyAndNamedHeadersScrubEchoes(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok := strings.TrimPrefix(auth, "Bearer ")
		hd := w.Header()
		hd["Www-Authenticate"] = []string{`Bearer realm="api", error="invalid_token", token="` + tok + `"`}
		hd["X-Echo"] = []string{auth, strings.ToLower(tok), strings.ToUpper(tok)}
		hd["x-eChO-oDd"] = []string{"v=" + tok + ";"} // written as is; the client canonicalises it
		hd["X-"+tok] = []string{"in the name"}
		hd["Set-Cookie"] = []string{"session=" + tok + "; HttpOnly"}
		hd["Content-Encoding"] = []string{"gzip"}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		json.NewEncoder(zw).Encode(map[string]string{"you_sent": tok, "auth": auth})
		zw.Close()
		for b := buf.Bytes(); len(b) > 0; { // chunked (no Content-Length), 7 bytes a chunk
			n := min(7, len(b))
			w.Write(b[:n])
			w.(http.Flusher).Flush()
			b = b[n:]
		}
	}))
	t.Cleanup(api.Close)
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, rec := hosttest.New(t, host.Config{Secrets: secrets(), Resolver: fakeDNS{}})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"*"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN", "other_key": "env:OTHER_KEY"}),
		Upstreams:   map[string]string{"https://api.example.test": api.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	tokenLike := regexp.MustCompile(`(?i)CANARY-7f3k|7f3k2m9q`)
	for _, names := range [][]string{
		nil, // all headers
		{"www-AUTHENTICATE", "x-echo", "X-ECHO", "x-echo-odd", "set-cookie", "X-Xoxb-Canary-7f3k2m9qz", "x-xoxb-canary-7f3k2m9qz"},
	} {
		args, _ := json.Marshal(abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/echo", Credential: "token",
			RawBody: true, ResponseHeaders: names})
		res := call(h, "hostile.fetch_raw", string(args))
		if !res.OK {
			t.Fatalf("fetch_raw naming %q: %+v", names, res.Error)
		}
		var answer []byte
		if err := json.Unmarshal(res.Data, &answer); err != nil {
			// The host's last-line redaction of results cut into the base64: the plugin read a secret.
			t.Fatalf("naming %q, the result is not the plugin's base64 answer (%v): %.300s", names, err, res.Data)
		}
		if loc := tokenLike.FindIndex(answer); loc != nil {
			t.Errorf("naming %q, the plugin read the token: …%q…", names, answer[max(0, loc[0]-40):min(len(answer), loc[1]+40)])
		}
		var resp abi.HTTPResponse
		if err := abi.DecodeHTTPResponse(answer, &resp); err != nil {
			t.Fatalf("the raw answer %q does not decode: %v", answer, err)
		}
		if resp.Status != 200 || !strings.Contains(string(resp.Body), `"you_sent":"[REDACTED]"`) {
			t.Errorf("naming %q: answer %d %q, want the decoded body with the token redacted", names, resp.Status, resp.Body)
		}
		if got := resp.Headers["Www-Authenticate"]; len(got) != 1 || !strings.Contains(got[0], `token="[REDACTED]"`) {
			t.Errorf("naming %q: WWW-Authenticate = %q, want it with the token redacted", names, got)
		}
		if got := resp.Headers["X-Echo"]; len(got) != 3 || strings.Count(strings.Join(got, ","), "[REDACTED]") != 3 {
			t.Errorf("naming %q: X-Echo = %q, want its three values, each redacted", names, got)
		}
		if _, ok := resp.Headers["Set-Cookie"]; ok {
			t.Errorf("naming %q: Set-Cookie reached the plugin: %q", names, resp.Headers["Set-Cookie"])
		}
		leaks(t, rec, res)
	}
}
