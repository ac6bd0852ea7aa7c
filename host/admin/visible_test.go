package admin

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

// An agent's arguments that would show as something else — reversed by a bidi override, with a
// part hidden behind zero-width or invisible characters, split by a line separator — read, once
// made visible, as what the tool gets: every such character escaped, the JSON value unchanged.
func TestVisibleJSON(t *testing.T) {
	for _, in := range []string{
		`{"text":"deploy at noon"}`,
		"{\"text\":\"approve \u202edrop the table\u202c please\"}",             // right-to-left override
		"{\"text\":\"ok\u2066\u2067\u2068\u2069\",\"to\":\"C0\u200bGENERAL\"}", // isolates, zero-width space
		"{\"text\":\"a\u2028b\u2029c\ufeffd\u00a0e\u00adf\"}",                  // separators, BOM, NBSP, soft hyphen
		"{\"tag\":\"\U000e0041\U000e0042\",\"pua\":\"\ue000\"}",                // tag characters (beyond U+FFFF), private use
		"{\n  \"nested\": {\"k\u200d\": [\"\u061c\", \"héllo 世界\"]}\n}",
	} {
		got := VisibleJSON([]byte(in))
		var want, have any
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(got), &have); err != nil {
			t.Fatalf("VisibleJSON(%q) = %q, not JSON: %v", in, got, err)
		}
		if !reflect.DeepEqual(want, have) {
			t.Errorf("VisibleJSON(%q) = %q: a different value", in, got)
		}
		for _, r := range got {
			if !unicode.IsPrint(r) && !strings.ContainsRune(" \t\n\r", r) {
				t.Errorf("VisibleJSON(%q) = %q keeps %U", in, got, r)
			}
		}
	}
	if got := VisibleJSON([]byte("{\"t\":\"x\u202ey\"}")); got != `{"t":"x\u202ey"}` {
		t.Errorf("the override reads %q, want it as \\u202e", got)
	}
	if got := VisibleJSON([]byte("{\"t\":\"\U000e0041\"}")); got != `{"t":"\udb40\udc41"}` {
		t.Errorf("a tag character reads %q, want its surrogate pair", got)
	}
	if in := `{"text":"héllo 世界 – ok"}`; VisibleJSON([]byte(in)) != in {
		t.Errorf("printable text changed: %q", VisibleJSON([]byte(in)))
	}
}
