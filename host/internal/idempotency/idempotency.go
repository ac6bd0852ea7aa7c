// Package idempotency makes a repeated tool call with the same idempotency key return the first
// call's outcome instead of running again.
//
// A key comes from the agent, or is derived by the host for tools annotated idempotent
// ([DeriveKey]: a hash of connector, tool, subject and canonical arguments). [Deduper.Do] claims
// the key in a [Backend] (the state store, shared by every replica), runs the call once, and
// records its outcome for a time to live:
//
//	d := idempotency.New(st, idempotency.Config{TTL: 24 * time.Hour})
//	argsHash, _ := idempotency.ArgsHash(args)
//	out, replayed, err := d.Do(ctx, "slack/agent-7", key, argsHash, func(ctx context.Context) ([]byte, bool) {
//		res := runTheCall(ctx)
//		return encode(res), !res.Retryable() // a retryable failure is not recorded: a retry runs again
//	})
//	switch {
//	case errors.Is(err, idempotency.ErrKeyReused): // correctable: the key was used with other arguments
//	case errors.Is(err, idempotency.ErrInProgress): // retryable: the first call is still running
//	}
//
// The rules:
//   - same key, same arguments, first call done: its recorded outcome, replayed is true, and
//     neither the plugin nor the upstream is called again;
//   - same key, different arguments: ErrKeyReused;
//   - same key while the first call runs: wait for it (in-process duplicates are woken as soon
//     as it ends; duplicates on other replicas poll the backend with backoff), as long as ctx
//     allows, then ErrInProgress;
//   - a call whose fn returns record=false (a retryable failure) is abandoned, so a retry with
//     the same key runs it again; a call that panics is abandoned too;
//   - the caller running a key holds a lease on it (Config.Lease), renewed while fn runs; a key
//     whose lease lapsed belongs to a caller that died (its host was killed). The next caller
//     takes it over: it runs fn again when no upstream request had left ([Attempting] was never
//     called) or when the call is safe to repeat ([Deduper.DoOr] with a nil unknown); otherwise
//     it records unknown()'s outcome, and that key never runs the call again.
package idempotency

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/host/store"
)

// Backend keeps the records. *store.Store implements it; [Memory] is an in-process one.
type Backend interface {
	// BeginIdempotent claims (scope, key) at now for ttl. started true: the caller owns the call
	// and must Complete or Abandon it. started false: rec is the existing record (running or
	// done). A record expired at now is replaced as if absent.
	// A started record is leased to owner until now+lease.
	BeginIdempotent(ctx context.Context, scope, key, argsSHA256, owner string, now time.Time, ttl, lease time.Duration) (rec store.IdemRecord, started bool, err error)
	// TakeOverIdempotent leases a running record whose lease lapsed at now to owner.
	TakeOverIdempotent(ctx context.Context, scope, key, owner string, now time.Time, lease time.Duration) (rec store.IdemRecord, taken bool, err error)
	// RenewIdempotent extends owner's lease to until (store.ErrConflict: owner lost it).
	RenewIdempotent(ctx context.Context, scope, key, owner string, until time.Time) error
	// MarkIdempotentAttempted records that owner's call may reach the upstream from now on
	// (store.ErrConflict: owner lost it, nothing may be sent).
	MarkIdempotentAttempted(ctx context.Context, scope, key, owner string) error
	// CompleteIdempotent records the outcome of the running record.
	CompleteIdempotent(ctx context.Context, scope, key string, outcome []byte) error
	// AbandonIdempotent releases the running record without an outcome.
	AbandonIdempotent(ctx context.Context, scope, key string) error
}

// Errors Do returns; test with errors.Is. Their text is safe to show an agent.
var (
	// ErrKeyReused: the key was used for a call with different arguments (correctable).
	ErrKeyReused = errors.New("this idempotency key was already used for a call with different arguments; use a new key for a different call, or repeat the original arguments to get the original result")
	// ErrInProgress: a call with the key is still running and ctx ended first (retryable).
	ErrInProgress = errors.New("a call with this idempotency key is still running; try again shortly to get its result")
)

// Defaults for zero Config fields.
const (
	DefaultTTL     = 24 * time.Hour
	DefaultLease   = 30 * time.Second
	DefaultPollMin = 25 * time.Millisecond
	DefaultPollMax = time.Second
)

// Config configures a Deduper. Zero fields mean the defaults.
type Config struct {
	// TTL is how long a key and its outcome are kept. 0 means 24 hours.
	TTL time.Duration
	// Lease is how long a running key stays held without a renewal (it is renewed every third
	// of it while the call runs): after a host dies, its calls are taken over that much later.
	// 0 means 30 seconds.
	Lease time.Duration
	// PollMin and PollMax bound the backoff between polls of a key that another replica is
	// running: the first poll waits PollMin, each next one twice as long, at most PollMax.
	// 0 means 25 ms and 1 s.
	PollMin, PollMax time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives a line when an outcome cannot be recorded. Nil means slog.Default().
	Logger *slog.Logger
}

// Deduper runs calls at most once per key. It is safe for concurrent use; its zero value is not
// usable, call [New].
type Deduper struct {
	b   Backend
	cfg Config

	mu      sync.Mutex
	flights map[flightKey]chan struct{} // closed when the in-process owner of a key is done
}

type flightKey struct{ scope, key string }

// New returns a Deduper on b.
func New(b Backend, cfg Config) *Deduper {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.PollMin <= 0 {
		cfg.PollMin = DefaultPollMin
	}
	if cfg.PollMax <= 0 {
		cfg.PollMax = DefaultPollMax
	}
	cfg.PollMax = max(cfg.PollMax, cfg.PollMin)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Deduper{b: b, cfg: cfg, flights: make(map[flightKey]chan struct{})}
}

// Do runs fn once for (scope, key), as the package documentation describes. argsHash
// identifies the arguments ([ArgsHash]). fn returns the outcome to hand back and whether to
// record it; an outcome not recorded is returned to this caller only. replayed reports that the
// outcome is a recorded one (fn was not called).
func (d *Deduper) Do(ctx context.Context, scope, key, argsHash string, fn func(ctx context.Context) (outcome []byte, record bool)) (outcome []byte, replayed bool, err error) {
	return d.DoOr(ctx, scope, key, argsHash, nil, fn)
}

// DoOr is Do for a call that is not safe to repeat when unknown is not nil: a key left running
// by a caller that died (its lease lapsed) after it may have sent an upstream request is not run
// again; unknown's outcome is recorded for it and returned (replayed false). With a nil unknown
// such a key runs fn again, like one whose first run sent nothing.
func (d *Deduper) DoOr(ctx context.Context, scope, key, argsHash string, unknown func() []byte, fn func(ctx context.Context) (outcome []byte, record bool)) (outcome []byte, replayed bool, err error) {
	if key == "" {
		out, _ := fn(ctx)
		return out, false, nil
	}
	fk := flightKey{scope, key}
	poll := d.cfg.PollMin
	for {
		// Same-process duplicates queue here, without touching the backend.
		d.mu.Lock()
		if ch, ok := d.flights[fk]; ok {
			d.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, false, fmt.Errorf("%w (%w)", ErrInProgress, context.Cause(ctx))
			}
		}
		done := make(chan struct{})
		d.flights[fk] = done
		d.mu.Unlock()

		owner := newOwner()
		now := d.cfg.Now()
		rec, started, err := d.b.BeginIdempotent(ctx, scope, key, argsHash, owner, now, d.cfg.TTL, d.cfg.Lease)
		if err == nil && !started && rec.State == store.IdemRunning && rec.ArgsSHA256 == argsHash &&
			!rec.LeaseExpires.IsZero() && !now.Before(rec.LeaseExpires) {
			// Its owner stopped renewing the lease: its host died in the middle of the call.
			var taken store.IdemRecord
			taken, started, err = d.b.TakeOverIdempotent(ctx, scope, key, owner, d.cfg.Now(), d.cfg.Lease)
			if err == nil && started {
				d.cfg.Logger.Warn("idempotency: taking over a call left running by a host that stopped",
					"scope", scope, "may_have_reached_upstream", taken.Attempted, "repeatable", unknown == nil)
				if taken.Attempted && unknown != nil {
					return d.settle(ctx, fk, done, unknown())
				}
			}
		}
		if err == nil && started {
			return d.run(ctx, fk, done, owner, fn)
		}
		d.land(fk, done)
		switch {
		case errors.Is(err, store.ErrConflict):
			// Claimed and released concurrently: poll again.
		case err != nil:
			return nil, false, fmt.Errorf("idempotency: %w", err)
		case rec.ArgsSHA256 != argsHash:
			return nil, false, ErrKeyReused
		case rec.State == store.IdemDone:
			return bytes.Clone(rec.Outcome), true, nil
		}
		// Running elsewhere: poll with backoff.
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, false, fmt.Errorf("%w (%w)", ErrInProgress, context.Cause(ctx))
		}
		poll = min(2*poll, d.cfg.PollMax)
	}
}

// land ends the in-process flight of fk, waking its waiters.
func (d *Deduper) land(fk flightKey, done chan struct{}) {
	d.mu.Lock()
	delete(d.flights, fk)
	d.mu.Unlock()
	close(done)
}

// settle records out as the outcome of the key fk holds, without running the call.
func (d *Deduper) settle(ctx context.Context, fk flightKey, done chan struct{}, out []byte) ([]byte, bool, error) {
	defer d.land(fk, done)
	if err := d.b.CompleteIdempotent(context.WithoutCancel(ctx), fk.scope, fk.key, out); err != nil {
		d.cfg.Logger.Error("idempotency: recording an unknown outcome failed; repeats of this key will wait until it expires",
			"scope", fk.scope, "error", err.Error())
	}
	return out, false, nil
}

func newOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// attempt is what Attempting finds in the context of a call fn runs.
type attempt struct {
	d     *Deduper
	fk    flightKey
	owner string
	once  sync.Once
	err   error
}

type attemptKey struct{}

// Attempting must be called before a call run by [Deduper.Do] sends a request that may have an
// upstream side effect; it records, once per run, that the call may have reached the upstream,
// so a host taking the call over after a crash knows it (without that mark it runs the call
// again). An error means the mark could not be written or the key was taken over: send nothing.
// Outside Do it does nothing.
func Attempting(ctx context.Context) error {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	if a == nil {
		return nil
	}
	a.once.Do(func() {
		a.err = a.d.b.MarkIdempotentAttempted(ctx, a.fk.scope, a.fk.key, a.owner)
		if a.err != nil {
			a.err = fmt.Errorf("idempotency: %w", a.err)
		}
	})
	return a.err
}

// renew renews owner's lease of fk every third of the lease until stop is closed.
func (d *Deduper) renew(ctx context.Context, fk flightKey, owner string, stop <-chan struct{}) {
	t := time.NewTicker(d.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if err := d.b.RenewIdempotent(ctx, fk.scope, fk.key, owner, d.cfg.Now().Add(d.cfg.Lease)); err != nil {
			select {
			case <-stop:
				return
			default:
			}
			d.cfg.Logger.Error("idempotency: renewing the lease of a running call failed; another host may take it over",
				"scope", fk.scope, "error", err.Error())
		}
	}
}

func (d *Deduper) run(ctx context.Context, fk flightKey, done chan struct{}, owner string, fn func(context.Context) ([]byte, bool)) (out []byte, replayed bool, err error) {
	// Record even if the caller goes away now: the call has happened.
	bg := context.WithoutCancel(ctx)
	stop, renewed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(renewed)
		d.renew(bg, fk, owner, stop)
	}()
	var stopOnce sync.Once
	stopRenewing := func() { stopOnce.Do(func() { close(stop); <-renewed }) } // before the outcome is written
	ctx = context.WithValue(ctx, attemptKey{}, &attempt{d: d, fk: fk, owner: owner})
	finished := false
	defer func() {
		stopRenewing()
		if !finished { // fn panicked
			if err := d.b.AbandonIdempotent(bg, fk.scope, fk.key); err != nil {
				d.cfg.Logger.Error("idempotency: releasing a key after a panic failed; the key is blocked until it expires",
					"scope", fk.scope, "error", err.Error())
			}
		}
		d.land(fk, done)
	}()
	out, record := fn(ctx)
	finished = true
	stopRenewing()
	if record {
		if err := d.b.CompleteIdempotent(bg, fk.scope, fk.key, out); err != nil {
			// Not abandoned: a retry must not repeat a side effect that has happened. Waiters
			// see a running key until it expires.
			d.cfg.Logger.Error("idempotency: recording an outcome failed; repeats of this key will wait until it expires",
				"scope", fk.scope, "error", err.Error())
		}
	} else if err := d.b.AbandonIdempotent(bg, fk.scope, fk.key); err != nil {
		d.cfg.Logger.Error("idempotency: releasing a key failed; the key is blocked until it expires",
			"scope", fk.scope, "error", err.Error())
	}
	return out, false, nil
}

// ArgsHash is the hex SHA-256 of the canonical form of JSON arguments: object keys sorted,
// insignificant white space removed, numbers kept as written. It fails on invalid JSON.
func ArgsHash(args json.RawMessage) (string, error) {
	c, err := Canonical(args)
	if err != nil {
		return "", err
	}
	return HashCanonical(c), nil
}

// DeriveKey is the idempotency key the host uses for a tool annotated idempotent when the agent
// gives none: the hex SHA-256 of connector, tool, subject and the canonical arguments, so the
// same call for the same subject is the same key and anything else is not.
func DeriveKey(connector, tool, subject string, args json.RawMessage) (string, error) {
	c, err := Canonical(args)
	if err != nil {
		return "", err
	}
	return KeyCanonical(connector, tool, subject, c), nil
}

// HashCanonical is ArgsHash of arguments already in canonical form (Canonical's result): a
// caller that needs both digests of one call's arguments canonicalises them once.
func HashCanonical(canon []byte) string {
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// KeyCanonical is DeriveKey of arguments already in canonical form (Canonical's result).
func KeyCanonical(connector, tool, subject string, canon []byte) string {
	parts, _ := json.Marshal([]any{"airlock-idempotency-v1", connector, tool, subject, json.RawMessage(canon)})
	sum := sha256.Sum256(parts)
	return hex.EncodeToString(sum[:])
}

// Canonical returns the canonical form of JSON arguments that ArgsHash and DeriveKey digest:
// one value, object keys sorted, insignificant white space removed, numbers kept as written
// (empty arguments are null). It fails on invalid JSON.
func Canonical(args json.RawMessage) ([]byte, error) {
	if len(bytes.TrimSpace(args)) == 0 {
		return []byte("null"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("idempotency: the arguments are not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("idempotency: the arguments are not one JSON value")
	}
	return json.Marshal(v)
}
