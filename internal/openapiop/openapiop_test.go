package openapiop

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ptr(b bool) *bool { return &b }

func TestBuildQueryStyles(t *testing.T) {
	op := &Operation{Method: "GET", Server: "https://api.example.com/v1/", Path: "/items", Params: []Param{
		{Name: "a", In: "query", Arg: "a"},                                     // form, explode (default)
		{Name: "b", In: "query", Arg: "b", Style: "form", Explode: ptr(false)}, // form, no explode
		{Name: "c", In: "query", Arg: "c", Style: "pipeDelimited", Explode: ptr(false)},
		{Name: "d", In: "query", Arg: "d", Style: "spaceDelimited", Explode: ptr(false)},
		{Name: "e", In: "query", Arg: "e", Style: "deepObject", Explode: ptr(true)},
		{Name: "f", In: "query", Arg: "f"}, // object, form explode: its keys become parameters
		{Name: "X-Req", In: "header", Arg: "x"},
		{Name: "sess", In: "cookie", Arg: "s"},
	}}
	req, err := Build(op, []byte(`{"a":[1,2],"b":["x y","z"],"c":[1,2],"d":["p","q"],"e":{"k":"v","n":2},"f":{"m":"1"},"x":"r1","s":"a b"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "https://api.example.com/v1/items?a=1&a=2&b=x+y,z&c=1|2&d=p%20q&e%5Bk%5D=v&e%5Bn%5D=2&m=1"
	if req.URL != want {
		t.Errorf("URL = %s\nwant  %s", req.URL, want)
	}
	if diff := cmp.Diff(map[string][]string{"X-Req": {"r1"}, "Cookie": {"sess=a+b"}}, req.Headers); diff != "" {
		t.Errorf("headers mismatch (-want +got):\n%s", diff)
	}
}

func TestBuildBodies(t *testing.T) {
	jsonOp := &Operation{Method: "POST", Server: "https://h", Path: "/p", Body: &Body{MediaType: MediaJSON, Arg: "body"}}
	req, err := Build(jsonOp, []byte(`{"body":{"name":"Rex","n":12345678901234567890}}`))
	if err != nil || string(req.Body) != `{"name":"Rex","n":12345678901234567890}` || req.Headers["Content-Type"][0] != MediaJSON {
		t.Errorf("JSON body = %s %v %v (numbers must keep their precision)", req.Body, req.Headers, err)
	}
	formOp := &Operation{Method: "POST", Server: "https://h", Path: "/p", Body: &Body{MediaType: MediaForm, Arg: "body"}}
	req, err = Build(formOp, []byte(`{"body":{"channel":"C1","text":"a&b=c","n":2,"ok":true,"list":["x","y"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := url.ParseQuery(string(req.Body))
	if diff := cmp.Diff(url.Values{"channel": {"C1"}, "text": {"a&b=c"}, "n": {"2"}, "ok": {"true"}, "list": {"x", "y"}}, got); diff != "" {
		t.Errorf("form body mismatch (-want +got):\n%s", diff)
	}
	req, _ = Build(formOp, []byte(`{}`))
	if req.Body != nil || req.Headers["Content-Type"] != nil {
		t.Errorf("no body argument: body %q headers %v", req.Body, req.Headers)
	}
}

// TestPathParameterStaysInSegment: whatever a path parameter holds, the built URL's path has the
// template's segments and the value decodes back to itself.
func TestPathParameterStaysInSegment(t *testing.T) {
	op := &Operation{Method: "GET", Server: "https://api.example.com/v1", Path: "/files/{name}/meta",
		Params: []Param{{Name: "name", In: "path", Arg: "name"}}}
	for _, v := range []string{"../admin", "..%2fadmin", "%2e%2e", "a?x=1", "a#f", "a\r\nHost: evil", "a/b", "..\\..", "é", "a b", ";", "..."} {
		args, _ := json.Marshal(map[string]string{"name": v})
		req, err := Build(op, args)
		if err != nil {
			t.Errorf("Build(%q) = %v", v, err)
			continue
		}
		u, err := url.Parse(req.URL)
		if err != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Errorf("Build(%q) = %s: query or fragment appeared", v, req.URL)
			continue
		}
		segs := strings.Split(u.EscapedPath(), "/")
		if len(segs) != 5 || segs[2] != "files" || segs[4] != "meta" {
			t.Errorf("Build(%q) path %s: left its segment", v, u.EscapedPath())
			continue
		}
		if got, _ := url.PathUnescape(segs[3]); got != v {
			t.Errorf("Build(%q) segment %s decodes to %q", v, segs[3], got)
		}
	}
	for _, v := range []string{"..", ".", ""} {
		args, _ := json.Marshal(map[string]string{"name": v})
		var ae *ArgumentError
		if _, err := Build(op, args); !errors.As(err, &ae) {
			t.Errorf("Build(%q) = %v, want an ArgumentError", v, err)
		}
	}
	if _, err := Build(op, []byte(`{}`)); err == nil {
		t.Error("Build without the path parameter succeeded")
	}
}

func TestBuildHeaderInjection(t *testing.T) {
	op := &Operation{Method: "GET", Server: "https://h", Path: "/", Params: []Param{{Name: "X-A", In: "header", Arg: "a"}}}
	if _, err := Build(op, []byte(`{"a":"x\r\nEvil: 1"}`)); err == nil {
		t.Error("a header value with CRLF was accepted")
	}
}

func FuzzBuildPath(f *testing.F) {
	for _, s := range []string{"../x", "%2e%2e", "a?b", "a#b", "\r\n", "..", "é/ü", "\x00"} {
		f.Add(s)
	}
	op := &Operation{Method: "GET", Server: "https://api.example.com", Path: "/a/{p}/b", Params: []Param{{Name: "p", In: "path", Arg: "p"}}}
	f.Fuzz(func(t *testing.T, v string) {
		args, _ := json.Marshal(map[string]string{"p": v})
		req, err := Build(op, args)
		if err != nil {
			return
		}
		u, err := url.Parse(req.URL)
		if err != nil {
			t.Fatalf("Build(%q) = %q: not a URL: %v", v, req.URL, err)
		}
		segs := strings.Split(u.EscapedPath(), "/")
		if u.Host != "api.example.com" || u.RawQuery != "" || u.Fragment != "" || len(segs) != 4 || segs[1] != "a" || segs[3] != "b" || segs[2] == ".." || segs[2] == "." {
			t.Fatalf("Build(%q) = %q: left the path segment", v, req.URL)
		}
	})
}

func TestNext(t *testing.T) {
	cursor := &Operation{Params: []Param{{Name: "cursor", In: "query", Arg: "cursor"}},
		Pagination: &Pagination{Kind: PageCursor, Arg: "cursor", Field: []string{"response_metadata", "next_cursor"}}}
	more := &Operation{Pagination: &Pagination{Kind: PageCursor, Arg: "after", Field: []string{"last_id"}, More: []string{"has_more"}}}
	link := &Operation{Params: []Param{{Name: "page", In: "query", Arg: "page"}, {Name: "per_page", In: "query", Arg: "per_page"}},
		Pagination: &Pagination{Kind: PageLink}}
	offset := &Operation{Pagination: &Pagination{Kind: PageOffset, Arg: "offset", LimitArg: "limit"}}
	for _, tt := range []struct {
		name    string
		op      *Operation
		args    string
		body    string
		headers map[string][]string
		want    map[string]any
	}{
		{"cursor", cursor, `{}`, `{"channels":[],"response_metadata":{"next_cursor":"dGVhbTpDMDYx"}}`, nil, map[string]any{"cursor": "dGVhbTpDMDYx"}},
		{"cursor, last page", cursor, `{}`, `{"response_metadata":{"next_cursor":""}}`, nil, nil},
		{"has_more true", more, `{}`, `{"data":[1],"last_id":"file-9","has_more":true}`, nil, map[string]any{"after": "file-9"}},
		{"has_more false", more, `{}`, `{"data":[1],"last_id":"file-9","has_more":false}`, nil, nil},
		{"link", link, `{}`, `[]`, map[string][]string{"Link": {`<https://api.example.com/items?page=3&per_page=50>; rel="next", <https://api.example.com/items?page=9>; rel="last"`}}, map[string]any{"page": "3", "per_page": "50"}},
		{"link, last page", link, `{}`, `[]`, map[string][]string{"Link": {`<https://api.example.com/items?page=1>; rel="first"`}}, nil},
		{"offset, full page", offset, `{"offset":20,"limit":2}`, `{"items":[1,2]}`, nil, map[string]any{"offset": 22.0}},
		{"offset, short page", offset, `{"offset":20,"limit":2}`, `{"items":[1]}`, nil, nil},
	} {
		var body any
		json.Unmarshal([]byte(tt.body), &body)
		got := tt.op.Next([]byte(tt.args), body, tt.headers)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: Next mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}
