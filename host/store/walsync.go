package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
)

// walSyncer makes the commits of an SQLite file durable after the fact: it fsyncs the
// write-ahead log, once for every commit made before the fsync began (group commit).
type walSyncer struct {
	path string // the database file's "-wal"

	commits atomic.Uint64 // commits made without their fsync
	mu      sync.Mutex    // held across an fsync: a caller behind it finds its commit covered
	synced  uint64        // commits covered by a completed fsync, under mu
}

// committed counts a commit made without its fsync and returns its number.
func (w *walSyncer) committed() uint64 { return w.commits.Add(1) }

// sync returns once commit n is on disk.
func (w *walSyncer) sync(n uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.synced >= n {
		return nil
	}
	upto := w.commits.Load()
	if err := fsyncFile(w.path); err != nil {
		return fmt.Errorf("store: syncing the write-ahead log %s: %w", w.path, err)
	}
	w.synced = upto
	return nil
}

// fsyncFile fsyncs the file at path. A log that is gone was checkpointed into the database,
// and the database synced, before SQLite removed it.
func fsyncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}

// inTxUnsynced is inTx on an SQLite file with the commit's fsync left out (synchronous=NORMAL
// for this one transaction): the caller syncs the write-ahead log itself (walSyncer). The
// connection is back to synchronous=FULL before anyone else uses it, or is discarded.
func (s *Store) inTxUnsynced(ctx context.Context, fn func(tx) error) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return wrap("beginning a transaction", err)
	}
	defer func() {
		_, rerr := conn.ExecContext(context.Background(), `PRAGMA synchronous=FULL`)
		if rerr != nil {
			// Never hand a connection that skips fsyncs back to the pool.
			conn.Raw(func(any) error { return driver.ErrBadConn })
			err = errors.Join(err, wrap("restoring synchronous=FULL", rerr))
		}
		conn.Close()
	}()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous=NORMAL`); err != nil {
		return wrap("beginning a transaction", err)
	}
	sqlTx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return wrap("beginning a transaction", err)
	}
	if err := fn(tx{sqlTx, s.d}); err != nil {
		sqlTx.Rollback()
		return err
	}
	return wrap("committing", sqlTx.Commit())
}
