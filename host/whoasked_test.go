package host_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/host"
)

// A label an agent sends comes out bounded, valid UTF-8, on one line, without control or
// formatting characters, and labelling it again changes nothing.
func FuzzLabel(f *testing.F) {
	for _, s := range []string{"", "conv-42", "a\r\nb", "\u202eevil", "x\x00y", strings.Repeat("é", 200), "\xff\xfe", " \t lead and trail \n", "zero\u200bwidth", "\x1b[31mred"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := host.Label(s)
		if len(l) > host.MaxLabelLen || !utf8.ValidString(l) {
			t.Fatalf("Label(%q) = %q: %d bytes, valid UTF-8 %v", s, l, len(l), utf8.ValidString(l))
		}
		if strings.ContainsFunc(l, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
			t.Fatalf("Label(%q) = %q keeps a control or formatting character", s, l)
		}
		if l != strings.TrimSpace(l) || strings.Contains(l, "  ") {
			t.Fatalf("Label(%q) = %q: spaces not collapsed and trimmed", s, l)
		}
		if again := host.Label(l); again != l {
			t.Fatalf("Label(Label(%q)) = %q, not %q", s, again, l)
		}
	})
}
