package abi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

var envelopeStrings = []string{"", "a", "héllo", "<a href=\"x\">&amp;</a>", "tab\tnl\nnul\x00", "\u2028\u2029",
	"bad\xffutf8", "emoji 😀", `back\slash "quoted"`, "\x7f\x1f"}

func TestAppendHTTPRequestMatchesEncodingJSON(t *testing.T) {
	reqs := []HTTPRequest{
		{},
		{Method: "POST", URL: "https://slack.com/api/chat.postMessage", Credential: "bot_token",
			Headers: map[string][]string{"Content-Type": {"application/json; charset=utf-8"}},
			Body:    []byte(`{"channel":"C0GENERAL","text":"hi"}`)},
		{Method: "GET", URL: "https://x.test/?q=<>&", Headers: map[string][]string{"B": nil, "A": {}, "C": {"1", "2"}},
			IdempotencyKey: "k", TimeoutMS: -5, Body: []byte{0, 1, 2, 255}, RawBody: true, ResponseHeaders: []string{"Retry-After", "<x>"}},
		{Headers: map[string][]string{}},
	}
	for _, s := range envelopeStrings {
		reqs = append(reqs, HTTPRequest{Method: s, URL: s, Credential: s, IdempotencyKey: s,
			Headers: map[string][]string{s: {s, s}}, Body: []byte(s), TimeoutMS: 1 << 40})
	}
	for _, r := range reqs {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendHTTPRequest(nil, &r); string(got) != string(want) {
			t.Errorf("AppendHTTPRequest(%+v)\n got %s\nwant %s", r, got, want)
		}
	}
}

func TestDecodeHTTPResponseMatchesEncodingJSON(t *testing.T) {
	resps := []HTTPResponse{
		{},
		{Status: 200, Headers: map[string][]string{"Content-Type": {"application/json"}, "Date": {"Mon, 23 Nov 2026 14:16:34 GMT"}},
			Body: []byte(`{"ok":true}`)},
		{Error: &Error{Code: "egress_denied", Category: Fatal, Message: "no <way> & \"never\"", RetryAfterMS: 1500}},
		{Status: 404, Headers: map[string][]string{"Link": {`<https://api.github.com/x?page=2>; rel="next"`}, "X": {}, "Y": nil}, Body: []byte{}},
	}
	for _, s := range envelopeStrings {
		resps = append(resps, HTTPResponse{Status: -1, Headers: map[string][]string{s: {s}}, Body: []byte(s),
			Error: &Error{Code: s, Category: Category(s), Message: s}})
	}
	for _, r := range resps {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		checkDecode(t, b, true)
		if got := AppendHTTPResponse(nil, &r); string(got) != string(b) {
			t.Errorf("AppendHTTPResponse(%+v)\n got %s\nwant %s", r, got, b)
		}
	}
	for _, s := range []string{
		`{"status":200,"extra":{"a":[1,2.5e3,true,false,null,"x\u00e9"]},"body":null,"headers":null,"error":null}`,
		` { "status" : 201 , "body" : "" } `,
		`{"Status":200}`, `{"status":200,"status":201}`, `{"status":2.0}`, `{"status":01}`, `{"body":"!!"}`,
		`{"headers":{"A":["\ud83d\ude00","\ud800"]}}`, `{"headers":{"A":["x"],"A":["y"]}}`, `{"body":"eA\u003d\u003d"}`,
		`{"error":{"code":"x","CODE":"y"}}`, `{"status":200}x`, `[]`, `{"status":"200"}`, "{\"h\":\"\xff\"}",
	} {
		checkDecode(t, []byte(s), false)
		checkDecodeRequest(t, []byte(s), false)
	}
	for _, s := range []string{`{"method":"GET","url":"u","timeout_ms":5,"body":null,"x":[]}`, `{"response_headers":[]}`,
		`{"response_headers":["a",null]}`, `{"response_headers":"a"}`, `{"response_headers":null,"raw_body":false}`, `{"METHOD":"GET"}`, `{"timeout_ms":1e3}`} {
		checkDecodeRequest(t, []byte(s), false)
	}
}

func checkDecodeRequest(t *testing.T, data []byte, mustAccept bool) {
	t.Helper()
	var fast, slow HTTPRequest
	ok := fastHTTPRequest(data, &fast)
	err := json.Unmarshal(data, &slow)
	if mustAccept && !ok {
		t.Errorf("fast path refused %s", data)
	}
	if ok && (err != nil || !reflect.DeepEqual(fast, slow)) {
		t.Errorf("fast path read %s as %+v; encoding/json: %+v, %v", data, fast, slow, err)
	}
	var viaDecode HTTPRequest
	if derr := DecodeHTTPRequest(data, &viaDecode); (derr == nil) != (err == nil) || (err == nil && !reflect.DeepEqual(viaDecode, slow)) {
		t.Errorf("DecodeHTTPRequest(%s) = %+v, %v; encoding/json: %+v, %v", data, viaDecode, derr, slow, err)
	}
}

// checkDecode: when the fast path accepts data, it must agree with json.Unmarshal exactly.
func checkDecode(t *testing.T, data []byte, mustAccept bool) {
	t.Helper()
	var fast, slow, viaDecode HTTPResponse
	ok := fastHTTPResponse(data, &fast)
	err := json.Unmarshal(data, &slow)
	if bytes.Contains(bytes.ToLower(data), []byte("raw_body_length")) {
		return // not encoding/json's envelope: TestRawBody
	}
	if derr := DecodeHTTPResponse(data, &viaDecode); (derr == nil) != (err == nil) || (err == nil && !reflect.DeepEqual(viaDecode, slow)) {
		t.Errorf("DecodeHTTPResponse(%s) = %+v, %v; encoding/json: %+v, %v", data, viaDecode, derr, slow, err)
	}
	if mustAccept && !ok {
		t.Errorf("fast path refused %s", data)
	}
	if ok && (err != nil || !reflect.DeepEqual(fast, slow)) {
		t.Errorf("fast path read %s as %+v; encoding/json: %+v, %v", data, fast, slow, err)
	}
}

// TestDeepNestingGoesToEncodingJSON: a hostile plugin's envelope with an unknown field nested a
// million levels deep is not walked recursively by the fast path; encoding/json refuses it.
func TestDeepNestingGoesToEncodingJSON(t *testing.T) {
	const depth = 1_000_000
	data := []byte(`{"method":"GET","x":`)
	for range depth {
		data = append(data, '[')
	}
	for range depth {
		data = append(data, ']')
	}
	data = append(data, '}')
	var r HTTPRequest
	if fastHTTPRequest(data, &r) {
		t.Fatal("the fast path accepted a value nested a million levels deep")
	}
	if err := DecodeHTTPRequest(data, &r); err == nil {
		t.Fatal("DecodeHTTPRequest accepted a value nested a million levels deep; encoding/json refuses it")
	}
	shallow := []byte(`{"method":"GET","x":[[[{"a":[1]}]]]}`)
	if !fastHTTPRequest(shallow, &r) || r.Method != "GET" {
		t.Errorf("the fast path refused a shallow unknown field: %+v", r)
	}
}

func FuzzDecodeHTTPResponse(f *testing.F) {
	f.Add([]byte(`{"status":200,"headers":{"A":["b"]},"body":"eA==","error":{"code":"c","category":"fatal","message":"m","retry_after_ms":5}}`))
	f.Add([]byte(`{"x":[{"y":-1.5e-3}],"status":0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data, false)
		checkDecodeRequest(t, data, false)
	})
}

var benchResp = []byte(`{"status":200,"headers":{"Content-Length":["199"],"Content-Type":["application/json; charset=utf-8"],"Date":["Mon, 23 Nov 2026 14:16:34 GMT"]},"body":"eyJjaGFubmVsIjoiQzBHRU5FUkFMIiwibWVzc2FnZSI6eyJ0eXBlIjoibWVzc2FnZSIsInVzZXIiOiJVMEJPVCIsImJvdF9pZCI6IkIwQk9UIiwidGV4dCI6ImJlbmNobWFyazogZGVwbG95IGZpbmlzaGVkIiwidHMiOiIxNzk1NDQzMzk0LjcxNDMyMSIsInRlYW0iOiJUMEFJUkxPQ0sifSwib2siOnRydWUsInRzIjoiMTc5NTQ0MzM5NC43MTQzMjEifQ=="}`)

var benchReq = HTTPRequest{Method: "POST", URL: "https://slack.com/api/chat.postMessage", Credential: "bot_token",
	Headers: map[string][]string{"Content-Type": {"application/json; charset=utf-8"}},
	Body:    []byte(`{"channel":"C0GENERAL","text":"benchmark: deploy finished"}`)}

func BenchmarkEnvelope(b *testing.B) {
	b.Run("req/encoding_json", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(benchReq)
		}
	})
	b.Run("req/fast", func(b *testing.B) {
		for b.Loop() {
			AppendHTTPRequest(nil, &benchReq)
		}
	})
	b.Run("resp/encoding_json", func(b *testing.B) {
		for b.Loop() {
			var r HTTPResponse
			json.Unmarshal(benchResp, &r)
		}
	})
	resp := HTTPResponse{}
	DecodeHTTPResponse(benchResp, &resp)
	req, _ := json.Marshal(benchReq)
	b.Run("host_resp_encode/encoding_json", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(resp)
		}
	})
	b.Run("host_resp_encode/fast", func(b *testing.B) {
		for b.Loop() {
			AppendHTTPResponse(nil, &resp)
		}
	})
	b.Run("host_req_decode/encoding_json", func(b *testing.B) {
		for b.Loop() {
			var r HTTPRequest
			json.Unmarshal(req, &r)
		}
	})
	b.Run("host_req_decode/fast", func(b *testing.B) {
		for b.Loop() {
			var r HTTPRequest
			DecodeHTTPRequest(req, &r)
		}
	})
	b.Run("resp/fast", func(b *testing.B) {
		for b.Loop() {
			var r HTTPResponse
			DecodeHTTPResponse(benchResp, &r)
		}
	})
}

// TestRawBody: a response written for a request with raw_body reads back as the response, body
// included; a raw body that does not have the length the envelope gives is an error, never a
// shorter or longer body.
func TestRawBody(t *testing.T) {
	for _, r := range []HTTPResponse{
		{Status: 200, Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(`{"ok":true} "}{`)},
		{Status: 204},
		{Status: 200, Body: []byte{0, '"', '}', 0xff}},
		{Error: &Error{Code: "timeout", Category: Retryable, Message: "m"}},
	} {
		data := AppendHTTPResponseRaw(nil, &r)
		if len(r.Body) == 0 && string(data) != string(AppendHTTPResponse(nil, &r)) {
			t.Errorf("without a body the raw form differs: %s", data)
		}
		var fast, got HTTPResponse
		if err := DecodeHTTPResponse(data, &got); err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("DecodeHTTPResponse(%q) = %+v, %v; want %+v", data, got, err, r)
		}
		if !fastHTTPResponse(data, &fast) || !reflect.DeepEqual(fast, r) {
			t.Errorf("the fast path did not read %q", data)
		}
		if len(r.Body) == 0 {
			continue
		}
		for _, bad := range [][]byte{data[:len(data)-1], append(append([]byte(nil), data...), 'x')} {
			if err := DecodeHTTPResponse(bad, &got); err == nil {
				t.Errorf("DecodeHTTPResponse(%q) accepted a raw body of the wrong length: %+v", bad, got)
			}
		}
	}
	for _, bad := range []string{`{"raw_body_length":0}`, `{"raw_body_length":-1}x`, `{"raw_body_length":1,"body":"eA=="}x`,
		`{"raw_body_length":1.5}x`, `{"raw_body_length":"1"}x`, `{"RAW_BODY_LENGTH":2}x`} {
		var got HTTPResponse
		if err := DecodeHTTPResponse([]byte(bad), &got); err == nil {
			t.Errorf("DecodeHTTPResponse(%s) = %+v, want an error", bad, got)
		}
	}
	req := HTTPRequest{Method: "GET", URL: "u", RawBody: true}
	want, _ := json.Marshal(req)
	var back HTTPRequest
	if got := AppendHTTPRequest(nil, &req); string(got) != string(want) || !fastHTTPRequest(got, &back) || !back.RawBody {
		t.Errorf("AppendHTTPRequest = %s, want %s; read back %+v", got, want, back)
	}
}
