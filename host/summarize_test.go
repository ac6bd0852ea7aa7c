package host

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"
)

// referenceKeys is what summarize recorded before topKeys: decode into a map, sort the keys.
func referenceKeys(b []byte) []string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(b, &obj) != nil {
		return nil
	}
	var keys []string
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var keyCases = []string{
	`{}`, ` { } `, `{"a":1}`, `{"b":2,"a":1}`, `{"a":1,"a":2}`, `{"x":{"y":{"z":[1,{"w":"}"}]}},"v":"\"]"}`,
	`{"a\"b":1,"\u00e9":[],"c\\":{}}`, `{"s":"a,b:c{d}[e]","n":null,"t":true,"f":-1.5e3}`,
	"{\n\t\"k\" :\r\n 1 ,\"l\":[ ]\n}", `[]`, `[{"a":1}]`, `"a"`, `1`, `null`, ``, `{`, `{"a":}`, `{"a":1,}`,
	`{"a":1} x`, `{"a" 1}`, `{'a':1}`, `{"\ud800":1}`, `{"a":[1,2,{"b":[{}]}],"c":{"d":"e"}}`,
}

func TestTopKeysMatchesDecoding(t *testing.T) {
	for _, c := range keyCases {
		if got, want := topKeys([]byte(c)), referenceKeys([]byte(c)); !slices.Equal(got, want) {
			t.Errorf("topKeys(%q) = %q, want %q", c, got, want)
		}
	}
}

func FuzzTopKeys(f *testing.F) {
	for _, c := range keyCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := topKeys(b), referenceKeys(b); !slices.Equal(got, want) {
			t.Errorf("topKeys(%q) = %q, want %q", b, got, want)
		}
	})
}
