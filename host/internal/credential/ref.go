package credential

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/secret"
)

// DefaultRefTTL is how long a [Ref] keeps the value of a reference outside the state store
// (env:, file:, vault: …) before reading it again.
const DefaultRefTTL = time.Minute

// ErrUnresolvable: a secret reference of the grant cannot be resolved (a malformed reference,
// a store secret that does not exist, an unset variable, a missing file, an unreachable vault
// with nothing cached). An admin must fix the reference or create the secret.
var ErrUnresolvable = errors.New("secret reference cannot be resolved")

// RefConfig configures a [Ref].
type RefConfig struct {
	// Connector and Slot name what the reference fills, for messages ("credential bot_token of
	// connector slack"); Field is the slot's field when it is not the secret itself
	// ("client_secret", "private_key", "database.dsn" …).
	Connector, Slot, Field string
	// Kind is the slot's kind (bearer, api_key, basic); it decides what is registered with the
	// scrubber (a basic secret's password as well).
	Kind string
	// Reference is the grant's secret reference, such as "store:slack_bot" or "env:TOKEN".
	Reference string
	// Secrets resolves it.
	Secrets secret.Source
	// Fresh makes every use read the reference again (no caching): for the state store, where a
	// read is one indexed row and `airlock secret set` must take effect on the next call.
	// Otherwise the value is kept for TTL (default DefaultRefTTL).
	Fresh bool
	TTL   time.Duration
	// Retry is how long a reference that failed is left alone before it is read again (0: at
	// its next use); set it for remote sources, which a failing reference must not hammer.
	Retry time.Duration
	// Scrubber receives every value the moment it is read. Nil: a private one.
	Scrubber *scrub.Scrubber
	// Logger receives one line per change of state (unavailable, available again). Default
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Ref is the current value of one secret reference of a grant: a static credential (it
// implements egress.TokenSource) or a secret a connector needs (an OAuth client secret, a
// database DSN). It re-reads the reference so that a rotated secret is used on the next call:
// on every use for the state store (Fresh), after TTL for other sources, and at once after
// [Ref.Invalidate] (an upstream answered 401). A reference that no longer resolves — the secret
// was removed, the variable unset — stops the value from being used; a transient failure
// (the store or vault unreachable) keeps the last value and says so in the log, once.
//
// Safe for concurrent use.
type Ref struct {
	cfg RefConfig

	mu          sync.Mutex
	val         secret.Value
	read        time.Time // when val was read; zero: never, or invalidated
	err         error     // the last failure, nil when the value is usable
	failedAt    time.Time // when err was found
	loggedState string    // what the log last said, so each change is logged once

	failing atomic.Bool // err != nil, readable without the lock
}

// NewRef returns a Ref; nothing is read until [Ref.Value] or [Ref.Check].
func NewRef(cfg RefConfig) *Ref {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultRefTTL
	}
	if cfg.Scrubber == nil {
		cfg.Scrubber = scrub.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Ref{cfg: cfg}
}

// Failing reports whether the last read failed; a failing Ref is read again at its next use.
func (r *Ref) Failing() bool { return r.failing.Load() }

// Check reads the reference now and returns the same error [Ref.Value] would.
func (r *Ref) Check(ctx context.Context) error {
	r.mu.Lock()
	r.read = time.Time{}
	r.mu.Unlock()
	_, err := r.Value(ctx)
	return err
}

// Value returns the reference's current value, reading it again when it may have changed. Its
// error is an [*Error] wrapping [ErrUnresolvable], with a message for agents and admins.
func (r *Ref) Value(ctx context.Context) (secret.Value, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	if r.err == nil && !r.read.IsZero() && !r.cfg.Fresh && now.Sub(r.read) < r.cfg.TTL {
		return r.val, nil
	}
	if r.err != nil && now.Sub(r.failedAt) < r.cfg.Retry {
		return secret.Value{}, r.err
	}
	rctx := ctx
	if r.read.IsZero() {
		// First read, or the value was refused upstream (Invalidate) or failed: a source that
		// caches (vault:, op:, doppler: …) must ask its manager, not hand back the old value.
		rctx = secret.WithFreshRead(ctx)
	}
	v, err := r.cfg.Secrets.Resolve(rctx, r.cfg.Reference)
	switch {
	case err == nil && v.IsZero():
		err = fmt.Errorf("%s resolves to an empty value", r.cfg.Reference)
	case err != nil && !r.val.IsZero() && transient(err):
		// The source is unreachable: keep serving the last value, say so once.
		r.logState(ctx, "stale", "a secret could not be read again; the last value is used until it can be", err)
		r.read = now
		return r.val, nil
	}
	if err != nil {
		r.val, r.read, r.failedAt = secret.Value{}, time.Time{}, now
		r.err = &Error{Kind: ErrUnresolvable, Err: err, Message: fmt.Sprintf(
			"credential %s of connector %s is unavailable: %s; an admin must fix it (%s)",
			r.what(), r.cfg.Connector, r.cfg.Scrubber.String(err.Error()), r.hint())}
		r.failing.Store(true)
		r.logState(ctx, "unavailable:"+err.Error(), "a credential is unavailable: the connector's tools answer credential_unavailable until an admin fixes it", err)
		return secret.Value{}, r.err
	}
	if raw := v.Expose(); raw != r.val.Expose() { // a new value: scrub it from now on
		r.cfg.Scrubber.Add(raw)
		if r.cfg.Kind == "basic" {
			if _, pw, ok := strings.Cut(raw, ":"); ok {
				r.cfg.Scrubber.Add(pw)
			}
		}
	}
	r.val, r.read, r.err = v, now, nil
	r.failing.Store(false)
	r.logState(ctx, "ok", "", nil)
	return v, nil
}

// Credential implements egress.TokenSource for a static kind: the same value for every subject,
// to the slot's hosts.
func (r *Ref) Credential(ctx context.Context, _ string) (Credential, error) {
	v, err := r.Value(ctx)
	if err != nil {
		return Credential{}, err
	}
	return Credential{Kind: r.cfg.Kind, Token: v}, nil
}

// Invalidate makes the next use read the reference again (the upstream refused the value).
func (r *Ref) Invalidate(string, secret.Value) {
	r.mu.Lock()
	r.read = time.Time{}
	r.mu.Unlock()
}

func (r *Ref) what() string {
	if r.cfg.Field != "" {
		return r.cfg.Slot + " (" + r.cfg.Field + ")"
	}
	return r.cfg.Slot
}

// hint says what an admin does about a reference that does not resolve.
func (r *Ref) hint() string {
	scheme, name, _ := strings.Cut(r.cfg.Reference, ":")
	switch scheme {
	case "store":
		return fmt.Sprintf("`airlock secret set %s`, or grant another reference", name)
	case "env":
		return fmt.Sprintf("set %s in the environment of the airlock process, or grant another reference", name)
	case "file":
		return fmt.Sprintf("create %s readable by airlock, or grant another reference", name)
	case "vault", "op", "doppler":
		return "fix the secret, or the host's access to it, in the secret manager, or grant another reference"
	}
	return fmt.Sprintf("grant a reference such as store:NAME or env:NAME: `airlock grant %s --credential %s=store:NAME`", r.cfg.Connector, r.cfg.Slot)
}

// logState logs a change of state once: the same failure repeated is not logged again.
func (r *Ref) logState(ctx context.Context, state, msg string, err error) {
	if state == r.loggedState {
		return
	}
	prev := r.loggedState
	r.loggedState = state
	attrs := []any{"connector", r.cfg.Connector, "credential", r.what(), "reference", secret.Display(r.cfg.Reference)}
	switch {
	case err != nil:
		r.cfg.Logger.WarnContext(ctx, msg, append(attrs, "err", r.cfg.Scrubber.String(err.Error()))...)
	case prev != "":
		r.cfg.Logger.InfoContext(ctx, "a credential is available again", attrs...)
	}
}

// transient reports whether err may go away by itself (the source unreachable), as opposed to
// a reference that names nothing or is malformed, or a secret manager that now refuses the host
// (ErrDenied): access revoked at the manager is an admin's decision, so the last value read is
// not used past it.
func transient(err error) bool {
	return !errors.Is(err, secret.ErrNotFound) && !errors.Is(err, secret.ErrBadReference) && !errors.Is(err, secret.ErrDenied)
}
