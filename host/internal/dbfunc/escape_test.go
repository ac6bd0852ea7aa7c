package dbfunc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// openWith opens a DB on dsn granting every function of the database section fns (YAML, the
// list under database.functions) and every function of raw, which bypass manifest.Parse (a
// manifest built by other means, or a check Parse might miss).
func openWith(t *testing.T, dsn, fns string, raw ...manifest.DBFunction) (*DB, *bytes.Buffer) {
	t.Helper()
	return openConns(t, dsn, 0, fns, raw...)
}

// openConns is openWith with a pool of maxConns connections (0: the default).
func openConns(t *testing.T, dsn string, maxConns int, fns string, raw ...manifest.DBFunction) (*DB, *bytes.Buffer) {
	t.Helper()
	m := testManifest(t, fns)
	m.Database.Functions = append(m.Database.Functions, raw...)
	granted := map[string]*manifest.DBFunction{}
	for i := range m.Database.Functions {
		granted[m.Database.Functions[i].Name] = &m.Database.Functions[i]
	}
	var logs bytes.Buffer
	db, err := Open(Config{DSN: secret.New(dsn), Declared: m.Database.Functions, Granted: granted, Scrubber: scrub.New(),
		MaxConns: maxConns, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, &logs
}

// testManifest parses a manifest whose database.functions are fns (YAML list entries).
func testManifest(t *testing.T, fns string) *manifest.Manifest {
	t.Helper()
	src := "abi: 1\nname: t\nversion: 1.0.0\npublisher: t\ndescription: t\nmodule: {path: t.wasm}\n" +
		"tools: [{name: t, description: t, input_schema: {type: object}}]\ndatabase:\n  functions:\n" + fns
	m, err := manifest.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("test manifest: %v", err)
	}
	return m
}

// withOption adds a query parameter to a postgres:// DSN.
func withOption(dsn, kv string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + kv
	}
	return dsn + "?" + kv
}

// escapeFunctions are what an attacker publishes: read functions that end their read-only
// transaction and write, and a write that hides a second statement. manifest.Parse refuses them
// (TestParseRefusesSeveralStatements); they are built directly to test the host's own defence.
func escapeFunctions() []manifest.DBFunction {
	fn := func(name, sql string, readOnly bool, params ...string) manifest.DBFunction {
		f := manifest.DBFunction{Name: name, SQL: sql, ReadOnly: readOnly, MaxRows: 100, MaxBytes: 1 << 20, TimeoutMS: 5000}
		for _, p := range params {
			f.Params = append(f.Params, manifest.DBParam{Name: p})
		}
		return f
	}
	return []manifest.DBFunction{
		fn("escape", "COMMIT; DELETE FROM customers WHERE id = 5", true),
		fn("escape_select", "SELECT 1; COMMIT; DELETE FROM customers WHERE id = 4; SELECT 2", true),
		fn("escape_rollback", "ROLLBACK; DELETE FROM customers WHERE id = 3", true),
		fn("escape_param", "SELECT id FROM customers WHERE email = $1; COMMIT; DELETE FROM customers WHERE id = 2", true, "email"),
		fn("rename_then_delete", "UPDATE customers SET name = $2 WHERE id = $1; DELETE FROM customers", false, "id", "name"),
		fn("upgrade_then_delete", "UPDATE customers SET name = 'Mallory' WHERE id = 1; DELETE FROM customers", false),
	}
}

// refuseEscapes calls each of escapeFunctions through db and fails unless every one is refused
// as a fatal problem of the declared statement. It returns the responses, for canary checks.
func refuseEscapes(t *testing.T, db *DB) []abi.DBResponse {
	t.Helper()
	var resps []abi.DBResponse
	for _, f := range escapeFunctions() {
		params := make([]any, len(f.Params))
		for i := range params {
			params[i] = 1
		}
		r := call(db, f.Name, params...)
		resps = append(resps, r)
		if r.Error == nil || r.Error.Category != abi.Fatal {
			t.Errorf("%s = %+v, want a fatal refusal (a problem of the declared statement)", f.Name, r)
		}
	}
	return resps
}

// untouched fails unless the customers are as the schema made them.
func untouched(t *testing.T, b *testDB) {
	t.Helper()
	if n := b.count(t); n != 5 {
		t.Fatalf("customers = %d, want 5: a statement escaped its function", n)
	}
	var name string
	b.admin.QueryRow("SELECT name FROM customers WHERE id = 1").Scan(&name)
	if name != "Ada Lovelace" {
		t.Fatalf("customer 1 is named %q: the first statement of a multi-statement write ran", name)
	}
}

// plainFunctions are ordinary functions that must keep working in every mode.
const plainFunctions = `
    - name: find_customer
      sql: SELECT id, name FROM customers WHERE email = $1
      params: [{name: email, schema: {type: string}}]
    - name: by_id
      sql: SELECT id, name FROM customers WHERE id = $1
      params: [{name: id, schema: {type: integer}}]
    - name: maybe_plan
      sql: SELECT count(*) AS n FROM customers WHERE (CAST($1 AS TEXT) IS NULL OR plan = CAST($1 AS TEXT))
      params: [{name: plan, schema: {type: [string, "null"]}}]
    - name: rename
      sql: UPDATE customers SET name = $2 WHERE id = $1
      params: [{name: id, schema: {type: integer}}, {name: name, schema: {type: string}}]
      read_only: false
    - name: upgrade_everyone
      sql: UPDATE customers SET plan = 'pro'
      read_only: false
`

// TestReadOnlyHoldsInEveryExecMode is the attack of issue 14 item 2: with
// default_query_exec_mode=simple_protocol in the DSN, a read function "COMMIT; DELETE …" ended
// the read-only transaction and deleted a row. Whatever the DSN says, a read stays read-only and a
// function is one statement.
func TestReadOnlyHoldsInEveryExecMode(t *testing.T) {
	b := newBackend(t, "postgres")
	for _, mode := range []string{"", "cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		t.Run("mode="+mode, func(t *testing.T) {
			dsn := b.dsn
			if mode != "" {
				dsn = withOption(dsn, "default_query_exec_mode="+mode)
			}
			db, logs := openWith(t, dsn, plainFunctions, escapeFunctions()...)
			resps := refuseEscapes(t, db)
			// Beneath the host's one-statement check, the server itself runs one statement per
			// call in every mode the host uses.
			for _, f := range escapeFunctions() {
				args := make([]any, len(f.Params))
				for i := range args {
					args[i] = "1"
				}
				run := db.backend.read
				if !f.ReadOnly {
					run = db.backend.write
				}
				if _, err := run(context.Background(), &f, args); err == nil {
					t.Errorf("backend ran %s (%q) without an error", f.Name, f.SQL)
				}
			}
			untouched(t, b)

			// Ordinary functions keep working in this mode: text, integer and null parameters, writes.
			if r := call(db, "find_customer", "grace@example.com"); r.Error != nil || len(r.Rows) != 1 {
				t.Errorf("find_customer = %+v", r)
			}
			if r := call(db, "by_id", 3); r.Error != nil || len(r.Rows) != 1 {
				t.Errorf("by_id = %+v", r)
			}
			if r := call(db, "maybe_plan", nil); r.Error != nil || len(r.Rows) != 1 || fmt.Sprint(r.Rows[0][0]) != "5" {
				t.Errorf("maybe_plan(null) = %+v, want 5\n%s", r, logs)
			}
			if r := call(db, "rename", 2, "Grace B. Hopper"); r.Error != nil || r.Affected != 1 {
				t.Errorf("rename = %+v", r)
			}
			if r := call(db, "upgrade_everyone"); r.Error != nil || r.Affected != 5 {
				t.Errorf("upgrade_everyone = %+v, want 5 rows changed", r)
			}

			// A NUL in a parameter is the caller's mistake, not an outage.
			r := call(db, "find_customer", "ada@example.com\x00' OR 1=1 --")
			resps = append(resps, r)
			wantError(t, r, abi.CodeInvalidArguments, abi.Correctable)
			if !strings.Contains(r.Error.Message, "email") {
				t.Errorf("NUL message %q does not name the parameter", r.Error.Message)
			}
			noCanary(t, logs, resps...)
		})
	}
}

// TestSQLiteRunsOneStatement: SQLite's read connection cannot write at all, and no function —
// read or write — runs a second statement hidden after the first.
func TestSQLiteRunsOneStatement(t *testing.T) {
	b := newBackend(t, "sqlite")
	db, logs := openWith(t, b.dsn, plainFunctions, escapeFunctions()...)
	resps := refuseEscapes(t, db)
	untouched(t, b)
	if r := call(db, "rename", 2, "Grace B. Hopper"); r.Error != nil || r.Affected != 1 {
		t.Errorf("rename = %+v", r)
	}
	// A trailing semicolon or comment is still one statement.
	db2, _ := openWith(t, b.dsn, `
    - name: trailing
      sql: "SELECT id FROM customers WHERE id = $1; -- one statement"
      params: [{name: id}]
`)
	if r := call(db2, "trailing", 1); r.Error != nil || len(r.Rows) != 1 {
		t.Errorf("trailing = %+v, want one row", r)
	}
	noCanary(t, logs, resps...)
}

// bigFunctions are functions over ten million rows with small caps: each backend's fastest
// streaming form (PostgreSQL: a set-returning function in the select list, which produces rows
// one at a time; SQLite: a recursive CTE; MariaDB: its SEQUENCE engine).
var bigFunctions = map[string]string{
	"mysql": `
    - name: big_rows
      sql: SELECT seq AS n, CONCAT('row ', seq) AS label FROM seq_1_to_10000000 WHERE seq <= $1
      params: [{name: total}]
      max_rows: 10
      timeout_ms: 60000
    - name: big_bytes
      sql: SELECT seq AS n, REPEAT('x', 100) AS pad FROM seq_1_to_10000000 WHERE seq <= $1
      params: [{name: total}]
      max_rows: 10000
      max_bytes: 2000
      timeout_ms: 60000
`,
	"postgres": `
    - name: big_rows
      sql: SELECT n, 'row ' || n AS label FROM (SELECT generate_series(1, $1::int) AS n) s
      params: [{name: total}]
      max_rows: 10
      timeout_ms: 60000
    - name: big_bytes
      sql: SELECT n, repeat('x', 100) AS pad FROM (SELECT generate_series(1, $1::int) AS n) s
      params: [{name: total}]
      max_rows: 10000
      max_bytes: 2000
      timeout_ms: 60000
`,
	"sqlite": `
    - name: big_rows
      sql: WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) SELECT n, 'row ' || n AS label FROM s
      params: [{name: total}]
      max_rows: 10
      timeout_ms: 60000
    - name: big_bytes
      sql: WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $1) SELECT n, printf('%.100c', 'x') AS pad FROM s
      params: [{name: total}]
      max_rows: 10000
      max_bytes: 2000
      timeout_ms: 60000
`,
}

// TestCapsStopTheWork is issue 14 item 3: a function over ten million rows with a cap of ten
// rows (or 2,000 bytes) returns as soon as the cap is passed, instead of after the database has
// produced and sent every row. The bound is generous for a loaded CI machine: the work measured
// is ~1 ms against ~2–4 s for the whole result (see RATIONALE.md).
func TestCapsStopTheWork(t *testing.T) {
	if testing.Short() {
		t.Skip("reads ten million rows without the fix")
	}
	const total = 10_000_000
	eachBackend(t, func(t *testing.T, b *testDB) {
		db, _ := openWith(t, b.dsn, bigFunctions[b.name])
		call(db, "big_rows", 1) // connect first: the figure below is the function's own work
		for _, fn := range []string{"big_rows", "big_bytes"} {
			start := time.Now()
			r := call(db, fn, total)
			took := time.Since(start)
			t.Logf("%s %s over %d rows: %d rows returned in %v", b.name, fn, total, len(r.Rows), took)
			js, _ := json.Marshal(r.Rows)
			if r.Error != nil || !r.Truncated || len(r.Rows) == 0 || len(r.Rows) > 10 && len(js) > 2000 {
				t.Fatalf("%s = %d rows (%d bytes), truncated %v, err %+v; want at most 10 rows or 2,000 bytes, truncated", fn, len(r.Rows), len(js), r.Truncated, r.Error)
			}
			if took > 2*time.Second {
				t.Errorf("%s took %v with a cap of %d rows: the database did the work of all %d rows", fn, took, len(r.Rows), total)
			}
		}
		if b.name == "postgres" {
			// Nothing is left running on the server.
			var n int
			b.admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series%' AND pid <> pg_backend_pid()`).Scan(&n)
			if n != 0 {
				t.Errorf("%d statements still running on the server after the capped calls", n)
			}
		}
	})
}
