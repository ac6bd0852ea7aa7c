// Package scrub removes known secret values from text before it reaches a plugin, an agent, a
// log line or the audit log.
//
// A [Scrubber] is told every secret the host injects ([Scrubber.Add]); it then replaces each
// occurrence of the secret, and of the encodings an upstream might echo it back in, with
// [Redacted]:
//
//	s := scrub.New()
//	s.Add(token.Expose())
//	body = s.Bytes(body)     // an upstream that echoes request headers
//	s.Headers(resp.Header)   // … or puts the token in a header
//	msg := s.String(err.Error())
//
// The forms registered for a secret v are: v itself; standard and URL-safe base64, each with
// and without padding (this covers "Basic " + base64("user:password") when v is
// "user:password"), and the part of v's base64 that does not depend on its neighbours at each
// of the three alignments v can have inside a longer encoded text; hex; url.QueryEscape,
// url.PathEscape and %XX on every byte; the body of v's JSON string encoding, with and without
// HTML escaping, and with \uXXXX on every character; HTML escaping of its special characters
// (numeric and named references), and decimal and hexadecimal character references on every
// character. Matching ignores ASCII case, so upper- and lowercase hex, %xx and \u escapes, and
// a secret that was lower- or uppercased on the way (a URL host) are all found.
//
// What it cannot find: a secret split across two texts scrubbed separately (two responses,
// two ranges, a header and a body), or transformed in ways not listed (reversed, compressed,
// encrypted, base32, escaped only in part, numeric references with leading zeros, encoded
// twice). Derived forms shorter than 6 bytes are not registered, so a very short secret's
// hex or base64 is not found either. Callers must scrub upstream text before they transform it
// (truncate, decode, re-encode), because a truncated secret is not recognised.
//
// Short values (fewer than 8 bytes) are registered like any other, which means they also redact
// unrelated text that happens to contain them; the empty string is ignored.
package scrub

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf16"
)

// Redacted replaces every occurrence of a registered form.
const Redacted = "[REDACTED]"

// minDerived is the shortest hex, base64-at-an-offset or per-character form registered: shorter
// ones would redact common text ("51", "UQ").
const minDerived = 6

// Scrubber replaces registered secret values in text. The zero value is ready to use and
// scrubs nothing; [New] returns the same. A Scrubber is safe for concurrent use: Add takes a lock
// and publishes a new precomputed matcher, the scrubbing methods only load it. A Scrubber must
// not be copied after first use.
type Scrubber struct {
	mu    sync.Mutex          // serialises Add
	forms map[string]struct{} // every registered form, ASCII-lowercased, guarded by mu
	added sync.Map            // secrets already added: Add returns at once (it runs per request)
	m     atomic.Pointer[matcher]
}

// New returns an empty Scrubber.
func New() *Scrubber { return &Scrubber{} }

// Add registers secret and its derived forms (see the package documentation). Adding a value
// twice, or the empty string, does nothing.
func (s *Scrubber) Add(secret string) {
	if secret == "" {
		return
	}
	if _, ok := s.added.Load(secret); ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.added.Store(secret, struct{}{})
	if s.forms == nil {
		s.forms = make(map[string]struct{})
	}
	changed := false
	for _, f := range forms(secret) {
		f = asciiLower(f)
		if _, ok := s.forms[f]; f != "" && !ok {
			s.forms[f] = struct{}{}
			changed = true
		}
	}
	if changed {
		s.m.Store(newMatcher(s.forms))
	}
}

// Len reports how many forms (not secrets) are registered.
func (s *Scrubber) Len() int {
	if m := s.m.Load(); m != nil {
		return len(m.forms)
	}
	return 0
}

// Bytes returns b with every registered form replaced by [Redacted]. It never modifies b; when
// nothing matches it returns b itself without allocating.
func (s *Scrubber) Bytes(b []byte) []byte {
	m := s.m.Load()
	if m == nil {
		return b
	}
	i, n := find(m, b, 0)
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	last := 0
	for n > 0 {
		out = append(out, b[last:i]...)
		out = append(out, Redacted...)
		last = i + n
		i, n = find(m, b, last)
	}
	return append(out, b[last:]...)
}

// String returns s with every registered form replaced by [Redacted].
func (s *Scrubber) String(str string) string {
	m := s.m.Load()
	if m == nil {
		return str
	}
	i, n := find(m, str, 0)
	if n == 0 {
		return str
	}
	var sb strings.Builder
	sb.Grow(len(str))
	last := 0
	for n > 0 {
		sb.WriteString(str[last:i])
		sb.WriteString(Redacted)
		last = i + n
		i, n = find(m, str, last)
	}
	sb.WriteString(str[last:])
	return sb.String()
}

// Contains reports whether b contains any registered form.
func (s *Scrubber) Contains(b []byte) bool {
	m := s.m.Load()
	if m == nil {
		return false
	}
	_, n := find(m, b, 0)
	return n > 0
}

// Headers scrubs h in place: every value, and every key that contains a registered form (HTTP
// libraries canonicalise header names, "x-abc" becomes "X-Abc", which the case-blind matching
// sees through); such a key is replaced by its scrubbed form and its values are merged into any
// existing key of that name.
func (s *Scrubber) Headers(h map[string][]string) {
	if s.m.Load() == nil {
		return
	}
	renamed := map[string]string{}
	for k, vs := range h {
		for i, v := range vs {
			vs[i] = s.String(v)
		}
		if nk := s.String(k); nk != k {
			renamed[k] = nk
		}
	}
	for k, nk := range renamed {
		vs := h[k]
		delete(h, k)
		h[nk] = append(h[nk], vs...)
	}
}

// lower maps ASCII uppercase letters to lowercase and every other byte to itself.
var lower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] += 'a' - 'A'
		}
	}
	return t
}()

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if lower[s[i]] != s[i] {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lower[b[j]]
			}
			return string(b)
		}
	}
	return s
}

// forms returns secret and the encodings it may be echoed in (see the package documentation).
func forms(secret string) []string {
	b := []byte(secret)
	out := []string{
		secret,
		base64.StdEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
		url.QueryEscape(secret),
		url.PathEscape(secret),
		html.EscapeString(secret), // &#39; and &#34;
		htmlNamed.Replace(secret), // &apos; and &quot;
	}
	if js, err := json.Marshal(secret); err == nil {
		out = append(out, string(js[1:len(js)-1]))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(secret); err == nil {
		js := strings.TrimSuffix(buf.String(), "\n")
		out = append(out, js[1:len(js)-1])
	}

	derived := []string{hex.EncodeToString(b), eachByte(b, "%%%02x")}
	var jsu, dec, hx strings.Builder
	for _, r := range secret {
		if r1, r2 := utf16.EncodeRune(r); r1 != '\uFFFD' {
			fmt.Fprintf(&jsu, `\u%04x\u%04x`, r1, r2)
		} else {
			fmt.Fprintf(&jsu, `\u%04x`, r)
		}
		fmt.Fprintf(&dec, "&#%d;", r)
		fmt.Fprintf(&hx, "&#x%x;", r)
	}
	derived = append(derived, jsu.String(), dec.String(), hx.String())
	for _, e := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for k := range 3 {
			derived = append(derived, base64Core(e, b, k))
		}
	}
	for _, f := range derived {
		if len(f) >= minDerived {
			out = append(out, f)
		}
	}
	return out
}

var htmlNamed = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

func eachByte(b []byte, format string) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, format, c)
	}
	return sb.String()
}

// base64Core is the part of the base64 of b that is the same wherever b appears in a longer
// text, as long as b starts k bytes (0, 1 or 2) after a 3-byte boundary: the characters whose
// six bits all come from b.
func base64Core(e *base64.Encoding, b []byte, k int) string {
	buf := make([]byte, k+len(b))
	copy(buf[k:], b)
	s := e.EncodeToString(buf)
	start, end := (8*k+5)/6, 8*(k+len(b))/6
	if end <= start {
		return ""
	}
	return s[start:end]
}

// matcher finds the leftmost, then longest, registered form in a text, ignoring ASCII case. It
// is immutable once built. A bitset over the first two (lowercased) bytes of each form rejects
// almost every position with one memory access, so scanning text that contains no secret costs a
// few nanoseconds a byte.
type matcher struct {
	forms  []string             // lowercased
	pairs  [1 << 16 / 64]uint64 // bit k set if some form of length ≥ 2 starts with the 2 bytes k
	byPair map[uint16][]string  // those forms, longest first
	single [256]bool            // one-byte forms
}

func newMatcher(set map[string]struct{}) *matcher {
	m := &matcher{byPair: make(map[uint16][]string)}
	for f := range set {
		m.forms = append(m.forms, f)
	}
	// Longest first, so at any position the longest form wins (a secret that extends another
	// is redacted whole); ties sorted for determinism.
	slices.SortFunc(m.forms, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	for _, f := range m.forms {
		if len(f) == 1 {
			m.single[f[0]] = true
			if c := f[0]; 'a' <= c && c <= 'z' {
				m.single[c-('a'-'A')] = true
			}
			continue
		}
		k := uint16(f[0])<<8 | uint16(f[1])
		m.pairs[k>>6] |= 1 << (k & 63)
		m.byPair[k] = append(m.byPair[k], f)
	}
	return m
}

// find returns the position and length of the first match in t at or after from; n is 0 when
// there is none.
func find[T string | []byte](m *matcher, t T, from int) (i, n int) {
	for i = from; i < len(t); i++ {
		if i+1 < len(t) {
			k := uint16(lower[t[i]])<<8 | uint16(lower[t[i+1]])
			if m.pairs[k>>6]&(1<<(k&63)) != 0 {
				for _, f := range m.byPair[k] {
					if hasFoldPrefixAt(t, i, f) {
						return i, len(f)
					}
				}
			}
		}
		if m.single[t[i]] {
			return i, 1
		}
	}
	return 0, 0
}

// hasFoldPrefixAt reports whether t[i:] starts with the lowercase f, ignoring ASCII case.
func hasFoldPrefixAt[T string | []byte](t T, i int, f string) bool {
	if len(t)-i < len(f) {
		return false
	}
	for j := 2; j < len(f); j++ { // the first two bytes matched the pair
		if lower[t[i+j]] != f[j] {
			return false
		}
	}
	return true
}
