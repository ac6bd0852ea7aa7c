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
// These schemes are built in:
//
//   - "env:NAME" ([Env]) and "file:PATH" ([File]);
//   - "store:NAME" ([Store]), the encrypted store kept in the host's state: every value sealed
//     with AES-256-GCM under a data key that is itself wrapped by a master key
//     ([LoadMasterKey]: AIRLOCK_MASTER_KEY or STATE_DIR/master.key), rotatable without
//     downtime ([RotateMasterKey], [RotateDataKey]);
//   - "vault:MOUNT/PATH#FIELD[@VERSION]" ([Vault]), HashiCorp Vault or OpenBao KV v2 with token
//     or AppRole authentication;
//   - "gcp-sm:projects/P/secrets/S[/versions/V][#KEY]" ([GCPSecretManager]), Google Secret
//     Manager with Application Default Credentials;
//   - "azure-kv:VAULT/SECRET[/VERSION][#KEY]" ([AzureKeyVault]), Azure Key Vault with a client
//     secret, a managed identity or DefaultAzureCredential;
//   - "aws-sm:NAME_OR_ARN[?stage=…|?version_id=…][#KEY]" and
//     "aws-ssm:/PATH/NAME[?version=N|?label=…]" ([AWS]), AWS Secrets Manager and Parameter Store with the SDK's standard credential chain;
//   - "op://VAULT/ITEM[/SECTION]/FIELD" ([OnePassword]), through a 1Password Connect server, and
//     "doppler:PROJECT/CONFIG/NAME" ([Doppler]), with service tokens.
//
// The sources that cache what they read (vault:, op:, doppler:, gcp-sm:, azure-kv:, aws-sm:,
// aws-ssm:) read from their manager again when the context comes from [WithFreshRead], as the
// host's does after an upstream 401.
//
// Opening the built-in store:
//
//	key, from, err := secret.LoadMasterKey(stateDir) // err says exactly what is wrong
//	st, err := secret.OpenStore(ctx, backend, key)   // errors.Is(err, secret.ErrWrongMasterKey)
//	err = st.Set(ctx, "slack_bot", secret.New(token))
//	src := secret.Mux{"env": secret.Env{}, "store": st}
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

// Errors callers branch on. Errors returned by this package wrap them, so test with errors.Is.
var (
	// ErrNotFound reports that a reference names a secret that does not exist: an unset
	// environment variable, a missing file, a name the store does not hold, a Vault path or
	// field that is absent. A [Backend] also returns it for an absent key or record.
	ErrNotFound = errors.New("secret not found")

	// ErrBadReference reports a reference that cannot name a secret whatever the sources hold:
	// it has no scheme (write env:NAME, store:NAME …) or a scheme no source resolves.
	ErrBadReference = errors.New("malformed secret reference")

	// ErrDenied reports that the secret manager refused the host's own credentials access to a
	// secret (HTTP 401/403, AccessDenied, PERMISSION_DENIED). The error says which permission
	// or role the host's identity needs.
	ErrDenied = errors.New("access to the secret denied")

	// ErrConflict reports that [Backend.CompareAndSetMeta] found a value other than the expected
	// one: another host changed it first. Backends wrap it; [OpenStore], [RotateMasterKey] and
	// [RotateDataKey] re-read and try again.
	ErrConflict = errors.New("the value changed concurrently")

	// ErrWrongMasterKey reports that the master key given to [OpenStore] is not the one the state's
	// keyring is wrapped with. Its text tells the admin what to check; it never says anything about
	// the key itself.
	ErrWrongMasterKey = errors.New("the master key does not open this state: was AIRLOCK_MASTER_KEY changed or the master key file replaced? " +
		"Start airlock with the master key this state was created (or last rotated) with")
)

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

// GobEncode refuses to encode a Value: gob is for data that is stored or sent, and a secret
// that must be stored belongs in the encrypted [Store].
func (v Value) GobEncode() ([]byte, error) {
	return nil, errors.New("secret.Value cannot be gob-encoded: keep secrets in the encrypted secret store (Store.Set) and pass references instead")
}

// Source resolves a secret reference such as "env:NAME" or "file:PATH" to its value.
//
// Implementations must be safe for concurrent use. An error must name the reference and say what
// to do about it; it must never contain the value. A reference that names no secret should
// produce an error wrapping [ErrNotFound].
type Source interface {
	Resolve(ctx context.Context, ref string) (Value, error)
}
