package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/airlock-dev/airlock/host/secret"
)

// lockQueue serialises the queue's schema steps between processes (PostgreSQL).
const lockQueue int64 = 0x6169726c6f636b04

// QueueDB is what the deferred-call queue (River, host/internal/jobqueue) runs on: exactly one
// of its fields is set.
type QueueDB struct {
	// SQLite is the store's own connection: SQLite has one writer, and River's transactions
	// queue on it with the store's.
	SQLite *sql.DB
	// Postgres is a pool of its own on the store's database (River's pgx driver needs one),
	// opened on first use and closed with the store.
	Postgres *pgxpool.Pool
}

// queuePool holds the PostgreSQL pool of QueueDB.
type queuePool struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}

// QueueDB returns what the deferred-call queue runs on. Its tables (River's river_job,
// river_queue, river_leader …) are created by Open, with the store's own schema.
func (s *Store) QueueDB(ctx context.Context) (QueueDB, error) {
	if s.d != postgresDialect {
		return QueueDB{SQLite: s.db}, nil
	}
	s.queue.once.Do(func() {
		cfg, err := pgxpool.ParseConfig(s.dsn)
		if err != nil {
			s.queue.err = errors.New("store: the PostgreSQL URL is not valid for the job queue")
			return
		}
		cfg.MaxConns = 8 // River's producers, its leader and the notifier
		s.queue.pool, err = pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			s.queue.err = fmt.Errorf("store: opening the job queue's pool: %w", secret.RedactedError(err))
		}
	})
	return QueueDB{Postgres: s.queue.pool}, s.queue.err
}

func (s *Store) closeQueue() {
	if s.queue.pool != nil {
		s.queue.pool.Close()
	}
}

// migrateQueue brings River's tables up to date, in one transaction
// (SQLite: the write lock) or under the queue's advisory lock (PostgreSQL), so that processes opening the store together do not
// race. River keeps its own version table (river_migration).
func (s *Store) migrateQueue(ctx context.Context) error {
	quiet := &rivermigrate.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if s.d != postgresDialect {
		m, err := rivermigrate.New(riversqlite.New(nil), quiet)
		if err != nil {
			return fmt.Errorf("store: job queue schema: %w", err)
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return wrap("job queue schema", err)
		}
		defer tx.Rollback()
		// One transaction (BEGIN IMMEDIATE: the write lock) keeps processes opening the file
		// together from applying a step twice; River's SQLite steps all run in one.
		//lint:ignore SA1019 Migrate would take the write lock per step, not for the whole check-and-apply
		if _, err := m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil); err != nil {
			return fmt.Errorf("store: job queue schema: %w", err)
		}
		return wrap("job queue schema", tx.Commit())
	}
	// River adds enum values in one step and uses them in the next, so each step needs a
	// transaction of its own (Migrate, not MigrateTx); a session lock held on a connection of
	// its own serialises processes instead.
	q, err := s.QueueDB(ctx)
	if err != nil {
		return err
	}
	conn, err := q.Postgres.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("store: job queue schema: %w", secret.RedactedError(err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockQueue); err != nil {
		return wrap("locking the job queue schema", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockQueue)
	m, err := rivermigrate.New(riverpgxv5.New(q.Postgres), quiet)
	if err != nil {
		return fmt.Errorf("store: job queue schema: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("store: job queue schema: %w", err)
	}
	return nil
}
