package validate

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// A key that equals a declared property when case is ignored ("TEXT" beside or instead of
// "text") is refused in a tool's arguments, at any depth the schema declares properties for:
// a plugin reading its arguments with encoding/json would take it for the property, and act on
// a value the schema never checked. Free-form maps, undeclared keys that resemble nothing, and
// a plugin's results (ValidateJSON) are left alone.
func TestCaseVariantKeysRefused(t *testing.T) {
	s, err := Compile(json.RawMessage(`{"type":"object","required":["channel"],"properties":{
		"channel":{"type":"string","pattern":"^C[0-9A-Z]+$"},
		"text":{"type":"string","maxLength":40},
		"kind":{"type":"string"},
		"labels":{"type":"object"},
		"blocks":{"type":"array","items":{"type":"object","properties":{"type":{"enum":["section"]}}}}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ args, path, key string }{
		{`{"channel":"C1","text":"ok","TEXT":"evil"}`, "/TEXT", "TEXT"},
		{`{"channel":"C1","Text":"instead of text"}`, "/Text", "Text"},
		{`{"channel":"C1","CHANNEL":"#everyone-outside"}`, "/CHANNEL", "CHANNEL"},
		{"{\"channel\":\"C1\",\"\u212aind\":\"Kelvin sign\"}", "/\u212aind", "\u212aind"}, // EqualFold: K (U+212A) is k
		{`{"channel":"C1","blocks":[{"type":"section"},{"type":"section","TYPE":"image"}]}`, "/blocks/1/TYPE", "TYPE"},
		{`{"channel":"C1","tExt":"b","TEXT":"a"}`, "/TEXT", "TEXT"}, // the least offending key, whatever the map order
	} {
		err := s.ValidateInputJSON([]byte(c.args))
		var ve *Error
		if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Path != c.path ||
			!strings.Contains(ve.Problems[0].Message, `"`+c.key+`" differs from the declared property`) {
			t.Errorf("%s: %v, want a refusal of %q at %s", c.args, err, c.key, c.path)
		}
		if err := s.ValidateJSON([]byte(c.args)); err != nil && strings.Contains(err.Error(), "only by case") {
			t.Errorf("%s: ValidateJSON (results) refused a case variant: %v", c.args, err)
		}
	}
	for _, ok := range []string{
		`{"channel":"C1","text":"ok"}`,
		`{"channel":"C1","labels":{"env":"prod","ENV":"PROD"}}`, // a free-form map: no properties declared
		`{"channel":"C1","texts":"an undeclared key that is not a case variant"}`,
		`{"channel":"C1","blocks":[{"type":"section","Kind":"no properties of blocks are named kind"}]}`,
	} {
		if err := s.ValidateInputJSON([]byte(ok)); err != nil {
			t.Errorf("%s: %v, want it accepted", ok, err)
		}
	}
}
