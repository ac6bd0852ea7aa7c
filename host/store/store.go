package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/airlock-dev/airlock/host/secret"
)

// Errors callers branch on. Methods wrap them with the record they concern, so test them with
// errors.Is.
var (
	// ErrNotFound reports that the record asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports that the record is not in the state the operation needs: it already
	// exists, another writer changed it first, or (approvals) it was already decided or used.
	ErrConflict = errors.New("conflict")
	// ErrExpired reports a bearer token past its expiry ([Store.LookupToken]).
	ErrExpired = errors.New("expired")
	// ErrRecordRefused reports an audit append the database refused for what a record holds
	// (a value a column cannot take, a size past one of its limits; or a record that is not a
	// JSON object), not for being unreachable or busy: the same append without that record
	// can succeed ([Store.AppendAudit]).
	ErrRecordRefused = errors.New("the database refused a record's content")
)

// Drivers returned by [Store.Driver].
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Config tunes [OpenConfig]. The zero value (or nil) means the documented defaults.
type Config struct {
	// Now is the clock that stamps Updated, Created and InstalledAt fields the caller left
	// zero, and decides whether a pending approval has expired in DecideApproval.
	// Default: time.Now.
	Now func() time.Time
	// BusyTimeout is how long an SQLite writer waits for another process holding the write
	// lock (the CLI and a running server share one file) before failing. Default: 10s.
	// Ignored for PostgreSQL.
	BusyTimeout time.Duration
}

// Store is the host's persistent state: meta values, sealed secrets, connections, installed
// connectors, grants, approvals, idempotency records, trusted publisher keys and the audit log.
// It is safe for concurrent use, by several goroutines and (PostgreSQL, or SQLite on one
// machine) by several processes. The zero value is not usable; call [Open].
type Store struct {
	db *sql.DB
	// rdb serves the reads on every request's path (token lookups): on an SQLite file, a pool
	// of read-only connections, so a lookup does not queue behind a write (an audit commit
	// waiting for its fsync) on db's one connection; WAL gives each read the last committed
	// state, another process's included. Otherwise db itself.
	rdb    *sql.DB
	stmts  sync.Map // stmtKey -> *sql.Stmt, see prepared
	dsn    string   // for the connection Listen holds
	d      *dialect
	now    func() time.Time
	closed chan struct{}

	tokens    *tokenCache                  // an SQLite file's looked-up tokens; nil otherwise
	auditKeys atomic.Pointer[auditKeysBox] // set by SetAuditKeys; nil: unkeyed appends
	wal       *walSyncer                   // an SQLite file's write-ahead log; nil otherwise

	auditMu sync.Mutex
	audit   *auditStmts // prepared on the first append

	queue queuePool // QueueDB's PostgreSQL pool
}

// dialect holds the few differences between SQLite and PostgreSQL. Queries are written with
// "?" placeholders and rebound to $1, $2 … for PostgreSQL.
type dialect struct {
	name     string
	blob     string // column type for bytes
	dollar   bool   // placeholders are $n
	lockStmt string // takes a transaction-scoped lock, with one ? for the key; "" when every write transaction is already exclusive
	isUnique func(error) bool
	// isRefused reports an error the database gives for what a statement writes (a value a
	// column cannot take, a size past one of its limits), not for being unreachable or busy.
	isRefused func(error) bool
}

var sqliteDialect = &dialect{
	name: DriverSQLite,
	blob: "BLOB",
	isUnique: func(err error) bool {
		var e *sqlite.Error
		if errors.As(err, &e) {
			return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
		}
		return false
	},
	isRefused: func(err error) bool {
		var e *sqlite.Error
		if !errors.As(err, &e) {
			return false
		}
		switch e.Code() {
		case sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.SQLITE_CONSTRAINT_CHECK:
			return true
		}
		return false
	},
}

var postgresDialect = &dialect{
	name:     DriverPostgres,
	blob:     "BYTEA",
	dollar:   true,
	lockStmt: "SELECT pg_advisory_xact_lock(?)",
	isUnique: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505"
	},
	// Class 22, data exception (a NUL byte or invalid UTF-8 in text, a value too long), and
	// class 54, program limit exceeded (an index entry past a B-tree page's third).
	isRefused: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && (strings.HasPrefix(e.Code, "22") || strings.HasPrefix(e.Code, "54"))
	},
}

// Advisory lock keys (PostgreSQL), ASCII "airlock" followed by a number.
const (
	lockMigrate int64 = 0x6169726c6f636b01
	lockAudit   int64 = 0x6169726c6f636b02
	lockGrant   int64 = 0x6169726c6f636b03
)

// rebind turns "?" placeholders into "$1", "$2" … for PostgreSQL. Queries never hold a literal
// question mark.
func (d *dialect) rebind(q string) string {
	if !d.dollar || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Open opens the store named by dsn and brings its schema up to date:
//
//   - "sqlite:PATH", or a bare PATH ending in ".db": an SQLite file, created with mode 0600
//     (its directory with 0700) when absent; "sqlite::memory:" is a private in-memory database;
//   - "postgres://…" or "postgresql://…": a PostgreSQL database (any URL pgx accepts).
//
// A database whose schema is newer than this binary is refused. Open is safe to call from
// several processes at once against the same database.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenConfig(ctx, dsn, nil)
}

// OpenConfig is [Open] with a [Config]; a nil cfg means the defaults.
func OpenConfig(ctx context.Context, dsn string, cfg *Config) (*Store, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.BusyTimeout <= 0 {
		c.BusyTimeout = 10 * time.Second
	}
	var (
		db  *sql.DB
		d   *dialect
		err error
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		d = postgresDialect
		db, err = sql.Open("pgx", dsn)
		if err != nil {
			// The DSN may hold a password: never echo it.
			return nil, errors.New("store: the PostgreSQL URL is not valid: check its form (postgres://user@host:port/database?sslmode=…)")
		}
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(5)
		db.SetConnMaxIdleTime(5 * time.Minute)
	case strings.HasPrefix(dsn, "sqlite:"), strings.HasSuffix(dsn, ".db") && !strings.Contains(dsn, "://"):
		d = sqliteDialect
		db, err = openSQLite(strings.TrimPrefix(dsn, "sqlite:"), c.BusyTimeout)
		if err != nil {
			return nil, err
		}
	default:
		return nil, errors.New(`store: unknown database address: use "sqlite:PATH" (or a path ending in .db) or "postgres://user@host/database"`)
	}
	s := &Store{db: db, rdb: db, dsn: dsn, d: d, now: c.Now, closed: make(chan struct{})}
	if path := strings.TrimPrefix(dsn, "sqlite:"); d == sqliteDialect && path != ":memory:" {
		s.wal = &walSyncer{path: path + "-wal"}
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: cannot reach the %s database: %w", d.name, secret.RedactedError(err))
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrateQueue(ctx); err != nil {
		s.closeQueue()
		db.Close()
		return nil, err
	}
	if path := strings.TrimPrefix(dsn, "sqlite:"); d == sqliteDialect && path != ":memory:" {
		// Opened after the migration, which put the file in WAL mode.
		if s.rdb, err = openSQLiteReaders(path, c.BusyTimeout); err != nil {
			db.Close()
			return nil, err
		}
		s.tokens = newTokenCache(path)
	}
	return s, nil
}

// sqliteReaders is how many read-only connections serve the reads on a request's path.
const sqliteReaders = 4

func openSQLiteReaders(path string, busy time.Duration) (*sql.DB, error) {
	rdb, err := sql.Open("sqlite", path+"?_pragma=busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")&_pragma=query_only(1)")
	if err != nil {
		return nil, fmt.Errorf("store: opening %s for reading: %w", path, err)
	}
	rdb.SetMaxOpenConns(sqliteReaders)
	rdb.SetMaxIdleConns(sqliteReaders)
	rdb.SetConnMaxLifetime(0)
	rdb.SetConnMaxIdleTime(0)
	return rdb, nil
}

func openSQLite(path string, busy time.Duration) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New(`store: "sqlite:" needs a file path, e.g. sqlite:/var/lib/airlock/state.db`)
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store: the SQLite path %q holds '?' or '#': choose a path without them", path)
	}
	memory := path == ":memory:"
	if !memory {
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: creating the directory of %s: %w", path, err)
			}
		}
		// Create the file ourselves so it gets mode 0600; SQLite gives its -wal and -shm files
		// the mode of the database file.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("store: opening %s: %w", path, err)
		}
		f.Close()
	}
	q := "?_pragma=busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")" +
		"&_pragma=foreign_keys(1)&_txlock=immediate"
	if !memory {
		// synchronous=FULL: a commit is on disk (the WAL fsynced) before it returns, so what
		// the host acknowledged — an audit record above all — survives a power loss too.
		q += "&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	}
	db, err := sql.Open("sqlite", path+q)
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	// One connection: SQLite has one writer at a time, and every transaction here begins
	// IMMEDIATE, so within this process writes queue on the pool instead of failing with
	// SQLITE_BUSY; busy_timeout covers other processes. It also keeps ":memory:" one database.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// Close closes the database. Calls made after Close fail.
func (s *Store) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
		close(s.closed)
	}
	s.closeQueue()
	if s.rdb != s.db {
		s.rdb.Close()
	}
	return s.db.Close()
}

// Driver reports the database behind the store: "sqlite" or "postgres".
func (s *Store) Driver() string { return s.d.name }

func (s *Store) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.d.rebind(q), args...)
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.db.QueryContext(ctx, s.d.rebind(q), args...)
}

func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.d.rebind(q), args...)
}

// readRow runs a read on a request's path, on rdb. q must be a constant (see prepared).
func (s *Store) readRow(ctx context.Context, q string, args ...any) (*sql.Row, error) {
	st, err := s.prepared(ctx, s.rdb, q)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(ctx, args...), nil
}

// prepared returns q prepared on db, once per connection (database/sql re-prepares it on each
// connection it runs on): preparing is most of the CPU a small statement takes on SQLite. q
// must be a constant, statements are kept by their text for as long as the store is open.
func (s *Store) prepared(ctx context.Context, db *sql.DB, q string) (*sql.Stmt, error) {
	key := stmtKey{db, q}
	if st, ok := s.stmts.Load(key); ok {
		return st.(*sql.Stmt), nil
	}
	p, err := db.PrepareContext(ctx, s.d.rebind(q))
	if err != nil {
		return nil, err
	}
	st, loaded := s.stmts.LoadOrStore(key, p)
	if loaded {
		p.Close()
	}
	return st.(*sql.Stmt), nil
}

type stmtKey struct {
	db *sql.DB
	q  string
}

// tx wraps a transaction with the store's dialect.
type tx struct {
	*sql.Tx
	d *dialect
}

func (t tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.ExecContext(ctx, t.d.rebind(q), args...)
}

func (t tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.QueryRowContext(ctx, t.d.rebind(q), args...)
}

// lock takes the transaction-scoped lock key on PostgreSQL; on SQLite the transaction already
// holds the database's write lock.
func (t tx) lock(ctx context.Context, key int64) error {
	if t.d.lockStmt == "" {
		return nil
	}
	_, err := t.exec(ctx, t.d.lockStmt, key)
	return err
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx) error) error {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap("beginning a transaction", err)
	}
	if err := fn(tx{sqlTx, s.d}); err != nil {
		sqlTx.Rollback()
		return err
	}
	return wrap("committing", sqlTx.Commit())
}

// affected returns how many rows a statement changed.
func affected(r sql.Result) (int64, error) {
	return r.RowsAffected()
}

// Times are stored as Unix nanoseconds (UTC), 0 for the zero time.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// stamp returns t, or the store's clock when t is zero.
func (s *Store) stamp(t time.Time) time.Time {
	if t.IsZero() {
		return s.now().UTC()
	}
	return t.UTC()
}

// wrap names the operation in an error, leaving ErrNotFound and ErrConflict visible to errors.Is.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// notFound builds an ErrNotFound error with a sentence saying what to do.
func notFound(what, hint string) error {
	if hint != "" {
		return fmt.Errorf("store: %s does not exist (%s): %w", what, hint, ErrNotFound)
	}
	return fmt.Errorf("store: %s does not exist: %w", what, ErrNotFound)
}

// nonNil returns b, or an empty non-nil slice, so a NOT NULL bytes column accepts it.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
