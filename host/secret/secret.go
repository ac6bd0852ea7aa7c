// Package secret holds secret values and resolves the references a grant uses to name them.
//
// A [Value] carries a secret (an API key, a bearer token, a "user:password" pair) through the
// host without ever printing it: fmt, slog, encoding/json and encoding/text all see
// "[REDACTED]". The plaintext is only available through [Value.Expose], so every place that
// handles it is easy to find with grep.
//
// A grant does not contain secrets; it contains references such as "env:SLACK_BOT_TOKEN" or
// "file:/run/secrets/slack". A [Source] turns a reference into a Value. [Env] and [File] resolve
// one scheme each; [Mux] dispatches on the scheme, so an embedder can add its own (a vault, a
// keychain) next to the built-in ones:
//
//	src := secret.Mux{
//		"env":  secret.Env{},
//		"file": secret.File{Dir: "/etc/airlock"},
//	}
//	token, err := src.Resolve(ctx, "env:SLACK_BOT_TOKEN")
//	if errors.Is(err, secret.ErrNotFound) {
//		// tell the admin which reference is missing: err says it
//	}
//	log.Printf("token: %v", token) // token: [REDACTED]
//
// Errors name the reference and say what to do; they never contain the secret.
package secret

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Redacted is what a [Value] prints, marshals and logs as.
const Redacted = "[REDACTED]"

// ErrNotFound reports that a reference names a secret that does not exist: an unset environment
// variable or a missing file. Errors returned by the sources in this package wrap it, so callers
// can test with errors.Is.
var ErrNotFound = errors.New("secret not found")

// Value is a secret string that redacts itself whenever it is printed, logged or marshalled.
//
// The zero Value holds no secret ([Value.IsZero] reports true). A Value is immutable and safe for
// concurrent use. The plaintext lives behind a pointer, so even reflection-based printing of a
// struct that embeds a Value in an unexported field shows an address, not the secret.
type Value struct {
	p *string
}

// New returns a Value holding s. New("") returns the zero Value.
func New(s string) Value {
	if s == "" {
		return Value{}
	}
	return Value{p: &s}
}

// Expose returns the plaintext secret ("" for the zero Value).
//
// It is the only way to read a Value. Call it at the last moment, where the secret leaves the
// host (an Authorization header being written), and never pass the result to a logger, an error
// or anything a plugin or agent can see.
func (v Value) Expose() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// IsZero reports whether v holds no secret.
func (v Value) IsZero() bool { return v.p == nil || *v.p == "" }

// String returns [Redacted].
func (v Value) String() string { return Redacted }

// GoString returns [Redacted], so %#v does not print the plaintext.
func (v Value) GoString() string { return Redacted }

// Format writes [Redacted] for every verb (%v, %+v, %#v, %s, %q, %x, %X, %d …).
func (v Value) Format(f fmt.State, verb rune) {
	_, _ = f.Write([]byte(Redacted))
}

// LogValue implements [slog.LogValuer]: a Value logs as [Redacted].
func (v Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON encodes v as the JSON string "[REDACTED]".
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText returns [Redacted], which also covers encoders built on encoding.TextMarshaler
// (YAML, map keys in JSON, XML).
func (v Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Source resolves a secret reference such as "env:NAME" or "file:PATH" to its value.
//
// Implementations must be safe for concurrent use. An error must name the reference and say what
// to do about it; it must never contain the value. A reference that names no secret should
// produce an error wrapping [ErrNotFound].
type Source interface {
	Resolve(ctx context.Context, ref string) (Value, error)
}
