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
// "user:password"); url.QueryEscape and url.PathEscape; and the body of v's JSON string
// encoding, with and without HTML escaping. Matching is exact and case-sensitive over the whole
// buffer; a secret that an upstream transforms in other ways (hex, reversed, split across
// fields, base64 at an offset not divisible by three) is not found.
//
// Short values (fewer than 8 bytes) are registered like any other, which means they also redact
// unrelated text that happens to contain them; the empty string is ignored.
package scrub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Redacted replaces every occurrence of a registered form.
const Redacted = "[REDACTED]"

// Scrubber replaces registered secret values in text. The zero value is ready to use and
// scrubs nothing; [New] returns the same. A Scrubber is safe for concurrent use: Add takes a lock
// and publishes a new precomputed matcher, the scrubbing methods only load it. A Scrubber must
// not be copied after first use.
type Scrubber struct {
	mu    sync.Mutex          // serialises Add
	forms map[string]struct{} // every registered form, guarded by mu
	added sync.Map            // secrets already added: Add returns at once (it runs per request)
	m     atomic.Pointer[matcher]
	fold  atomic.Pointer[matcher] // ASCII-lowercased forms, for header names
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
		if _, ok := s.forms[f]; f != "" && !ok {
			s.forms[f] = struct{}{}
			changed = true
		}
	}
	if changed {
		lower := make(map[string]struct{}, len(s.forms))
		for f := range s.forms {
			lower[asciiLower(f)] = struct{}{}
		}
		s.fold.Store(newMatcher(lower))
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

// Headers scrubs h in place: every value, and every key that contains a registered form. Keys
// are matched ignoring ASCII case, because HTTP libraries canonicalise header names
// ("x-abc" becomes "X-Abc"); such a key is replaced by its scrubbed form and its values are
// merged into any existing key of that name.
func (s *Scrubber) Headers(h map[string][]string) {
	fold := s.fold.Load()
	if fold == nil {
		return
	}
	renamed := map[string]string{}
	for k, vs := range h {
		for i, v := range vs {
			vs[i] = s.String(v)
		}
		if nk := replaceFold(fold, k); nk != k {
			renamed[k] = nk
		}
	}
	for k, nk := range renamed {
		vs := h[k]
		delete(h, k)
		h[nk] = append(h[nk], vs...)
	}
}

// replaceFold replaces in k every match of the lowercased matcher in asciiLower(k); ASCII
// lowercasing keeps byte offsets, so the match positions apply to k itself.
func replaceFold(fold *matcher, k string) string {
	lk := asciiLower(k)
	i, n := find(fold, lk, 0)
	if n == 0 {
		return k
	}
	var sb strings.Builder
	last := 0
	for n > 0 {
		sb.WriteString(k[last:i])
		sb.WriteString(Redacted)
		last = i + n
		i, n = find(fold, lk, last)
	}
	sb.WriteString(k[last:])
	return sb.String()
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// forms returns secret and the encodings it may be echoed in.
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
	return out
}

// matcher finds the leftmost, then longest, registered form in a text. It is immutable once
// built. A bitset over the first two bytes of each form rejects almost every position with one
// memory access, so scanning text that contains no secret costs about a nanosecond a byte.
type matcher struct {
	forms  []string
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
			k := uint16(t[i])<<8 | uint16(t[i+1])
			if m.pairs[k>>6]&(1<<(k&63)) != 0 {
				for _, f := range m.byPair[k] {
					if hasPrefixAt(t, i, f) {
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

func hasPrefixAt[T string | []byte](t T, i int, f string) bool {
	if len(t)-i < len(f) {
		return false
	}
	return string(t[i:i+len(f)]) == f
}
