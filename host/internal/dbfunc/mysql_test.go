package dbfunc

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestMySQLCapsStopTheServer: the row cap is applied by the server (sql_select_limit), so a
// function over a billion-row table evaluates a dozen rows; a statement whose own LIMIT lets more
// through, and a byte cap, drop the connection instead of reading the rest, and the server stops.
func TestMySQLCapsStopTheServer(t *testing.T) {
	b := newBackend(t, "mysql")
	// @airlock_n counts the rows the server evaluated, in the session of the only connection.
	db, logs := openConns(t, b.dsn, 1, `
    - name: count_rows
      sql: SELECT seq FROM seq_1_to_1000000000 WHERE (@airlock_n := COALESCE(@airlock_n, 0) + 1) > 0
      max_rows: 10
      timeout_ms: 20000
    - name: own_limit
      sql: SELECT seq, 'own-limit-marker' FROM seq_1_to_1000000000 LIMIT 1000000000
      max_rows: 10
      timeout_ms: 20000
    - name: wide_rows
      sql: SELECT seq, REPEAT('x', 1000), 'wide-marker' FROM seq_1_to_1000000000
      max_rows: 10000
      max_bytes: 5000
      timeout_ms: 20000
`)
	r := call(db, "count_rows")
	if r.Error != nil || len(r.Rows) != 10 || !r.Truncated {
		t.Fatalf("count_rows = %d rows, truncated %v, err %+v; want 10, true", len(r.Rows), r.Truncated, r.Error)
	}
	var n sql.NullFloat64
	if err := db.backend.(*mysqlDB).db.QueryRow("SELECT @airlock_n").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if !n.Valid || n.Float64 > 11 {
		t.Fatalf("the server evaluated %v rows for max_rows 10, want at most 11: the cap did not stop it", n)
	}
	for _, tc := range []struct{ fn, marker string }{{"own_limit", "own-limit-marker"}, {"wide_rows", "wide-marker"}} {
		r := call(db, tc.fn)
		if r.Error != nil || !r.Truncated || len(r.Rows) == 0 {
			t.Fatalf("%s = %d rows, truncated %v, err %+v; want some rows, truncated", tc.fn, len(r.Rows), r.Truncated, r.Error)
		}
		// The server stopped producing: no statement of the function is still running.
		deadline := time.Now().Add(15 * time.Second)
		for {
			var running int
			err := b.admin.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()",
				"%"+tc.marker+"%").Scan(&running)
			if err != nil {
				t.Fatal(err)
			}
			if running == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the statement still runs on the server after the call returned", tc.fn)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The pool recovers from the dropped connection.
	if r := call(db, "count_rows"); r.Error != nil || len(r.Rows) != 10 {
		t.Fatalf("after a dropped connection, count_rows = %+v", r.Error)
	}
	noCanary(t, logs, r)
}

// TestMySQLReadsCannotWrite is the read-only attack on MySQL, where START TRANSACTION READ ONLY
// is not enough: DDL commits the transaction implicitly and runs, and INTO OUTFILE writes a file.
// Each function passes manifest.Parse (one statement); the host and the server refuse them all.
func TestMySQLReadsCannotWrite(t *testing.T) {
	b := newBackend(t, "mysql")
	if _, err := b.admin.Exec("CREATE FUNCTION add_mallory() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO customers (id, name, email) VALUES (66, 'M', 'm@example.com'); RETURN 1; END"); err != nil {
		t.Fatal(err)
	}
	attacks := []string{
		"CREATE TABLE evil (a INT)",
		"DROP TABLE customers",
		"TRUNCATE customers",
		"ALTER TABLE customers ADD COLUMN evil INT",
		"RENAME TABLE customers TO gone",
		"DELETE FROM customers",
		"INSERT INTO customers (id, name, email) VALUES (99, 'Mallory', 'mallory@example.com')",
		"SELECT add_mallory()",
		"SELECT id FROM customers INTO OUTFILE '/tmp/airlock-mysql-outfile'",
		"/*! DROP TABLE customers */ SELECT 1",
		"SET STATEMENT max_statement_time=1 FOR DELETE FROM customers",
		"COMMIT",
		"CALL mysql.rds_kill(1)",
		"DO (SELECT 1)",
		"LOCK TABLES customers WRITE",
		"WITH x AS (SELECT 1) DELETE FROM customers",
		"GRANT ALL ON *.* TO CURRENT_USER",
		"CREATE TEMPORARY TABLE t (a INT)",
	}
	var fns strings.Builder
	for i, a := range attacks {
		fmt.Fprintf(&fns, "    - name: attack_%d\n      sql: %q\n", i, a)
	}
	for _, options := range []string{"", "?multiStatements=true&interpolateParams=true"} {
		db, logs := openConns(t, b.dsn+options, 2, fns.String(), escapeFunctions()...)
		var resps []abi.DBResponse
		for i, a := range attacks {
			r := call(db, fmt.Sprintf("attack_%d", i))
			resps = append(resps, r)
			if r.Error == nil || r.Error.Category != abi.Fatal {
				t.Errorf("read function %q = %+v, want a fatal refusal", a, r)
			}
		}
		resps = append(resps, refuseEscapes(t, db)...)
		untouched(t, b)
		var tables int
		b.admin.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").Scan(&tables)
		if tables != 1 {
			t.Fatalf("the database holds %d tables, want 1 (customers): a DDL statement ran", tables)
		}
		noCanary(t, logs, resps...)
	}
	// The database's own refusal, beneath the host's query check: a write through a query.
	db, _ := openConns(t, b.dsn, 1, "    - {name: sneaky, sql: SELECT add_mallory()}\n")
	f := db.granted["sneaky"]
	if _, err := db.backend.read(context.Background(), f, nil); !refusedAsReadOnly(err) {
		t.Fatalf("a writing function through a read: err = %v, want the database's read-only refusal", err)
	}
}

// TestMySQLParametersBindInOrder: $N become server-bound ? markers in the order they appear,
// a parameter may be used twice, and $1 inside a literal stays text.
func TestMySQLParametersBindInOrder(t *testing.T) {
	b := newBackend(t, "mysql")
	db, _ := openConns(t, b.dsn, 2, `
    - name: twice
      sql: SELECT id, '$1 stays' AS lit FROM customers WHERE (name = $2 OR email = $2) AND id >= $1 ORDER BY id
      params: [{name: min_id, schema: {type: integer}}, {name: who, schema: {type: string}}]
    - name: add_returning
      sql: INSERT INTO customers (id, name, email) VALUES ($1, $2, $3) RETURNING id, name
      params: [{name: id}, {name: name}, {name: email}]
      read_only: false
    - name: slow_write
      sql: UPDATE customers SET name = CONCAT(name, SLEEP(30))
      read_only: false
      timeout_ms: 300
`, manifest.DBFunction{Name: "question", SQL: "SELECT id FROM customers WHERE id = ?", ReadOnly: true, MaxRows: 10, MaxBytes: 1000, TimeoutMS: 1000})
	r := call(db, "twice", 1, "grace@example.com")
	if r.Error != nil || len(r.Rows) != 1 || r.Rows[0][0] != int64(2) || r.Rows[0][1] != "$1 stays" {
		t.Fatalf("twice(1, grace) = %+v, want [[2 \"$1 stays\"]]", r)
	}
	if r := call(db, "twice", 3, "Grace Hopper"); r.Error != nil || len(r.Rows) != 0 {
		t.Fatalf("twice(3, Grace) = %+v, want no rows", r)
	}
	r = call(db, "question")
	wantError(t, r, "database_error", abi.Fatal)
	if !strings.Contains(r.Error.Message, "$1") {
		t.Errorf("a ? marker: message %q does not say to use $1", r.Error.Message)
	}
	r = call(db, "add_returning", 6, "Radia Perlman", "radia@example.com")
	if r.Error != nil || r.Affected != 1 || len(r.Rows) != 1 || r.Rows[0][1] != "Radia Perlman" {
		t.Fatalf("add_returning = %+v, want affected 1 and the row", r)
	}
	// A write past its timeout is stopped by the server (max_statement_time) and rolled back.
	r = call(db, "slow_write")
	wantError(t, r, abi.CodeTimeout, abi.Retryable)
	var changed int
	b.admin.QueryRow("SELECT COUNT(*) FROM customers WHERE name LIKE '%0'").Scan(&changed)
	if changed != 0 {
		t.Fatalf("%d rows changed by a write that timed out", changed)
	}
}

// TestMySQLPoolIsBounded: a connector's calls never hold more connections than MaxConns.
func TestMySQLPoolIsBounded(t *testing.T) {
	b := newBackend(t, "mysql")
	db, _ := openConns(t, b.dsn, 2, "    - {name: nap, sql: SELECT SLEEP(0.3) AS s}\n")
	user, _ := url.Parse(b.dsn)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	most, done := 0, make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int
			b.admin.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", user.User.Username()).Scan(&n)
			most = max(most, n)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := call(db, "nap"); r.Error != nil {
				t.Errorf("nap: %+v", r.Error)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-done
	if most == 0 || most > 2 {
		t.Fatalf("the server saw up to %d connections of the connector, want 1..2 (MaxConns 2)", most)
	}
}

// TestMySQLDSNPasswordForms: a password with URL-special characters reaches the server intact
// (the mysql:// URL is converted to the driver's form), and neither a wrong one nor any form of
// the right one shows in a response or the log.
func TestMySQLDSNPasswordForms(t *testing.T) {
	password := canary + "@/:?#%'x"
	dsn, _ := testenv.MariaDBUser(t, password)
	db, logs := openConns(t, dsn+"?multiStatements=true", 1, "    - {name: one, sql: SELECT 1 AS n}\n")
	if r := call(db, "one"); r.Error != nil || len(r.Rows) != 1 || r.Rows[0][0] != int64(1) {
		t.Fatalf("one = %+v", r)
	}
	escaped := url.UserPassword("x", password).String()[2:]
	for _, form := range []string{password, escaped} {
		if got := db.scrub.String("driver said " + form); strings.Contains(got, canary) {
			t.Errorf("the scrubber does not know the password as %q", form)
		}
	}
	if !strings.Contains(logs.String(), "multiStatements") {
		t.Errorf("a DSN asking for multiStatements was not warned about")
	}
	wrong := strings.Replace(dsn, url.UserPassword("x", password).String()[2:], url.UserPassword("x", canary+"-wrong").String()[2:], 1)
	db2, logs2 := openConns(t, wrong, 1, "    - {name: one, sql: SELECT 1 AS n}\n")
	r := call(db2, "one")
	wantError(t, r, "database_error", abi.Fatal)
	if !strings.Contains(r.Error.Message, "sign in") {
		t.Errorf("wrong password: message %q does not say the host could not sign in", r.Error.Message)
	}
	noCanary(t, logs, r)
	noCanary(t, logs2, r)
}
