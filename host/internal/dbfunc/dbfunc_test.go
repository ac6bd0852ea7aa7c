package dbfunc

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// canary is the DSN's password (PostgreSQL; the test server trusts loopback, so any password
// works) or part of the database file's path (SQLite). It must never come out.
const canary = "CANARY-dsn-7Qx2vLp9"

const schema = `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, plan TEXT NOT NULL DEFAULT 'free');
INSERT INTO customers (id, name, email) VALUES
 (1, 'Ada Lovelace', 'ada@example.com'), (2, 'Grace Hopper', 'grace@example.com'),
 (3, 'Alan Turing', 'alan@example.com'), (4, 'Edsger Dijkstra', 'edsger@example.com'),
 (5, 'Barbara Liskov', 'barbara@example.com');`

// functions are the test's database functions; %SLOW% is the backend's slow statement.
const functions = `
abi: 1
name: testdb
version: 1.0.0
publisher: test
description: test
module: {path: dbfunc.wasm}
tools:
  - {name: t, function: find_customer, description: t, input_schema: {type: object}}
database:
  functions:
    - name: find_customer
      sql: SELECT id, name, email FROM customers WHERE email = $1
      params: [{name: email, schema: {type: string, maxLength: 200}}]
    - name: by_id
      sql: SELECT id, name FROM customers WHERE id = $1
      params: [{name: id}]
    - name: all_customers
      sql: SELECT id, name FROM customers ORDER BY id
      max_rows: 2
    - name: all_five
      sql: SELECT id, name FROM customers ORDER BY id
      max_rows: 5
    - name: all_customers_small
      sql: SELECT id, name, email FROM customers ORDER BY id
      max_bytes: 150
    - name: slow
      sql: "%SLOW%"
      timeout_ms: 300
    - name: sneaky_write
      sql: INSERT INTO customers (id, name, email) VALUES (99, 'Mallory', 'mallory@example.com') RETURNING id
    - name: add_customer
      sql: INSERT INTO customers (id, name, email) VALUES ($1, $2, $3)
      params: [{name: id, schema: {type: integer}}, {name: name, schema: {type: string}}, {name: email, schema: {type: string}}]
      read_only: false
    - name: add_two
      sql: INSERT INTO customers (id, name, email) VALUES ($1, 'One', $2), ($1 + 1, 'Two', $2)
      params: [{name: id, schema: {type: integer}}, {name: email, schema: {type: string}}]
      read_only: false
    - name: upgrade_all
      sql: UPDATE customers SET plan = 'pro' WHERE id <= $1 RETURNING id
      params: [{name: max_id, schema: {type: integer}}]
      read_only: false
      max_rows: 2
    - name: secret_report
      sql: SELECT id FROM customers
`

// testDB is one database under test.
type testDB struct {
	name  string
	dsn   string  // with the canary
	admin *sql.DB // unrestricted, for setup and checks
}

var slowSQL = map[string]string{
	"postgres": "SELECT pg_sleep(30)",
	"mysql":    "SELECT SLEEP(30)",
	"sqlite":   "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
}

func newBackend(t *testing.T, name string) *testDB {
	t.Helper()
	b := &testDB{name: name}
	switch name {
	case "sqlite":
		dir := filepath.Join(t.TempDir(), canary)
		path := filepath.Join(dir, "crm.db")
		if err := mkdir(dir); err != nil {
			t.Fatal(err)
		}
		admin, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		b.admin, b.dsn = admin, "sqlite:"+path
	case "postgres":
		u, err := url.Parse(testenv.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		admin, err := sql.Open("pgx", u.String())
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), canary)
		b.admin, b.dsn = admin, u.String()
	case "mysql":
		b.dsn, b.admin = testenv.MariaDBUser(t, canary)
	}
	t.Cleanup(func() { b.admin.Close() })
	ddl := schema
	if name == "mysql" { // a TEXT key is a hash index in MariaDB, whose concurrent inserts deadlock
		ddl = strings.Replace(ddl, "email TEXT", "email VARCHAR(200)", 1)
	}
	for _, stmt := range strings.Split(ddl, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := b.admin.Exec(stmt); err != nil {
			t.Fatalf("schema: %v", err)
		}
	}
	return b
}

func (b *testDB) count(t *testing.T) int {
	t.Helper()
	var n int
	if err := b.admin.QueryRow("SELECT count(*) FROM customers").Scan(&n); err != nil {
		t.Fatalf("counting customers: %v", err)
	}
	return n
}

func declared(t *testing.T, be string) []manifest.DBFunction {
	t.Helper()
	src := strings.Replace(functions, "%SLOW%", slowSQL[be], 1)
	m, err := manifest.Parse("testdb.yaml", []byte(src))
	if err != nil {
		t.Fatalf("test manifest: %v", err)
	}
	return m.Database.Functions
}

// open opens a DB granting the named functions (all when none are named).
func open(t *testing.T, b *testDB, grant ...string) (*DB, *bytes.Buffer) {
	t.Helper()
	fns := declared(t, b.name)
	granted := map[string]*manifest.DBFunction{}
	for i := range fns {
		if len(grant) == 0 || contains(grant, fns[i].Name) {
			granted[fns[i].Name] = &fns[i]
		}
	}
	var logs bytes.Buffer
	db, err := Open(Config{DSN: secret.New(b.dsn), Declared: fns, Granted: granted, Scrubber: scrub.New(),
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, &logs
}

func call(db *DB, fn string, params ...any) abi.DBResponse {
	req, _ := json.Marshal(map[string]any{"function": fn, "params": params})
	return db.Call(context.Background(), req)
}

// eachBackend runs test against SQLite, PostgreSQL and MariaDB.
func eachBackend(t *testing.T, test func(t *testing.T, b *testDB)) {
	for _, name := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, newBackend(t, name))
		})
	}
}

// noCanary fails when the DSN secret appears in any response or log.
func noCanary(t *testing.T, logs *bytes.Buffer, resps ...abi.DBResponse) {
	t.Helper()
	for i, r := range resps {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), canary) {
			t.Errorf("response %d holds the DSN secret: %s", i, b)
		}
	}
	if logs != nil && strings.Contains(logs.String(), canary) {
		t.Errorf("the log holds the DSN secret:\n%s", logs)
	}
}

func wantError(t *testing.T, r abi.DBResponse, code string, cat abi.Category) {
	t.Helper()
	if r.Error == nil {
		t.Fatalf("response = %+v, want error %s (%s)", r, code, cat)
	}
	if r.Error.Code != code || r.Error.Category != cat {
		t.Fatalf("error = %s/%s %q, want %s/%s", r.Error.Code, r.Error.Category, r.Error.Message, code, cat)
	}
}

func TestInjectionThroughParametersStaysData(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *testDB) {
		db, logs := open(t, b)
		var resps []abi.DBResponse
		for _, email := range []string{
			"'; DROP TABLE customers; --",
			"x' OR '1'='1",
			"ada@example.com' --",
			"ada@example.com\x00' OR 1=1 --",
		} {
			r := call(db, "find_customer", email)
			resps = append(resps, r)
			if r.Error != nil && r.Error.Code != abi.CodeInvalidArguments {
				t.Errorf("find_customer(%q) error = %+v, want rows or invalid_arguments", email, r.Error)
			}
			if len(r.Rows) != 0 {
				t.Errorf("find_customer(%q) = %d rows, want 0: the parameter was not treated as data", email, len(r.Rows))
			}
		}
		// A number-shaped injection into an integer comparison: no rows (SQLite compares the text)
		// or a refusal (PostgreSQL will not read it as an integer), never every row.
		// MySQL reads the text's leading number (1, with a warning): one row at most.
		r := call(db, "by_id", "1 OR 1=1")
		resps = append(resps, r)
		if len(r.Rows) > 1 || len(r.Rows) == 1 && b.name != "mysql" {
			t.Errorf("by_id(\"1 OR 1=1\") = %d rows, want 0", len(r.Rows))
		}
		if r.Error != nil && r.Error.Code != abi.CodeInvalidArguments {
			t.Errorf("by_id(\"1 OR 1=1\") error = %+v, want invalid_arguments", r.Error)
		}
		if n := b.count(t); n != 5 {
			t.Fatalf("customers = %d after the injection attempts, want 5", n)
		}
		// The real value still works, so the zero rows above are not an artefact.
		r = call(db, "find_customer", "ada@example.com")
		if r.Error != nil || len(r.Rows) != 1 || r.Rows[0][1] != "Ada Lovelace" {
			t.Fatalf("find_customer(ada) = %+v, want Ada's row", r)
		}
		noCanary(t, logs, resps...)
	})
}

func TestSlowQueryIsCancelledAtItsTimeout(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *testDB) {
		db, logs := open(t, b)
		r := call(db, "slow")
		wantError(t, r, abi.CodeTimeout, abi.Retryable)
		if !strings.Contains(r.Error.Message, "300 ms") {
			t.Errorf("message %q does not name the function's limit", r.Error.Message)
		}
		if b.name == "postgres" {
			// The server cancelled the statement itself (statement_timeout): nothing still sleeps.
			var n int
			err := b.admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()`).Scan(&n)
			if err != nil || n != 0 {
				t.Fatalf("pg_sleep still running in %d backends (err %v), want 0", n, err)
			}
		}
		// The pool is still usable after the cancellation.
		if r := call(db, "find_customer", "ada@example.com"); r.Error != nil || len(r.Rows) != 1 {
			t.Fatalf("after the timeout, find_customer = %+v", r)
		}
		noCanary(t, logs, r)
	})
}

func TestWriteInReadFunctionIsRefusedByTheDatabase(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *testDB) {
		db, logs := open(t, b)
		// Bypass the classification: the backend's own error must be the database's refusal.
		fns := declared(t, b.name)
		var f *manifest.DBFunction
		for i := range fns {
			if fns[i].Name == "sneaky_write" {
				f = &fns[i]
			}
		}
		_, err := db.backend.read(context.Background(), f, nil)
		if !refusedAsReadOnly(err) {
			t.Fatalf("sneaky write through the read path: err = %v, want the database's read-only refusal", err)
		}
		r := call(db, "sneaky_write")
		wantError(t, r, "database_error", abi.Fatal)
		if !strings.Contains(r.Error.Message, "read-only") {
			t.Errorf("message %q does not say the function is read-only", r.Error.Message)
		}
		if n := b.count(t); n != 5 {
			t.Fatalf("customers = %d, want 5: the write in a read function went through", n)
		}
		noCanary(t, logs, r)
	})
}

// refusedAsReadOnly reports whether err is the database refusing a write in a read-only
// transaction or connection.
func refusedAsReadOnly(err error) bool {
	if err == nil {
		return false
	}
	e := (&DB{scrub: scrub.New(), logger: slog.New(slog.DiscardHandler)}).classifyQuiet(context.Background(), &manifest.DBFunction{Name: "x", ReadOnly: true}, err)
	return strings.Contains(e.Message, "declared read-only")
}

func TestRowAndByteCapsTruncate(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *testDB) {
		db, _ := open(t, b)
		r := call(db, "all_customers")
		if r.Error != nil || len(r.Rows) != 2 || !r.Truncated {
			t.Fatalf("all_customers (max_rows 2 of 5) = %d rows, truncated %v, err %+v; want 2, true", len(r.Rows), r.Truncated, r.Error)
		}
		if r.Rows[0][0] != float64(1) && r.Rows[0][0] != int64(1) {
			t.Errorf("first row = %v, want id 1 first", r.Rows[0])
		}
		// Exactly max_rows rows is not truncated.
		r = call(db, "all_five")
		if r.Error != nil || len(r.Rows) != 5 || r.Truncated {
			t.Fatalf("all_five (max_rows 5 of 5) = %d rows, truncated %v, err %+v; want 5, false", len(r.Rows), r.Truncated, r.Error)
		}
		r = call(db, "all_customers_small")
		if r.Error != nil || !r.Truncated || len(r.Rows) == 0 || len(r.Rows) >= 5 {
			t.Fatalf("all_customers_small (max_bytes 150) = %d rows, truncated %v, err %+v; want some but not all, truncated", len(r.Rows), r.Truncated, r.Error)
		}
		rows, _ := json.Marshal(r.Rows)
		if len(rows) > 150 {
			t.Errorf("rows are %d bytes of JSON, over max_bytes 150", len(rows))
		}
	})
}

func TestOnlyGrantedFunctionsRun(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *testDB) {
		db, _ := open(t, b, "find_customer") // secret_report and the writes are not granted
		for _, tc := range []struct{ fn, says string }{
			{"secret_report", "not granted"},
			{"add_customer", "allow_writes"},
			{"no_such_function", "no database function"},
			{"FIND_CUSTOMER", "no database function"},
			{"find_customer; DROP TABLE customers", "no database function"},
		} {
			r := call(db, tc.fn)
			wantError(t, r, abi.CodeNotGranted, abi.Fatal)
			if !strings.Contains(r.Error.Message, tc.says) {
				t.Errorf("%s: message %q does not say %q", tc.fn, r.Error.Message, tc.says)
			}
		}
		if n := b.count(t); n != 5 {
			t.Fatalf("customers = %d, want 5", n)
		}
	})
}

func TestWrites(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *testDB) {
		db, logs := open(t, b)
		r := call(db, "add_customer", 6, "Radia Perlman", "radia@example.com")
		if r.Error != nil || r.Affected != 1 {
			t.Fatalf("add_customer = %+v, want affected 1", r)
		}
		if n := b.count(t); n != 6 {
			t.Fatalf("customers = %d after add_customer, want 6 (not committed?)", n)
		}
		// A duplicate is a correctable conflict that names no data.
		r = call(db, "add_customer", 7, "Someone", "radia@example.com")
		wantError(t, r, "conflict", abi.Correctable)
		if strings.Contains(r.Error.Message, "radia") {
			t.Errorf("message %q echoes row data", r.Error.Message)
		}
		// A statement that fails half-way leaves nothing behind: the transaction rolls back.
		r = call(db, "add_two", 5, "twice@example.com") // id 5 exists: the first row conflicts…
		if r.Error == nil {
			t.Fatalf("add_two over an existing id = %+v, want an error", r)
		}
		r = call(db, "add_two", 10, "same@example.com") // …and here the second row's email does
		if r.Error == nil {
			t.Fatalf("add_two with a duplicate email = %+v, want an error", r)
		}
		if n := b.count(t); n != 6 {
			t.Fatalf("customers = %d after failed writes, want 6 (a partial write was committed)", n)
		}
		if b.name == "mysql" {
			noCanary(t, logs, r)
			return // MariaDB has no UPDATE … RETURNING: see TestMySQLInsertReturning
		}
		// RETURNING: rows capped, affected counts them all.
		r = call(db, "upgrade_all", 4)
		if r.Error != nil || r.Affected != 4 || len(r.Rows) != 2 || !r.Truncated {
			t.Fatalf("upgrade_all(4) = rows %d, affected %d, truncated %v, err %+v; want 2, 4, true", len(r.Rows), r.Affected, r.Truncated, r.Error)
		}
		var pro int
		b.admin.QueryRow("SELECT count(*) FROM customers WHERE plan = 'pro'").Scan(&pro)
		if pro != 4 {
			t.Fatalf("pro customers = %d, want 4 (the write was cut with the rows)", pro)
		}
		noCanary(t, logs, r)
	})
}

func TestParametersAreValidated(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *testDB) {
		db, _ := open(t, b)
		for _, tc := range []struct {
			name   string
			fn     string
			params []any
			says   string
		}{
			{"too few", "add_customer", []any{8, "x"}, "takes 3 parameters (id, name, email), got 2"},
			{"too many", "find_customer", []any{"a", "b"}, "takes 1 parameters"},
			{"wrong type", "add_customer", []any{"8", "x", "y"}, "parameter id"},
			{"null", "find_customer", []any{nil}, "parameter email"},
			{"too long", "find_customer", []any{strings.Repeat("a", 201)}, "parameter email"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := call(db, tc.fn, tc.params...)
				wantError(t, r, abi.CodeInvalidArguments, abi.Correctable)
				if !strings.Contains(r.Error.Message, tc.says) {
					t.Errorf("message %q does not say %q", r.Error.Message, tc.says)
				}
			})
		}
		for _, req := range []string{``, `[]`, `{"function": 1}`, `{"params": []}`, `{"function":"find_customer","params":{}}`} {
			r := db.Call(context.Background(), []byte(req))
			wantError(t, r, abi.CodeBadRequest, abi.Fatal)
		}
		if n := b.count(t); n != 5 {
			t.Fatalf("customers = %d, want 5", n)
		}
	})
}

func TestDSNNeverLeaks(t *testing.T) {
	// Unreachable servers and missing files, with the canary in the DSN.
	for _, dsn := range []string{
		"postgres://airlock:" + canary + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"postgresql://" + canary + ":" + canary + "@127.0.0.1:1/" + canary + "?sslmode=disable",
		"mysql://airlock:" + canary + "@127.0.0.1:1/" + canary + "?timeout=2s",
		"mariadb://" + canary + ":" + canary + "@127.0.0.1:1/db",
		"sqlite:" + filepath.Join(t.TempDir(), canary, "missing.db"),
	} {
		fns := declared(t, "sqlite")
		var logs bytes.Buffer
		sc := scrub.New()
		db, err := Open(Config{DSN: secret.New(dsn), Declared: fns, Granted: map[string]*manifest.DBFunction{"find_customer": &fns[0]},
			Scrubber: sc, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))})
		if err != nil {
			t.Fatal(err)
		}
		r := call(db, "find_customer", "ada@example.com")
		db.Close()
		if r.Error == nil {
			t.Fatalf("a call to an unreachable database succeeded: %+v", r)
		}
		if !strings.Contains(logs.String(), "database function failed") {
			t.Errorf("the failure was not logged: %q", logs.String())
		}
		noCanary(t, &logs, r)
		if got := sc.String("x " + dsn); strings.Contains(got, canary) {
			t.Errorf("the scrubber was not told the DSN")
		}
		if got := sc.String("x " + canary); !strings.HasPrefix(dsn, "sqlite") && strings.Contains(got, canary) {
			t.Errorf("the scrubber was not told the DSN's password")
		}
	}
	// Malformed DSNs: the error never quotes them.
	for _, dsn := range []string{"mysql://u:" + canary + "@h:port/db", "mysql://u:" + canary + "@h/db/x", "postgres://u:" + canary + "@h:port/db", "sqlite:", "sqlite:" + canary + "?mode=rw", canary} {
		_, err := Open(Config{DSN: secret.New(dsn)})
		if !errors.Is(err, ErrDSN) {
			t.Errorf("Open(malformed) = %v, want ErrDSN", err)
		}
		if err != nil && strings.Contains(err.Error(), canary) {
			t.Errorf("Open error quotes the DSN: %v", err)
		}
	}
	if _, err := Open(Config{}); !errors.Is(err, ErrNoDSN) {
		t.Errorf("Open without a DSN = %v, want ErrNoDSN", err)
	}
}

// TestHammer runs reads and writes concurrently on one DB (run with -race).
func TestHammer(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *testDB) {
		db, _ := open(t, b)
		var wg sync.WaitGroup
		errs := make(chan string, 100)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					if r := call(db, "find_customer", "grace@example.com"); r.Error != nil || len(r.Rows) != 1 {
						errs <- fmt.Sprintf("read: %+v", r)
					}
					id := 1000 + g*100 + i
					if r := call(db, "add_customer", id, "n", fmt.Sprintf("u%d@example.com", id)); r.Error != nil || r.Affected != 1 {
						errs <- fmt.Sprintf("write: %+v", r.Error)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if n := b.count(t); n != 5+80 {
			t.Fatalf("customers = %d, want 85", n)
		}
	})
}

func TestValuesEncodeAsJSON(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{int64(42), `42`},
		{int64(1<<53 + 1), `"9007199254740993"`},
		{[]byte("12.50"), `"12.50"`},
		{nil, `null`},
		{true, `true`},
	} {
		b, err := json.Marshal(jsonValue(tc.in))
		if err != nil || string(b) != tc.want {
			t.Errorf("jsonValue(%#v) = %s, %v; want %s", tc.in, b, err, tc.want)
		}
	}
	for _, tc := range []struct {
		raw  string
		want any
	}{
		{`9007199254740993`, int64(9007199254740993)},
		{`1.5`, 1.5},
		{`"x"`, "x"},
		{`{"a":1}`, `{"a":1}`},
		{`null`, nil},
	} {
		got, err := bindValue(json.RawMessage(tc.raw))
		if err != nil || got != tc.want {
			t.Errorf("bindValue(%s) = %#v, %v; want %#v", tc.raw, got, err, tc.want)
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func mkdir(dir string) error { return os.MkdirAll(dir, 0o700) }
