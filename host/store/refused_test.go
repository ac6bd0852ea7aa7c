package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// The dialects tell a database refusing a value from a database failing, as the audit sink
// needs (ErrRecordRefused sets one record aside; anything else fails closed): PostgreSQL's
// answer to a NUL byte in text is a refusal, a closed store's error is not, nor is a unique
// violation (another writer), on either database.
func TestRefusedValueClassified(t *testing.T) {
	ctx := context.Background()
	pg, err := Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = pg.db.ExecContext(ctx, "SELECT $1::text", "a\x00b")
	if err == nil || !pg.d.isRefused(err) {
		t.Errorf("PostgreSQL's refusal of a NUL byte = %v, want a refusal", err)
	}
	if _, err := pg.db.ExecContext(ctx, "CREATE TEMP TABLE u (k TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	_, err = pg.db.ExecContext(ctx, "INSERT INTO u VALUES ('a'), ('a')")
	if err == nil || pg.d.isRefused(err) || !pg.d.isUnique(err) {
		t.Errorf("a unique violation = %v, want it told apart from a refusal", err)
	}
	pg.Close()
	if _, err := pg.db.ExecContext(ctx, "SELECT 1"); err == nil || pg.d.isRefused(err) {
		t.Errorf("a closed store's error = %v, want it not taken for a refusal", err)
	}

	lite, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	if _, err := lite.db.ExecContext(ctx, "CREATE TABLE u (k TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	_, err = lite.db.ExecContext(ctx, "INSERT INTO u VALUES ('a'), ('a')")
	if err == nil || lite.d.isRefused(err) || !lite.d.isUnique(err) {
		t.Errorf("SQLite's unique violation = %v, want it told apart from a refusal", err)
	}
	if _, err := lite.db.ExecContext(ctx, "CREATE TABLE n (k TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := lite.db.ExecContext(ctx, "INSERT INTO n VALUES (NULL)"); err == nil || !lite.d.isRefused(err) {
		t.Errorf("SQLite's NOT NULL refusal = %v, want a refusal", err)
	}
	if postgresDialect.isRefused(errors.New("connection reset")) || sqliteDialect.isRefused(errors.New("database is locked")) {
		t.Error("an error not from the database was taken for a refusal")
	}
}

// A record that is not a JSON object is refused as such (ErrRecordRefused), before any SQL.
func TestAppendAuditRefusesNonObject(t *testing.T) {
	st, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AppendAudit(context.Background(), []byte(`{"kind":"call"}`), []byte(`[1]`)); !errors.Is(err, ErrRecordRefused) {
		t.Errorf("appending a JSON array = %v, want ErrRecordRefused", err)
	}
}
