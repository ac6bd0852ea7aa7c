package pdkjson

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// decodeAny reads any value the way encoding/json decodes into an `any`.
func decodeAny(d *Decoder) any {
	switch d.Kind() {
	case Object:
		m := map[string]any{}
		d.Object(func(key string) { m[key] = decodeAny(d) })
		return m
	case Array:
		a := []any{}
		d.Array(func(int) { a = append(a, decodeAny(d)) })
		return a
	case String:
		return d.String()
	case Number:
		return d.Float()
	case Bool:
		return d.Bool()
	case Null:
		d.Null()
		return nil
	}
	d.Skip() // records the syntax error
	return nil
}

// errClass is "syntax", "type" or "" for an error of either package.
func errClass(err error) string {
	var s1 *json.SyntaxError
	var s2 *SyntaxError
	var t1 *json.UnmarshalTypeError
	var t2 *TypeError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &s1), errors.As(err, &s2):
		return "syntax"
	case errors.As(err, &t1), errors.As(err, &t2):
		return "type"
	case strings.Contains(err.Error(), "unexpected end of JSON input"):
		return "syntax" // encoding/json's error for empty input is a plain SyntaxError too, but be lenient
	}
	return err.Error()
}

// checkAgainstEncodingJSON reads data as each Go type a connector reads, with pdkjson and with
// encoding/json, and reports any difference in value or kind of error.
func checkAgainstEncodingJSON(t *testing.T, data []byte) {
	t.Helper()
	// Any value.
	var want any
	wantErr := json.Unmarshal(data, &want)
	d := NewDecoder(data)
	got := decodeAny(d)
	gotErr := d.End()
	if errClass(gotErr) != errClass(wantErr) {
		t.Fatalf("%q as any: error %v, encoding/json %v", data, gotErr, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q as any: %#v, encoding/json %#v", data, got, want)
	}
	// Each scalar type at the top level.
	var s string
	wantErr = json.Unmarshal(data, &s)
	d.Reset(data)
	gs := d.String()
	gotErr = d.End()
	if errClass(gotErr) != errClass(wantErr) || wantErr == nil && gs != s {
		t.Fatalf("%q as string: %q %v, encoding/json %q %v", data, gs, gotErr, s, wantErr)
	}
	var n int64
	wantErr = json.Unmarshal(data, &n)
	d.Reset(data)
	gn := d.Int()
	gotErr = d.End()
	if errClass(gotErr) != errClass(wantErr) || wantErr == nil && gn != n {
		t.Fatalf("%q as int64: %d %v, encoding/json %d %v", data, gn, gotErr, n, wantErr)
	}
	var b bool
	wantErr = json.Unmarshal(data, &b)
	d.Reset(data)
	gb := d.Bool()
	gotErr = d.End()
	if errClass(gotErr) != errClass(wantErr) || wantErr == nil && gb != b {
		t.Fatalf("%q as bool: %v %v, encoding/json %v %v", data, gb, gotErr, b, wantErr)
	}
	var raw json.RawMessage
	wantErr = json.Unmarshal(data, &raw)
	d.Reset(data)
	gr := d.Raw()
	gotErr = d.End()
	if errClass(gotErr) != errClass(wantErr) || wantErr == nil && string(gr) != string(raw) {
		t.Fatalf("%q as raw: %q %v, encoding/json %q %v", data, gr, gotErr, raw, wantErr)
	}
	// An object of strings read by key, as a connector reads its arguments.
	var st struct {
		A string `json:"a"`
		N int64  `json:"n"`
	}
	wantErr = json.Unmarshal(data, &st)
	var ga string
	var gn2 int64
	d.Reset(data)
	d.Object(func(key string) {
		switch key {
		case "a":
			if !d.Null() {
				ga = d.String()
			}
		case "n":
			if !d.Null() {
				gn2 = d.Int()
			}
		}
	})
	gotErr = d.End()
	if errClass(gotErr) != errClass(wantErr) {
		t.Fatalf("%q as struct: error %v, encoding/json %v", data, gotErr, wantErr)
	}
	// encoding/json also fills "A" from a key "A" (case-insensitive match): compare only when
	// every key is exact.
	if wantErr == nil && !hasFoldedKey(data) && (ga != st.A || gn2 != st.N) {
		t.Fatalf("%q as struct: %q %d, encoding/json %q %d", data, ga, gn2, st.A, st.N)
	}
}

// hasFoldedKey reports whether data (a valid JSON object) has a key that differs from "a" or "n"
// only in case, or spelled with escapes.
func hasFoldedKey(data []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return true
	}
	for k := range m {
		if (strings.EqualFold(k, "a") || strings.EqualFold(k, "n")) && k != "a" && k != "n" {
			return true
		}
	}
	return strings.Contains(string(data), `\u`) || strings.ContainsAny(string(data), "\u212a\u017f")
}

var decodeSeeds = []string{
	`{"a":"x","n":1}`, `{"a":"x","a":"y"}`, `{"A":"x"}`, `{"a":null,"n":null}`, `{"n":1.5}`, `{"n":"1"}`,
	`{"n":1e2}`, `{"n":-0}`, `{"n":9223372036854775808}`, `{"a":1}`, `{"a":"x"} x`, `{"a":"x",}`, `{,}`,
	`[1,2,[3,{"b":null}]]`, `[]`, `{}`, `""`, `"\ud83d\ude00"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`,
	`"\ud800\ud800\udc00"`, "\"bad\xffutf8\"", "\"\xed\xa0\x80\"", `"\u00e9\n\t\"\\\/\b\f\r"`, `"\x"`, `"\u12g4"`,
	`"\u12`, "\"a\x01\"", `"unterminated`, `tru`, `true`, `false`, `null`, `nul`, `nulx`, `-`, `-0`, `01`, `1.`, `1.e5`,
	`1e`, `1e+`, `1E-5`, `-12.5e+3`, `1e400`, `123456789012345678901234567890`, ` 1 `, ``, ` `, `{"a":}`,
	`{"a" "x"}`, `{"a":"x"`, `[1 2]`, `[1,]`, `{"n":true}`, `{"a":{"a":"x"}}`, `"<>&\u2028"`, `[[[[[[]]]]]]`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
}

func TestDecoderMatchesEncodingJSON(t *testing.T) {
	for _, s := range decodeSeeds {
		checkAgainstEncodingJSON(t, []byte(s))
	}
}

func FuzzDecoder(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstEncodingJSON(t, data)
	})
}

func TestDecoderReadsArgumentsInPlace(t *testing.T) {
	data := []byte(`{"channel":"C0GENERAL","text":"hi","blocks":[{"type":"divider"} , {"type":"header"}],"limit":20,"ok":true,"x":{"y":[1]}}`)
	var d Decoder
	d.Reset(data)
	var channel, text string
	var blocks [][]byte
	var limit int64
	var ok bool
	if !d.Object(func(key string) {
		switch key {
		case "channel":
			channel = d.String()
		case "text":
			text = d.String()
		case "blocks":
			d.Array(func(int) { blocks = append(blocks, d.Raw()) })
		case "limit":
			limit = d.Int()
		case "ok":
			ok = d.Bool()
		}
	}) {
		t.Fatal("not read as an object")
	}
	if err := d.End(); err != nil {
		t.Fatal(err)
	}
	if channel != "C0GENERAL" || text != "hi" || limit != 20 || !ok || len(blocks) != 2 ||
		string(blocks[0]) != `{"type":"divider"}` || string(blocks[1]) != `{"type":"header"}` {
		t.Fatalf("read %q %q %d %v %q", channel, text, limit, ok, blocks)
	}
	allocs := testing.AllocsPerRun(100, func() {
		d.Reset(data)
		d.Object(func(key string) {
			if key == "channel" {
				channel = d.String()
			}
		})
	})
	if allocs > 1 { // the one copy of the input as a string
		t.Errorf("reading unescaped strings allocated %.0f times, want 1", allocs)
	}
}

func TestDecoderTypeErrorGoesOn(t *testing.T) {
	// encoding/json reads the other fields after one of the wrong type; so does a Decoder, and
	// Err reports the first type error.
	d := NewDecoder([]byte(`{"ok":"yes","error":"not_in_channel","n":1.5}`))
	var code string
	var n int64
	d.Object(func(key string) {
		switch key {
		case "ok":
			d.Bool()
		case "error":
			code = d.String()
		case "n":
			n = d.Int()
		}
	})
	err := d.End()
	var te *TypeError
	if !errors.As(err, &te) || te.Value != "string" || te.Want != "bool" || code != "not_in_channel" || n != 0 {
		t.Fatalf("got %v, code %q, n %d", err, code, n)
	}
}

func TestWriterMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "a", "héllo", "<a href=\"x\">&amp;</a>", "tab\tnl\nnul\x00\b\f\r", "\u2028\u2029",
		"bad\xffutf8", "emoji 😀", `back\slash "quoted"`, "\x7f\x1f"}
	floats := []float64{0, 1, -1.5, 1e-7, 1e21, 123456789, 1e20, 3.14e-9, math.MaxFloat64, math.SmallestNonzeroFloat64}
	raws := []string{`{"a" : [1, 2 ,"<x> & \u2028 \"y\""] }`, " \"\u2028\u2029\" ", `null`, `[ ]`}
	var w Writer
	var want []any
	w.ArrayStart()
	for _, s := range strs {
		w.ObjectStart()
		w.Key(s)
		w.String(s)
		w.Key("n")
		w.Int(-42)
		w.Key("b")
		w.Bool(true)
		w.Key("z")
		w.Null()
		w.ObjectEnd()
		want = append(want, map[string]any{s: s, "n": -42, "b": true, "z": nil})
	}
	for _, f := range floats {
		w.Float(f)
		want = append(want, f)
	}
	for _, r := range raws {
		w.Raw([]byte(r))
		want = append(want, json.RawMessage(r))
	}
	w.ArrayStart()
	w.ArrayEnd()
	want = append(want, []any{})
	w.ArrayEnd()
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
	wantJSON, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json sorts map keys: compare object by object through a re-encode of ours.
	var back any
	if err := json.Unmarshal(w.Bytes(), &back); err != nil {
		t.Fatalf("%s: %v", w.Bytes(), err)
	}
	again, _ := json.Marshal(back)
	var wantBack any
	json.Unmarshal(wantJSON, &wantBack)
	wantAgain, _ := json.Marshal(wantBack)
	if string(again) != string(wantAgain) {
		t.Fatalf("got  %s\nwant %s", w.Bytes(), wantJSON)
	}
	// Byte for byte where the order is ours to choose.
	for _, s := range strs {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, encoding/json %s", s, got, want)
		}
	}
	for _, f := range floats {
		w.Reset(nil)
		w.Float(f)
		want, _ := json.Marshal(f)
		if string(w.Bytes()) != string(want) {
			t.Errorf("Float(%v) = %s, encoding/json %s", f, w.Bytes(), want)
		}
	}
	for _, r := range raws {
		w.Reset(nil)
		w.Raw([]byte(r))
		want, _ := json.Marshal(json.RawMessage(r))
		if string(w.Bytes()) != string(want) {
			t.Errorf("Raw(%q) = %s, encoding/json %s", r, w.Bytes(), want)
		}
	}
}

func TestWriterRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, bad := range []func(w *Writer){
		func(w *Writer) { w.Float(math.NaN()) },
		func(w *Writer) { w.Float(math.Inf(-1)) },
		func(w *Writer) { w.Raw([]byte(`{"a":`)) },
		func(w *Writer) { w.Raw(nil) },
		func(w *Writer) { w.Raw([]byte(`1 2`)) },
	} {
		var w Writer
		w.ArrayStart()
		bad(&w)
		w.ArrayEnd()
		if w.Err() == nil || string(w.Bytes()) != "[]" {
			t.Errorf("wrote %s, error %v", w.Bytes(), w.Err())
		}
	}
}

func FuzzWriter(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add(s, 1.5)
	}
	f.Fuzz(func(t *testing.T, s string, x float64) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", s, got, want)
		}
		var w Writer
		w.Float(x)
		want, err := json.Marshal(x)
		if (err != nil) != (w.Err() != nil) || err == nil && string(w.Bytes()) != string(want) {
			t.Fatalf("Float(%v) = %s %v, encoding/json %s %v", x, w.Bytes(), w.Err(), want, err)
		}
		w.Reset(nil)
		w.Raw([]byte(s))
		want, err = json.Marshal(json.RawMessage(s))
		if (err != nil) != (w.Err() != nil) || err == nil && string(w.Bytes()) != string(want) {
			t.Fatalf("Raw(%q) = %s %v, encoding/json %s %v", s, w.Bytes(), w.Err(), want, err)
		}
	})
}
