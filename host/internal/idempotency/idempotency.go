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
//     the same key runs it again; a call that panics is abandoned too.
package idempotency

import (
	"bytes"
	"context"
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
	BeginIdempotent(ctx context.Context, scope, key, argsSHA256 string, now time.Time, ttl time.Duration) (rec store.IdemRecord, started bool, err error)
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
	DefaultPollMin = 25 * time.Millisecond
	DefaultPollMax = time.Second
)

// Config configures a Deduper. Zero fields mean the defaults.
type Config struct {
	// TTL is how long a key and its outcome are kept. 0 means 24 hours.
	TTL time.Duration
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

		rec, started, err := d.b.BeginIdempotent(ctx, scope, key, argsHash, d.cfg.Now(), d.cfg.TTL)
		if err == nil && started {
			return d.run(ctx, fk, done, fn)
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

func (d *Deduper) run(ctx context.Context, fk flightKey, done chan struct{}, fn func(context.Context) ([]byte, bool)) (out []byte, replayed bool, err error) {
	// Record even if the caller goes away now: the call has happened.
	bg := context.WithoutCancel(ctx)
	finished := false
	defer func() {
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
	c, err := canonical(args)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(c)
	return hex.EncodeToString(sum[:]), nil
}

// DeriveKey is the idempotency key the host uses for a tool annotated idempotent when the agent
// gives none: the hex SHA-256 of connector, tool, subject and the canonical arguments, so the
// same call for the same subject is the same key and anything else is not.
func DeriveKey(connector, tool, subject string, args json.RawMessage) (string, error) {
	c, err := canonical(args)
	if err != nil {
		return "", err
	}
	parts, _ := json.Marshal([]any{"airlock-idempotency-v1", connector, tool, subject, json.RawMessage(c)})
	sum := sha256.Sum256(parts)
	return hex.EncodeToString(sum[:]), nil
}

func canonical(args json.RawMessage) ([]byte, error) {
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
