package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// States of an idempotency record.
const (
	IdemRunning = "running"
	IdemDone    = "done"
)

// IdemRecord is the outcome of one call made with an idempotency key, kept for a while so that
// a retry of the same call gets the same outcome instead of running twice.
type IdemRecord struct {
	Scope, Key, ArgsSHA256 string
	State                  string // IdemRunning or IdemDone
	Outcome                []byte // set when done
	Created, Expires       time.Time
	// LeaseOwner holds a running record until LeaseExpires, renewing it while the call runs;
	// a zero LeaseExpires is no lease (the record waits for Expires).
	LeaseOwner   string
	LeaseExpires time.Time
	// Attempted: the call may have reached the upstream (set before its first request left).
	Attempted bool
}

func idemName(scope, key string) string {
	return fmt.Sprintf("idempotency key %q in scope %q", key, scope)
}

// BeginIdempotent claims (scope, key) at now for ttl. With started true the caller owns the
// call: it runs it and must then [Store.CompleteIdempotent] or [Store.AbandonIdempotent].
// With started false, rec is the existing record (running or done): the caller compares its
// ArgsSHA256 with its own (a different call under a reused key) and, if it is running, waits
// and polls. A record expired at now is replaced as if absent. Exactly one of any number of
// concurrent callers (on any replica) starts. A started record is leased to owner until
// now+lease (0: no lease); the owner renews it with [Store.RenewIdempotent].
func (s *Store) BeginIdempotent(ctx context.Context, scope, key, argsSHA256, owner string, now time.Time, ttl, lease time.Duration) (rec IdemRecord, started bool, err error) {
	op := "claiming " + idemName(scope, key)
	if key == "" {
		return IdemRecord{}, false, fmt.Errorf("store: %s: the idempotency key is empty", op)
	}
	if ttl <= 0 {
		return IdemRecord{}, false, fmt.Errorf("store: %s: the time to live must be positive, not %v", op, ttl)
	}
	now = now.UTC()
	rec = IdemRecord{Scope: scope, Key: key, ArgsSHA256: argsSHA256, State: IdemRunning, Created: now, Expires: now.Add(ttl)}
	var leaseUntil int64
	if lease > 0 {
		rec.LeaseOwner, rec.LeaseExpires = owner, now.Add(lease)
		leaseUntil = toNanos(rec.LeaseExpires)
	}
	// A claim races only with a concurrent purge or abandon deleting the row between the
	// upsert and the read; a few rounds settle it.
	for range 5 {
		r, err := s.exec(ctx, `INSERT INTO idempotency (scope, idem_key, args_sha256, state, outcome, created, expires, lease_owner, lease_expires, attempted)
			VALUES (?, ?, ?, 'running', NULL, ?, ?, ?, ?, 0)
			ON CONFLICT (scope, idem_key) DO UPDATE SET args_sha256 = excluded.args_sha256, state = 'running',
				outcome = NULL, created = excluded.created, expires = excluded.expires,
				lease_owner = excluded.lease_owner, lease_expires = excluded.lease_expires, attempted = 0
			WHERE idempotency.expires <= ?`,
			scope, key, argsSHA256, toNanos(rec.Created), toNanos(rec.Expires), rec.LeaseOwner, leaseUntil, toNanos(now))
		if err != nil {
			return IdemRecord{}, false, wrap(op, err)
		}
		n, err := affected(r)
		if err != nil {
			return IdemRecord{}, false, wrap(op, err)
		}
		if n == 1 {
			return rec, true, nil
		}
		old, err := s.getIdem(ctx, scope, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return old, false, err
	}
	return IdemRecord{}, false, fmt.Errorf("store: %s: the key is being claimed and released concurrently; retry the call: %w", op, ErrConflict)
}

func (s *Store) getIdem(ctx context.Context, scope, key string) (IdemRecord, error) {
	rec := IdemRecord{Scope: scope, Key: key}
	var created, expires, leaseUntil, attempted int64
	err := s.queryRow(ctx, `SELECT args_sha256, state, outcome, created, expires, lease_owner, lease_expires, attempted
		FROM idempotency WHERE scope = ? AND idem_key = ?`,
		scope, key).Scan(&rec.ArgsSHA256, &rec.State, &rec.Outcome, &created, &expires, &rec.LeaseOwner, &leaseUntil, &attempted)
	if errors.Is(err, sql.ErrNoRows) {
		return IdemRecord{}, notFound(idemName(scope, key), "")
	}
	if err != nil {
		return IdemRecord{}, wrap("reading "+idemName(scope, key), err)
	}
	rec.Created, rec.Expires = fromNanos(created), fromNanos(expires)
	if leaseUntil != 0 {
		rec.LeaseExpires = fromNanos(leaseUntil)
	}
	rec.Attempted = attempted != 0
	return rec, nil
}

// TakeOverIdempotent leases the running record (scope, key) to owner until now+lease when its
// lease has lapsed at now (its owner stopped renewing it: its host died). taken false: the lease
// is live, the record is done, gone or expired, or another caller took it over first. The
// returned record says whether the call may have reached the upstream (Attempted).
func (s *Store) TakeOverIdempotent(ctx context.Context, scope, key, owner string, now time.Time, lease time.Duration) (rec IdemRecord, taken bool, err error) {
	op := "taking over " + idemName(scope, key)
	if lease <= 0 {
		return IdemRecord{}, false, fmt.Errorf("store: %s: the lease must be positive, not %v", op, lease)
	}
	r, err := s.exec(ctx, `UPDATE idempotency SET lease_owner = ?, lease_expires = ?
		WHERE scope = ? AND idem_key = ? AND state = 'running' AND lease_expires > 0 AND lease_expires <= ? AND expires > ?`,
		owner, toNanos(now.Add(lease)), scope, key, toNanos(now), toNanos(now))
	if err != nil {
		return IdemRecord{}, false, wrap(op, err)
	}
	if n, err := affected(r); err != nil || n != 1 {
		return IdemRecord{}, false, wrap(op, err)
	}
	rec, err = s.getIdem(ctx, scope, key)
	return rec, err == nil, err
}

// RenewIdempotent extends owner's lease of the running record (scope, key) to until. It returns
// an error wrapping [ErrConflict] when owner no longer holds it (taken over, or finished).
func (s *Store) RenewIdempotent(ctx context.Context, scope, key, owner string, until time.Time) error {
	r, err := s.exec(ctx, `UPDATE idempotency SET lease_expires = ? WHERE scope = ? AND idem_key = ? AND state = 'running' AND lease_owner = ?`,
		toNanos(until), scope, key, owner)
	return leaseHeld("renewing the lease of "+idemName(scope, key), r, err)
}

// MarkIdempotentAttempted records that owner's call (scope, key) is about to send its first
// upstream request: a host that takes the call over later knows it may have happened. It returns
// an error wrapping [ErrConflict] when owner no longer holds the record: then nothing may be sent.
func (s *Store) MarkIdempotentAttempted(ctx context.Context, scope, key, owner string) error {
	r, err := s.exec(ctx, `UPDATE idempotency SET attempted = 1 WHERE scope = ? AND idem_key = ? AND state = 'running' AND lease_owner = ?`,
		scope, key, owner)
	return leaseHeld("marking the attempt of "+idemName(scope, key), r, err)
}

func leaseHeld(op string, r sql.Result, err error) error {
	if err != nil {
		return wrap(op, err)
	}
	n, err := affected(r)
	if err != nil {
		return wrap(op, err)
	}
	if n != 1 {
		return fmt.Errorf("store: %s: this host no longer holds it (another one took the call over): %w", op, ErrConflict)
	}
	return nil
}

// GetIdempotent returns the record (scope, key), expired or not, or an error wrapping
// [ErrNotFound]. Callers waiting on a running record poll it.
func (s *Store) GetIdempotent(ctx context.Context, scope, key string) (IdemRecord, error) {
	return s.getIdem(ctx, scope, key)
}

// CompleteIdempotent records outcome for the running record (scope, key). It returns an error
// wrapping [ErrNotFound] when there is no such record and [ErrConflict] when it is done already.
func (s *Store) CompleteIdempotent(ctx context.Context, scope, key string, outcome []byte) error {
	op := "completing " + idemName(scope, key)
	r, err := s.exec(ctx, `UPDATE idempotency SET state = 'done', outcome = ? WHERE scope = ? AND idem_key = ? AND state = 'running'`,
		nonNil(outcome), scope, key)
	return s.idemChanged(ctx, op, scope, key, r, err)
}

// AbandonIdempotent releases the running record (scope, key) without an outcome, so the next
// caller with that key runs the call. Errors as for [Store.CompleteIdempotent].
func (s *Store) AbandonIdempotent(ctx context.Context, scope, key string) error {
	op := "abandoning " + idemName(scope, key)
	r, err := s.exec(ctx, `DELETE FROM idempotency WHERE scope = ? AND idem_key = ? AND state = 'running'`, scope, key)
	return s.idemChanged(ctx, op, scope, key, r, err)
}

func (s *Store) idemChanged(ctx context.Context, op, scope, key string, r sql.Result, err error) error {
	if err != nil {
		return wrap(op, err)
	}
	n, err := affected(r)
	if err != nil {
		return wrap(op, err)
	}
	if n == 1 {
		return nil
	}
	if _, err := s.getIdem(ctx, scope, key); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return fmt.Errorf("store: %s: it is done already: %w", op, ErrConflict)
}

// PurgeExpired deletes the idempotency records expired at now and marks pending or approved
// approvals expired at now as "expired". It returns how many records it changed.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	err := s.inTx(ctx, func(t tx) error {
		r, err := t.exec(ctx, `DELETE FROM idempotency WHERE expires <= ?`, toNanos(now))
		if err != nil {
			return wrap("purging idempotency records", err)
		}
		n, _ := affected(r)
		total += n
		r, err = t.exec(ctx, `UPDATE approvals SET status = 'expired' WHERE status IN ('pending', 'approved') AND expires <= ?`, toNanos(now))
		if err != nil {
			return wrap("expiring approvals", err)
		}
		n, _ = affected(r)
		total += n
		return nil
	})
	if err != nil {
		return 0, err
	}
	return total, nil
}
