package validate

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// decodeCorpus holds inputs, valid and not, on which decode and referenceDecode must agree. It
// also seeds FuzzDecodeJSONMatchesReference.
var decodeCorpus = []string{
	// Scalars and white space.
	`null`, `true`, `false`, `0`, `"x"`, ` 1 `, "\t\r\n 1\n", ``, ` `, "\n\t", `nul`, `tru`, `fals`,
	`nulx`, `trux`, `falsx`, `nx`, `tx`, `fx`, `truex`, `true false`, `null]`, `True`, `NULL`,
	"\v1", "\f1", "1\v", "\x001", "1\x00", "\ufeff1",

	// Numbers.
	`-0`, `-0.0`, `0.0`, `1e5`, `1E5`, `1e+5`, `1e-5`, `1.5E-3`, `-1.5e+300`, `123456789012345678901234567890`,
	`1e999999`, `-`, `--1`, `+1`, `.5`, `1.`, `1.e5`, `01`, `00`, `-01`, `1e`, `1e+`, `1E-`, `1ee5`,
	`1.5.3`, `0x10`, `1_000`, `Infinity`, `NaN`, `-Infinity`, `1 2`, `[01]`, `[-01]`, `[1.]`, `[1.e]`,
	`[.5]`, `[+1]`, `[1e]`, `[1e5e]`, `[1.5.3]`, `[-]`, `[- 1]`, `[1x]`, `[0x1]`, `{"a":01}`,
	`{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":1x}`, `[1`, `[1.`, `[1e`, `[-`, `1.5x`, `1.x`,

	// Strings: escapes, unicode, surrogates, control characters.
	`"a\"b\\c\/d\be\ff\ng\rh\ti"`, `"\u0041\u00e9\u20AC\uffff"`, `"\u0000"`, `"é ü 日本 🎉"`,
	`"\ud83c\udf89"`, `"\uD83C\uDF89"`, `"\ud83c"`, `"\udf89"`, `"\ud83cx"`, `"\ud83c\u0041"`,
	`"\ud83c\ud83c\udf89"`, `"\udf89\ud83c"`, `"\ud83c\"`, `"\ud83c\u12"`, `"\ud83c\u12x4"`,
	`"\ud83c\\"`, `"\ud83c\n"`, `"a\ud83c"`, `"\ud800\udc00"`, `"\udbff\udfff"`, `"\udc00\udc00"`,
	`"\u"`, `"\u1"`, `"\u12"`, `"\u123"`, `"\u123x"`, `"\uXXXX"`, `"\x41"`, `"\'"`, `"\a"`, `"\`,
	`"\u12`, `"abc`, `"`, `"a` + "\n" + `"`, "\"\t\"", "\"\x00\"", "\"\x1f\"", "\"\x7f\"",
	"\"\\n\x1f\"", "\"\\t\x00x\"", "\"\\u0041\n\"", "\"a\\\\b\x7f\\/\"", "\"\u2028\u2029\"", `"\/\/"`,
	`["a\u0041"]`, `{"k\u0041":1}`, `{"\ud83c":1}`, `{"a\nb":1}`, "{\"a\nb\":1}", `{"\x":1}`,
	`"` + strings.Repeat("x", 300) + `\n` + strings.Repeat("y", 300) + `"`,

	// Invalid UTF-8 inside and outside strings.
	"\"\xff\"", "\xff", "[1,\xff]", "{\"a\xc3\":1}", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\xe2\x82\"",
	"[\"ok\"]\xff", "\xef\xbb\xbf{}", "[é]", "{é:1}", "[1é]", "[tré]", "\"é\"",

	// Arrays.
	`[]`, `[ ]`, `[[]]`, `[[],[]]`, `[1,2,3]`, `[1, "a", true, null, {}, []]`, `[`, `[ `, `[1`,
	`[1,`, `[1 `, `[1, `, `[,`, `[,1]`, `[1,,2]`, `[1,]`, `[1 2]`, `[1}`, `[}`, `[:`, `[1:2]`, `["a" "b"]`,
	`[[1]x]`, `[[1] 2]`, `[[1]}`, `[]]`, `[1]]`, `[1],`, `[[[`, `[[[1,`, `[{"a":[1,{"b":[x]}]}]`,
	`[{"a":1}{"b":2}]`, `[{"a":1},{"b":2}`, `[tru]`, `[tx]`, `[nul`, `[fals,`, `[null,nul]`, `[1,2,]`,

	// Objects.
	`{}`, `{ }`, `{"a":1}`, ` { "a" : 1 , "b" : [ 2 ] } `, `{"a":{"b":{"c":null}}}`, `{`, `{ `,
	`{"a"`, `{"a" `, `{"a":`, `{"a": `, `{"a":1`, `{"a":1 `, `{"a":1,`, `{"a":1, `, `{"a`, `{"a":"b`,
	`{"a":tr`, `{1}`, `{1:2}`, `{]`, `{:`, `{,`, `{"a":1,}`, `{"a":1,,}`, `{"a":1,1}`, `{"a":1 "b":2}`,
	`{"a" 1}`, `{"a",1}`, `{"a"}`, `{"a"]`, `{"a"{`, `{"a" "b"}`, `{"a"::1}`, `{"a":,}`, `{"a":}`,
	`{"a":]`, `{"a":1]`, `{"a":1:`, `{"a":1}}`, `{"a":1}x`, `{"a":1} {}`, `{"a":1},`, `{'a':1}`,
	`{a:1}`, `{"a":1;"b":2}`, `{"":1}`, `{"":1,"":2}`, `{"a/b~c":{"d":x}}`, `{"a/b~c":1,"a/b~c":2}`,

	// Duplicate keys, at depth and after escapes.
	`{"a":1,"a":2}`, `{"a":1,"b":2,"a":3}`, `{"x":{"a":1,"a":2}}`, `{"x":[{"a":1},{"a":1,"a":2}]}`,
	`{"a":1,"\u0061":2}`, `{"a":1,"a":x}`, `{"a":1,"a"`, `{"a":{},"a":[]}`, `[{"k":1,"k":1}]`,
	`{"A":1,"a":2}`, `{"é":1,"\u00e9":2}`, `{"a":1,"a":2,"a":3}`,

	// Trailing data.
	`1 x`, `"a"x`, `"a""b"`, `[] []`, `{}{}`, `null null`, `{} `, "{}\n", `[1]]`, `{}}`, `1,`, `1 ]`,
	`{"a":1}` + "\x00",
}

// contextless matches the messages json.Decoder.Token gave for a byte it did not expect right
// after '{' (its tokenError has no wording for that state): decode adds the scanner's wording,
// "looking for beginning of object key string".
var contextless = regexp.MustCompile(`^invalid character '(?:\\'|[^']+)'$`)

// checkMatchesReference decodes data with decode and referenceDecode and reports any difference:
// accept or refuse, the value, and for a refusal the error's path and message.
func checkMatchesReference(t *testing.T, data []byte, maxDepth int) {
	t.Helper()
	want, wantErr := referenceDecode(data, maxDepth)
	got, gotErr := decode(data, maxDepth)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("decode(%q, %d) = %#v, %v; reference = %#v, %v", data, maxDepth, got, gotErr, want, wantErr)
	}
	if wantErr == nil {
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decode(%q, %d) = %#v; reference = %#v", data, maxDepth, got, want)
		}
		return
	}
	var gotDE, wantDE *DecodeError
	if !errors.As(gotErr, &gotDE) || !errors.As(wantErr, &wantDE) {
		t.Fatalf("decode(%q, %d) error = %T %v; reference = %T %v, want both *DecodeError", data, maxDepth, gotErr, gotErr, wantErr, wantErr)
	}
	if got != nil {
		t.Fatalf("decode(%q, %d) = %#v with an error, want nil", data, maxDepth, got)
	}
	wantMsg := wantDE.Msg
	if contextless.MatchString(wantMsg) {
		wantMsg += " looking for beginning of object key string"
	}
	if gotDE.Path != wantDE.Path || gotDE.Msg != wantMsg {
		t.Fatalf("decode(%q, %d) error = {Path: %q, Msg: %q}; want {Path: %q, Msg: %q}", data, maxDepth, gotDE.Path, gotDE.Msg, wantDE.Path, wantMsg)
	}
}

// TestDecodeMatchesReference is the differential test: decode must agree with the json.Decoder
// walk it replaced on every input of decodeCorpus, on its truncations, and on nesting around the
// depth bound.
func TestDecodeMatchesReference(t *testing.T) {
	var inputs []string
	for _, in := range decodeCorpus {
		inputs = append(inputs, in)
		// Every strict prefix: truncated input must fail the same way.
		for i := range len(in) {
			inputs = append(inputs, in[:i])
		}
	}
	inputs = append(inputs, benchDocument)
	for i := 0; i < len(benchDocument); i += 97 {
		inputs = append(inputs, benchDocument[:i])
	}
	for _, n := range []int{1, 2, 3, 4, MaxValueDepth - 1, MaxValueDepth, MaxValueDepth + 1} {
		inputs = append(inputs,
			strings.Repeat("[", n)+strings.Repeat("]", n),
			strings.Repeat(`{"a":`, n)+"1"+strings.Repeat("}", n),
			strings.Repeat(`[{"k/~":`, n)+"[]"+strings.Repeat("}]", n),
			strings.Repeat(`[1,`, n)+"{}"+strings.Repeat("]", n),
			strings.Repeat("[", n), // too deep or truncated, whichever comes first
		)
	}
	for _, in := range inputs {
		for _, depth := range []int{1, 3, MaxValueDepth} {
			checkMatchesReference(t, []byte(in), depth)
		}
	}
}

// TestDecodeJSONErrors pins the errors an agent sees for a few inputs, independently of the
// reference.
func TestDecodeJSONErrors(t *testing.T) {
	deep := strings.Repeat("[", MaxValueDepth+1) + strings.Repeat("]", MaxValueDepth+1)
	tests := []struct {
		in, path, msg string
	}{
		{``, "", "unexpected end of input"},
		{`{"channel": `, "/channel", "unexpected end of input"},
		{`{"a": {"b/c": [1, 2, {"d": 1, "d": 2}]}}`, "/a/b~1c/2/d", `duplicate key "d"`},
		{`{"a": 1} {}`, "", "unexpected data after the top-level value"},
		{"{\"a\": \"\xff\"}", "", "not valid UTF-8"},
		{deep, "/" + strings.TrimSuffix(strings.Repeat("0/", MaxValueDepth), "/"), "nested deeper than 256 levels"},
		{`[1, 2 3]`, "/2", "invalid character '3' after array element"},
		{`{"a": tru}`, "/a", "invalid character '}' in literal true (expecting 'e')"},
		{`{"a": 01}`, "", "invalid character '1' after object key:value pair"},
		{`{"a": 1.}`, "/a", "invalid character '}' after decimal point in numeric literal"},
		{`{"a": "x` + "\n" + `"}`, "/a", `invalid character '\n' in string literal`},
		{`{"a": "\q"}`, "/a", "invalid character 'q' in string escape code"},
		{`{"a": "\u12g4"}`, "/a", `invalid character 'g' in \u hexadecimal character escape`},
		{`{"a" 1}`, "/a", "invalid character '1' after object key"},
		{`{1: 2}`, "", "invalid character '1' looking for beginning of object key string"},
		{`[é]`, "/0", "invalid character 'Ã' looking for beginning of value"},
	}
	for _, tt := range tests {
		_, err := DecodeJSON([]byte(tt.in))
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("DecodeJSON(%.40q) = %v, want *DecodeError", tt.in, err)
			continue
		}
		if de.Path != tt.path || de.Msg != tt.msg {
			t.Errorf("DecodeJSON(%.40q) error = {%q, %q}, want {%q, %q}", tt.in, de.Path, de.Msg, tt.path, tt.msg)
		}
	}
}

// TestDecodeJSONValues checks the types and the string decoding against encoding/json.
func TestDecodeJSONValues(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{`[]`, []any{}},
		{`{}`, map[string]any{}},
		{`{"a": [], "b": {}}`, map[string]any{"a": []any{}, "b": map[string]any{}}},
		{`-0`, json.Number("-0")},
		{` 1.5E-3 `, json.Number("1.5E-3")},
		{`123456789012345678901234567890e-5`, json.Number("123456789012345678901234567890e-5")},
		{`"\ud83c\udf89 \ud83c \udf89x \u00e9\/\"\\"`, "🎉 \ufffd \ufffdx é/\"\\"},
		{`"\ud83c\u0041"`, "\ufffdA"},
		{`[true, false, null]`, []any{true, false, nil}},
	}
	for _, tt := range tests {
		got, err := DecodeJSON([]byte(tt.in))
		if err != nil {
			t.Errorf("DecodeJSON(%q) = %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("DecodeJSON(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		if s, ok := tt.want.(string); ok {
			var std string
			if err := json.Unmarshal([]byte(tt.in), &std); err != nil || std != s {
				t.Errorf("json.Unmarshal(%q) = %q, %v; want %q", tt.in, std, err, s)
			}
		}
	}
}

// benchSmall is a typical tool call's arguments.
const benchSmall = `{"channel":"C0GENERAL","text":"benchmark: deploy finished","thread_ts":"1795443394.714321"}`

// benchDocument is a plugin's output of about 10 KB: nested objects and arrays, escapes, unicode,
// numbers, booleans and nulls.
var benchDocument = func() string {
	var sb strings.Builder
	sb.WriteString(`{"ok": true, "channel": "C0GENERAL", "has_more": false, "messages": [`)
	for i := 0; sb.Len() < 9800; i++ {
		if i > 0 {
			sb.WriteString(",\n  ")
		}
		fmt.Fprintf(&sb, `{"type": "message", "user": "U%07d", "ts": "1795443394.%06d", "text": "deploy #%d finished \u2014 see <https:\/\/ci.example.com\/runs\/%d|run> \"ok\" ✅", `+
			`"reactions": [{"name": "tada", "count": %d, "users": ["U1", "U2"]}], "edited": null, "score": %d.25e-1, "blocks": [{"type": "section", "fields": [[1, 2], [3, 4]]}]}`,
			i, i*7919%1000000, i, i, i%5, i)
	}
	sb.WriteString(`], "response_metadata": {"next_cursor": ""}}`)
	return sb.String()
}()

// BenchmarkDecodeJSON compares decode with the json.Decoder.Token walk it replaced.
func BenchmarkDecodeJSON(b *testing.B) {
	for _, doc := range []struct{ name, data string }{{"small", benchSmall}, {"10KB", benchDocument}} {
		data := []byte(doc.data)
		for _, impl := range []struct {
			name   string
			decode func([]byte, int) (any, error)
		}{{"new", decode}, {"reference", referenceDecode}} {
			b.Run(doc.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := impl.decode(data, MaxValueDepth); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
