package scrub

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// An upstream that wants the secret out echoes it in some encoding; the attacker then decodes
// whatever survives scrubbing. Each case encodes a text with the canary inside it, scrubs it and
// decodes the result the way the attacker would: no 8-byte run of the canary may come back.

func TestEncodedSecretIsNotRecoverable(t *testing.T) {
	type codec struct {
		encode func(string) string
		decode func(string) []string // every reading an attacker could try
	}
	same := func(s string) []string { return []string{s} }
	b64 := func(e *base64.Encoding) codec {
		return codec{encode: func(s string) string { return e.EncodeToString([]byte(s)) }, decode: base64Readings}
	}
	tests := map[string]codec{
		"upper case":     {strings.ToUpper, same},
		"lower case":     {strings.ToLower, same},
		"mixed case":     {swapCase, same},
		"hex lower":      {func(s string) string { return hex.EncodeToString([]byte(s)) }, hexReadings},
		"hex upper":      {func(s string) string { return strings.ToUpper(hex.EncodeToString([]byte(s))) }, hexReadings},
		"std base64":     b64(base64.StdEncoding),
		"raw std base64": b64(base64.RawStdEncoding),
		"url base64":     b64(base64.URLEncoding),
		"raw url base64": b64(base64.RawURLEncoding),
		"%xx every byte": {func(s string) string { return perByte(s, "%%%02x") }, percentReadings},
		"%XX every byte": {func(s string) string { return perByte(s, "%%%02X") }, percentReadings},
		`\u00xx`:         {func(s string) string { return jsonEvery(s, `\u%04x`) }, jsonReadings},
		`\u00XX`:         {func(s string) string { return jsonEvery(s, `\u%04X`) }, jsonReadings},
		"&#decimal;":     {func(s string) string { return htmlEvery(s, "&#%d;") }, htmlReadings},
		"&#xhex;":        {func(s string) string { return htmlEvery(s, "&#x%x;") }, htmlReadings},
		"&#XHEX;":        {func(s string) string { return htmlEvery(s, "&#X%X;") }, htmlReadings},
		"html.Escape":    {html.EscapeString, htmlReadings},
		"named entities": {strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace, htmlReadings},
	}
	s := New()
	s.Add(canary)
	for name, c := range tests {
		// Three lengths of text before the secret put it at each alignment of a 3-byte group
		// (base64), and at both parities of a hex digit pair.
		for _, pre := range []string{"token=", "token=x", "token=xy"} {
			t.Run(fmt.Sprintf("%s/after %q", name, pre), func(t *testing.T) {
				in := `{"echo":"` + c.encode(pre+canary+"&end=1") + `"}`
				got := s.String(in)
				if got == in {
					t.Fatalf("String(%q) changed nothing", in)
				}
				for _, r := range c.decode(got) {
					if run := leaked(r); run != "" {
						t.Errorf("String(%q) = %q; decoded it reads %q, which holds %q of the secret", in, got, r, run)
					}
				}
			})
		}
	}
}

// leaked returns the first 8-byte run of the canary found in text ignoring case, or "".
func leaked(text string) string {
	lt, lc := strings.ToLower(text), strings.ToLower(canary)
	for i := 0; i+8 <= len(lc); i++ {
		if strings.Contains(lt, lc[i:i+8]) {
			return canary[i : i+8]
		}
	}
	return ""
}

func swapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case i%2 == 0 && 'a' <= c && c <= 'z':
			b[i] = c - 32
		case i%2 == 1 && 'A' <= c && c <= 'Z':
			b[i] = c + 32
		}
	}
	return string(b)
}

func jsonEvery(s, format string) string {
	var sb strings.Builder
	for _, r := range s {
		fmt.Fprintf(&sb, format, r)
	}
	return sb.String()
}

func perByte(s, format string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&sb, format, s[i])
	}
	return sb.String()
}

func htmlEvery(s, format string) string { return jsonEvery(s, format) }

var (
	b64Run = regexp.MustCompile(`[A-Za-z0-9+/_-]+`)
	hexRun = regexp.MustCompile(`[0-9A-Fa-f]+`)
	pctXX  = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)
	jsonU  = regexp.MustCompile(`\\u[0-9A-Fa-f]{4}`)
)

// base64Readings decodes every run of base64 characters at each of the four character offsets,
// in both alphabets, as far as it decodes.
func base64Readings(s string) []string {
	var out []string
	for _, run := range b64Run.FindAllString(s, -1) {
		std := strings.NewReplacer("-", "+", "_", "/").Replace(run)
		for off := range 4 {
			if off >= len(std) {
				break
			}
			r := std[off:]
			r = r[:len(r)/4*4]
			b, _ := base64.StdEncoding.DecodeString(r)
			out = append(out, string(b))
		}
	}
	return out
}

func hexReadings(s string) []string {
	var out []string
	for _, run := range hexRun.FindAllString(s, -1) {
		for off := range 2 {
			if off >= len(run) {
				break
			}
			r := run[off:]
			b, _ := hex.DecodeString(r[:len(r)/2*2])
			out = append(out, string(b))
		}
	}
	return out
}

func percentReadings(s string) []string {
	return []string{pctXX.ReplaceAllStringFunc(s, func(m string) string {
		b, _ := hex.DecodeString(m[1:])
		return string(b)
	})}
}

func jsonReadings(s string) []string {
	return []string{jsonU.ReplaceAllStringFunc(s, func(m string) string {
		n, _ := strconv.ParseUint(m[2:], 16, 16)
		return string(rune(n))
	})}
}

func htmlReadings(s string) []string { return []string{html.UnescapeString(s)} }

// The per-character forms must not make short secrets redact common text.
func TestShortSecretDerivedFormsNotRegistered(t *testing.T) {
	s := New()
	s.Add("Q")
	if got := s.String("id 51, u"); got != "id 51, u" {
		t.Errorf("String(%q) = %q: a one-byte secret's hex or base64 fragment redacted unrelated text", "id 51, u", got)
	}
}
