package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// forEachDSN runs fn once against a fresh SQLite file and once against a fresh PostgreSQL
// database (skipped, with a message, when none is configured).
func forEachDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, "sqlite:"+filepath.Join(t.TempDir(), "state.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, testenv.Postgres(t))
	})
}

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// forEachStore runs fn against an open store of each kind, with an injected clock.
func forEachStore(t *testing.T, fn func(t *testing.T, s *Store, c *clock)) {
	t.Helper()
	forEachDSN(t, func(t *testing.T, dsn string) {
		c := newClock()
		s := openT(t, dsn, &Config{Now: c.Now})
		fn(t, s, c)
	})
}

func openT(t *testing.T, dsn string, cfg *Config) *Store {
	t.Helper()
	s, err := OpenConfig(context.Background(), dsn, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// raw runs a statement directly, as an attacker with database access would.
func raw(t *testing.T, s *Store, q string, args ...any) int64 {
	t.Helper()
	r, err := s.exec(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("raw %q: %v", q, err)
	}
	n, _ := r.RowsAffected()
	return n
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error = %v, want %v", what, err, target)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestDriver(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		s := openT(t, dsn, nil)
		want := DriverSQLite
		if strings.HasPrefix(dsn, "postgres") {
			want = DriverPostgres
		}
		if got := s.Driver(); got != want {
			t.Errorf("Driver() = %q, want %q", got, want)
		}
	})
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := openT(t, dsn, nil)
		must(t, "SetMeta", s.SetMeta(ctx, "k", []byte("v")))
		s.Close()
		for range 3 {
			s = openT(t, dsn, nil)
			var n, max int
			must(t, "count", s.queryRow(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max))
			if n != SchemaVersion() || max != SchemaVersion() {
				t.Fatalf("schema_migrations has %d rows up to %d, want %d", n, max, SchemaVersion())
			}
			got, err := s.GetMeta(ctx, "k")
			if err != nil || string(got) != "v" {
				t.Fatalf("after reopen GetMeta = %q, %v; want data kept", got, err)
			}
			s.Close()
		}
	})
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		s := openT(t, dsn, nil)
		raw(t, s, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, 'from the future', 0)`, SchemaVersion()+1)
		s.Close()
		_, err := Open(context.Background(), dsn)
		wantErr(t, "Open of a newer database", err, ErrSchemaTooNew)
	})
}

// Several replicas starting at once against an empty database must migrate exactly once.
func TestConcurrentOpenPostgres(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			s, err := Open(context.Background(), dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
	s := openT(t, dsn, nil)
	var n int
	must(t, "count", s.queryRow(context.Background(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n))
	if n != SchemaVersion() {
		t.Errorf("schema_migrations has %d rows, want %d", n, SchemaVersion())
	}
}

func TestSQLiteFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nested", "state")
	path := filepath.Join(dir, "airlock.db")
	// A bare path ending in .db is an SQLite file.
	s := openT(t, path, nil)
	if s.Driver() != DriverSQLite {
		t.Fatalf("Driver() = %q for a bare .db path", s.Driver())
	}
	must(t, "SetMeta", s.SetMeta(context.Background(), "k", []byte("v")))
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if mode := fi.Mode().Perm(); mode&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group/other access", p, mode)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("state directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	var mode string
	must(t, "journal_mode", s.queryRow(context.Background(), `PRAGMA journal_mode`).Scan(&mode))
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	var fk int
	must(t, "foreign_keys", s.queryRow(context.Background(), `PRAGMA foreign_keys`).Scan(&fk))
	if fk != 1 {
		t.Errorf("foreign_keys = %d, want 1", fk)
	}
}

func TestSQLiteMemory(t *testing.T) {
	t.Parallel()
	s := openT(t, "sqlite::memory:", nil)
	ctx := context.Background()
	must(t, "SetMeta", s.SetMeta(ctx, "k", []byte("v")))
	if got, err := s.GetMeta(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("GetMeta = %q, %v", got, err)
	}
}

func TestOpenBadDSN(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, dsn := range []string{"", "mysql://x", "state.sqlite", "sqlite:", "sqlite:/tmp/a?b.db", "redis://x.db"} {
		if s, err := Open(ctx, dsn); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", dsn)
		}
	}
}

// The password in a PostgreSQL URL never appears in an error.
func TestOpenPostgresErrorHidesPassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const pw = "CANARY-pw-7f3a9"
	for _, dsn := range []string{
		"postgres://airlock:" + pw + "@127.0.0.1:1/nope?sslmode=disable&connect_timeout=2",
		"postgres://airlock:" + pw + "@[::1/nope", // unparsable
	} {
		s, err := Open(ctx, dsn)
		if err == nil {
			s.Close()
			t.Fatalf("Open of an unreachable server succeeded")
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("Open error leaks the password: %v", err)
		}
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, _ *clock) {
		must(t, "Close", s.Close())
		must(t, "second Close", s.Close())
		if _, err := s.GetMeta(context.Background(), "k"); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("GetMeta after Close = %v, want a closed-database error", err)
		}
	})
}

func TestRebind(t *testing.T) {
	t.Parallel()
	if got, want := postgresDialect.rebind("a = ? AND b = ? OR c = ?"), "a = $1 AND b = $2 OR c = $3"; got != want {
		t.Errorf("rebind = %q, want %q", got, want)
	}
	if got, want := sqliteDialect.rebind("a = ?"), "a = ?"; got != want {
		t.Errorf("sqlite rebind = %q, want %q", got, want)
	}
}

// TestTokenLookupDoesNotWaitForWrites: on SQLite every write goes through one connection, and
// an audit commit holds it until its fsync is done; a token lookup, made for every request a
// server answers, is read on connections of its own and does not queue behind it (but for the
// stamp of its last use, written at most once a minute). It still sees what another process
// committed: a token revoked there is refused at once.
func TestTokenLookupDoesNotWaitForWrites(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "state.db")
	s, other := openT(t, dsn, nil), openT(t, dsn, nil)
	hash := strings.Repeat("ab", 32)
	if err := s.AddToken(ctx, Token{Kind: TokenAgent, Name: "ci-bot", Subject: "acme", SHA256: hash}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LookupToken(ctx, TokenAgent, hash, time.Now()); !ok || err != nil { // stamps its use
		t.Fatalf("LookupToken = %v, %v", ok, err)
	}
	holding, release := make(chan struct{}), make(chan struct{})
	writeDone := make(chan error, 1)
	go func() {
		writeDone <- s.inTx(ctx, func(tx) error { close(holding); <-release; return nil })
	}()
	<-holding
	looked := make(chan error, 1)
	go func() {
		tok, ok, err := s.LookupToken(ctx, TokenAgent, hash, time.Now())
		if err == nil && (!ok || tok.Name != "ci-bot") {
			err = errors.New("the token was not found")
		}
		looked <- err
	}()
	select {
	case err := <-looked:
		if err != nil {
			t.Errorf("LookupToken during a write transaction: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("LookupToken waited for a write transaction to end")
	}
	close(release)
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}

	if err := other.RevokeToken(ctx, TokenAgent, "ci-bot"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LookupToken(ctx, TokenAgent, hash, time.Now()); ok || err != nil {
		t.Errorf("LookupToken after another process revoked the token = %v, %v; want refused", ok, err)
	}
}
