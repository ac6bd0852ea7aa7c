package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/host/store"
)

// Memory is a [Backend] in process memory, with the state store's semantics; for tests and for
// hosts without a state store. It is safe for concurrent use; its zero value is not usable,
// call [NewMemory]. Expired records are dropped when their key is claimed again.
type Memory struct {
	mu   sync.Mutex
	recs map[flightKey]store.IdemRecord
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{recs: make(map[flightKey]store.IdemRecord)} }

// BeginIdempotent implements [Backend].
func (m *Memory) BeginIdempotent(_ context.Context, scope, key, argsSHA256, owner string, now time.Time, ttl, lease time.Duration) (store.IdemRecord, bool, error) {
	if key == "" || ttl <= 0 {
		return store.IdemRecord{}, false, errors.New("idempotency: an empty key or a non-positive time to live")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := flightKey{scope, key}
	if old, ok := m.recs[k]; ok && now.Before(old.Expires) {
		old.Outcome = bytes.Clone(old.Outcome)
		return old, false, nil
	}
	rec := store.IdemRecord{Scope: scope, Key: key, ArgsSHA256: argsSHA256, State: store.IdemRunning, Created: now, Expires: now.Add(ttl)}
	if lease > 0 {
		rec.LeaseOwner, rec.LeaseExpires = owner, now.Add(lease)
	}
	m.recs[k] = rec
	return rec, true, nil
}

// TakeOverIdempotent implements [Backend].
func (m *Memory) TakeOverIdempotent(_ context.Context, scope, key, owner string, now time.Time, lease time.Duration) (store.IdemRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := flightKey{scope, key}
	rec, ok := m.recs[k]
	if !ok || rec.State != store.IdemRunning || rec.LeaseExpires.IsZero() || now.Before(rec.LeaseExpires) || !now.Before(rec.Expires) {
		return store.IdemRecord{}, false, nil
	}
	rec.LeaseOwner, rec.LeaseExpires = owner, now.Add(lease)
	m.recs[k] = rec
	return rec, true, nil
}

// RenewIdempotent implements [Backend].
func (m *Memory) RenewIdempotent(_ context.Context, scope, key, owner string, until time.Time) error {
	return m.held(scope, key, owner, func(r *store.IdemRecord) { r.LeaseExpires = until })
}

// MarkIdempotentAttempted implements [Backend].
func (m *Memory) MarkIdempotentAttempted(_ context.Context, scope, key, owner string) error {
	return m.held(scope, key, owner, func(r *store.IdemRecord) { r.Attempted = true })
}

func (m *Memory) held(scope, key, owner string, change func(*store.IdemRecord)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := flightKey{scope, key}
	rec, ok := m.recs[k]
	if !ok || rec.State != store.IdemRunning || rec.LeaseOwner != owner {
		return fmt.Errorf("idempotency: key %q: this host no longer holds it: %w", key, store.ErrConflict)
	}
	change(&rec)
	m.recs[k] = rec
	return nil
}

// CompleteIdempotent implements [Backend].
func (m *Memory) CompleteIdempotent(_ context.Context, scope, key string, outcome []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := flightKey{scope, key}
	rec, ok := m.recs[k]
	switch {
	case !ok:
		return fmt.Errorf("idempotency: completing key %q: %w", key, store.ErrNotFound)
	case rec.State != store.IdemRunning:
		return fmt.Errorf("idempotency: completing key %q: it is done already: %w", key, store.ErrConflict)
	}
	rec.State, rec.Outcome = store.IdemDone, bytes.Clone(outcome)
	m.recs[k] = rec
	return nil
}

// AbandonIdempotent implements [Backend].
func (m *Memory) AbandonIdempotent(_ context.Context, scope, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := flightKey{scope, key}
	rec, ok := m.recs[k]
	switch {
	case !ok:
		return fmt.Errorf("idempotency: abandoning key %q: %w", key, store.ErrNotFound)
	case rec.State != store.IdemRunning:
		return fmt.Errorf("idempotency: abandoning key %q: it is done already: %w", key, store.ErrConflict)
	}
	delete(m.recs, k)
	return nil
}
