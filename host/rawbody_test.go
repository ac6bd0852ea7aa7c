package host_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

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
