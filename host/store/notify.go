package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/host/secret"
)

// Kinds of [Change]: what the other replicas must re-read.
const (
	ChangeGrant     = "grant"    // a grant, revocation or active version of a connector
	ChangeToken     = "token"    // an agent or admin token was revoked, or an admin's role changed
	ChangeApproval  = "approval" // an approval was decided
	ChangeTrust     = "trust"    // a publisher key was trusted or distrusted
	ChangeSecret    = "secret"   // a sealed secret or the keyring changed
	ChangeResync    = "resync"   // the listener (re)connected: changes may have been missed
	changeChannel   = "airlock_changes"
	maxChangeKeyLen = 200
)

// Change is one change another process made to the store, as [Store.Listen] reports it.
type Change struct {
	Kind string // one of the Change* kinds
	Key  string // what changed, e.g. the connector's name; may be empty
}

// notify tells every process listening on the same PostgreSQL database that something of kind
// changed, once the change is committed. It is best effort: a lost notification is caught by
// the listeners' poll. No-op on SQLite (one machine; the poll covers other processes).
func (s *Store) notify(ctx context.Context, kind, key string) {
	if s.d != postgresDialect {
		return
	}
	if len(key) > maxChangeKeyLen {
		key = key[:maxChangeKeyLen]
	}
	_, _ = s.exec(context.WithoutCancel(ctx), `SELECT pg_notify(?, ?)`, changeChannel, kind+" "+key)
}

// Notifies reports whether [Store.Listen] delivers changes (PostgreSQL) rather than returning
// at once (SQLite), so callers know whether polling is their only source.
func (s *Store) Notifies() bool { return s.d == postgresDialect }

// Listen calls fn with every change committed by any process on the same PostgreSQL database
// (this one included), within milliseconds, until ctx is done. It holds one connection of its
// own; when that connection is lost it reconnects with backoff and then calls fn with a
// [ChangeResync] change, since changes made meanwhile were not delivered. fn runs on Listen's
// goroutine: keep it short or hand off. onErr, if set, hears why the connection was lost (the
// text never holds the DSN's password). On SQLite Listen returns nil at once.
func (s *Store) Listen(ctx context.Context, fn func(Change), onErr func(error)) error {
	if s.d != postgresDialect {
		return nil
	}
	backoff := 50 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, fn, func() {
			if !first {
				fn(Change{Kind: ChangeResync})
			}
			first = false
			backoff = 50 * time.Millisecond
		})
		if ctx.Err() != nil {
			break
		}
		if onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (s *Store) listenOnce(ctx context.Context, fn func(Change), connected func()) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, s.dsn)
	cancel()
	if err != nil {
		return fmt.Errorf("store: listening for changes: connecting: %w", secret.RedactedError(err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+changeChannel); err != nil {
		return fmt.Errorf("store: listening for changes: %w", secret.RedactedError(err))
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("store: listening for changes: %w", secret.RedactedError(err))
		}
		kind, key, _ := strings.Cut(n.Payload, " ")
		fn(Change{Kind: kind, Key: key})
	}
}
