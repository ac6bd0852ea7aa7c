package scrub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const canary = "canary+s3cr3t/Zq9&<x>=="

func TestFormsAreRedacted(t *testing.T) {
	var s Scrubber // zero value is usable
	s.Add(canary)
	js, _ := json.Marshal(canary)
	encodings := map[string]string{
		"plain":         canary,
		"std base64":    base64.StdEncoding.EncodeToString([]byte(canary)),
		"raw std b64":   base64.RawStdEncoding.EncodeToString([]byte(canary)),
		"url base64":    base64.URLEncoding.EncodeToString([]byte(canary)),
		"raw url b64":   base64.RawURLEncoding.EncodeToString([]byte(canary)),
		"query escape":  url.QueryEscape(canary),
		"path escape":   url.PathEscape(canary),
		"json":          string(js[1 : len(js)-1]),
		"json no html":  `canary+s3cr3t/Zq9&<x>==`,
		"basic header":  "Basic " + base64.StdEncoding.EncodeToString([]byte(canary)),
		"bearer header": "Bearer " + canary,
	}
	for name, enc := range encodings {
		t.Run(name, func(t *testing.T) {
			in := `{"echo":"` + enc + `","n":1}`
			got := s.String(in)
			if strings.Contains(got, enc) {
				t.Errorf("String(%q) = %q, still contains the encoded secret", in, got)
			}
			if !strings.Contains(got, Redacted) {
				t.Errorf("String(%q) = %q, want %q in it", in, got, Redacted)
			}
			if b := s.Bytes([]byte(in)); string(b) != got {
				t.Errorf("Bytes and String disagree: %q vs %q", b, got)
			}
			if !s.Contains([]byte(in)) {
				t.Errorf("Contains(%q) = false, want true", in)
			}
		})
	}
}

func TestReplace(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{name: "no secrets", in: "hello", want: "hello"},
		{name: "empty secret ignored", secrets: []string{""}, in: "hello", want: "hello"},
		{name: "no match", secrets: []string{"abcdefgh"}, in: "hello world", want: "hello world"},
		{name: "start middle end", secrets: []string{"abcdefgh"}, in: "abcdefgh x abcdefgh y abcdefgh", want: "[REDACTED] x [REDACTED] y [REDACTED]"},
		{name: "adjacent", secrets: []string{"abcdefgh"}, in: "abcdefghabcdefgh", want: "[REDACTED][REDACTED]"},
		{name: "prefix of another: longest wins", secrets: []string{"secret12", "secret12345678"}, in: "a secret12345678 b secret12 c", want: "a [REDACTED] b [REDACTED] c"},
		{name: "prefix of another, other order", secrets: []string{"secret12345678", "secret12"}, in: "a secret12345678 b", want: "a [REDACTED] b"},
		{name: "overlapping: leftmost wins, no part of the first survives", secrets: []string{"abcdefgh", "efghijkl"}, in: "xabcdefghijklx", want: "x[REDACTED]ijklx"},
		{name: "contained in another", secrets: []string{"cdef1234", "abcdef123456"}, in: "abcdef123456 cdef1234", want: "[REDACTED] [REDACTED]"},
		{name: "short secret", secrets: []string{"pw"}, in: "pwd: pw", want: "[REDACTED]d: [REDACTED]"},
		{name: "one byte secret", secrets: []string{"Q"}, in: "aQb", want: "a[REDACTED]b"},
		{name: "whole input", secrets: []string{"abcdefgh"}, in: "abcdefgh", want: "[REDACTED]"},
		{name: "truncated secret is kept", secrets: []string{"abcdefgh"}, in: "abcdefg", want: "abcdefg"},
		{name: "binary", secrets: []string{"\x00\xff\x01secret"}, in: "a\x00\xff\x01secretb", want: "a[REDACTED]b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			for _, sec := range tt.secrets {
				s.Add(sec)
			}
			if got := s.String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := s.Bytes([]byte(tt.in)); string(got) != tt.want {
				t.Errorf("Bytes(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got, want := s.Contains([]byte(tt.in)), tt.in != tt.want; got != want {
				t.Errorf("Contains(%q) = %v, want %v", tt.in, got, want)
			}
		})
	}
}

func TestBytesDoesNotModifyInput(t *testing.T) {
	s := New()
	s.Add("abcdefgh")
	in := []byte("xx abcdefgh yy")
	orig := bytes.Clone(in)
	out := s.Bytes(in)
	if !bytes.Equal(in, orig) {
		t.Errorf("Bytes modified its input: %q", in)
	}
	if string(out) != "xx [REDACTED] yy" {
		t.Errorf("Bytes = %q", out)
	}
	clean := []byte("nothing here")
	if got := s.Bytes(clean); &got[0] != &clean[0] {
		t.Error("Bytes copied an input that contains no secret")
	}
}

func TestHeaders(t *testing.T) {
	s := New()
	s.Add("tok-1234567")
	h := map[string][]string{
		"Authorization":      {"Bearer tok-1234567"},
		"X-Echo":             {"a", "tok-1234567", "b"},
		"X-Tok-1234567":      {"leaked in key"},
		"X-[REDACTED]":       {"existing"},
		"Content-Type":       {"application/json"},
		"X-Basic":            {"Basic " + base64.StdEncoding.EncodeToString([]byte("tok-1234567"))},
		"X-Query-Escaped-Ok": {url.QueryEscape("tok-1234567")},
	}
	s.Headers(h)
	// Keys match ignoring case ("X-Tok-1234567" is the canonical form of "x-tok-1234567").
	want := map[string][]string{
		"Authorization":      {"Bearer [REDACTED]"},
		"X-Echo":             {"a", "[REDACTED]", "b"},
		"X-[REDACTED]":       {"existing", "leaked in key"},
		"Content-Type":       {"application/json"},
		"X-Basic":            {"Basic [REDACTED]"},
		"X-Query-Escaped-Ok": {"[REDACTED]"},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("Headers mismatch (-want +got):\n%s", diff)
	}

	h = map[string][]string{"X-tok-1234567": {"v"}, "X-[REDACTED]": {"existing"}}
	s.Headers(h)
	want = map[string][]string{"X-[REDACTED]": {"existing", "v"}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("Headers key scrub mismatch (-want +got):\n%s", diff)
	}
}

func TestZeroAndNilSafe(t *testing.T) {
	var s Scrubber
	if got := s.String("abc"); got != "abc" {
		t.Errorf("String = %q", got)
	}
	if s.Contains([]byte("abc")) || s.Len() != 0 {
		t.Error("empty Scrubber matches")
	}
	s.Headers(map[string][]string{"a": {"b"}})
	s.Headers(nil)
	if got := s.Bytes(nil); got != nil {
		t.Errorf("Bytes(nil) = %q", got)
	}
	s.Add("")
	if s.Len() != 0 {
		t.Errorf("Add(\"\") registered %d forms", s.Len())
	}
	s.Add("abcdefgh")
	n := s.Len()
	s.Add("abcdefgh")
	if s.Len() != n {
		t.Errorf("adding twice changed Len from %d to %d", n, s.Len())
	}
}

// TestConcurrent adds secrets while other goroutines scrub (run with -race).
func TestConcurrent(t *testing.T) {
	s := New()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				sec := fmt.Sprintf("secret-%d-%03d", g, i)
				s.Add(sec)
				if got := s.String("x " + sec + " y"); got != "x [REDACTED] y" {
					t.Errorf("String after Add(%q) = %q", sec, got)
					return
				}
				s.Contains([]byte(sec))
				s.Headers(map[string][]string{"k": {sec}})
			}
		}()
	}
	wg.Wait()
}

func FuzzScrub(f *testing.F) {
	f.Add("abcdefgh", "efghijkl", "xabcdefghijklx")
	f.Add("a", "aa", "aaaa")
	f.Add("\x00", "[REDACTED]", "[REDACTED]\x00")
	f.Fuzz(func(t *testing.T, a, b, text string) {
		s := New()
		s.Add(a)
		s.Add(b)
		got := s.String(text)
		if string(s.Bytes([]byte(text))) != got {
			t.Fatalf("Bytes and String disagree")
		}
		// The result never contains a registered secret unless the secret can be formed
		// across the marker boundary (it overlaps "[REDACTED]").
		for _, sec := range []string{a, b} {
			if sec == "" || strings.ContainsAny(sec, "[]REDACT") {
				continue
			}
			if strings.Contains(got, sec) {
				t.Fatalf("String(%q) = %q still contains %q", text, got, sec)
			}
		}
	})
}

func benchBody(secrets []string) []byte {
	var b strings.Builder
	b.WriteString(`{"ok":true,"channel":"C0123456","messages":[`)
	for b.Len() < 4096-200 {
		b.WriteString(`{"type":"message","user":"U012ABCDEF","text":"Deploy finished in 42s, see https://ci.example.com/run/8812","ts":"1712345678.000100"},`)
	}
	b.WriteString(`{"echo":"` + secrets[3] + `"}]}`)
	return []byte(b.String())
}

func benchScrubber() (*Scrubber, []string) {
	s := New()
	var secrets []string
	for i := range 10 {
		sec := fmt.Sprintf("xoxb-%d-4815162342-AbCdEfGhIjKlMnOpQrStUvWx", i)
		secrets = append(secrets, sec)
		s.Add(sec)
	}
	return s, secrets
}

// BenchmarkBytes scrubs a 4 KiB JSON body with 10 registered secrets (about 80 forms).
func BenchmarkBytes(b *testing.B) {
	s, secrets := benchScrubber()
	b.Run("one match", func(b *testing.B) {
		body := benchBody(secrets)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			s.Bytes(body)
		}
	})
	b.Run("clean", func(b *testing.B) {
		body := bytes.ReplaceAll(benchBody(secrets), []byte(secrets[3]), []byte("nothing"))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			s.Bytes(body)
		}
	})
	b.Run("strings.Replacer baseline", func(b *testing.B) {
		var pairs []string
		for _, sec := range secrets {
			for _, f := range forms(sec) {
				pairs = append(pairs, f, Redacted)
			}
		}
		r := strings.NewReplacer(pairs...)
		body := string(benchBody(secrets))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			r.Replace(body)
		}
	})
}

// BenchmarkBytesManySecrets scrubs the same 4 KiB body with 100 registered secrets (OAuth
// access tokens accumulate, one per subject and refresh), about 2000 forms.
func BenchmarkBytesManySecrets(b *testing.B) {
	s, secrets := benchScrubber()
	for i := range 90 {
		s.Add(fmt.Sprintf("ya29.a0Af%03dH6SMB-%d-Qx7tZk3LmN0pRsT", i, i*7919))
	}
	body := bytes.ReplaceAll(benchBody(secrets), []byte(secrets[3]), []byte("nothing"))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s.Bytes(body)
	}
}
