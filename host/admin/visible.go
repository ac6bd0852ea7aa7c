package admin

import (
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// VisibleJSON returns the JSON text b for an approver to read: every character that would not
// show as itself — a bidirectional override or isolate, a zero-width space or joiner, a byte
// order mark, a line or paragraph separator, a no-break or other unusual space, a control or
// private-use character, an unassigned one — is written as a \u escape (two, for one beyond
// U+FFFF). Such characters only occur inside JSON strings, where the escape means the same
// character, so the text is the same JSON value, spelt so that what an approver reads is what
// the tool gets: an agent cannot reverse or hide part of its arguments on screen. Spaces, tabs
// and line breaks between tokens are kept; invalid UTF-8 shows as U+FFFD.
func VisibleJSON(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		i += size
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.IsPrint(r):
			sb.WriteRune(r)
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			writeEscape(&sb, r1)
			writeEscape(&sb, r2)
		default:
			writeEscape(&sb, r)
		}
	}
	return sb.String()
}

func writeEscape(sb *strings.Builder, r rune) {
	const hex = "0123456789abcdef"
	sb.WriteString(`\u`)
	for shift := 12; shift >= 0; shift -= 4 {
		sb.WriteByte(hex[r>>shift&0xf])
	}
}
