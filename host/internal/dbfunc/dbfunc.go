// Package dbfunc runs a connector's bounded database functions: the named, parameterised SQL
// statements (PostgreSQL, MySQL/MariaDB, SQLite) or Redis commands (see redisDB) a manifest
// declares and a grant allows, behind the airlock_db host function.
//
// Agents never send SQL (or a MongoDB query: see mongo.go and manifest.MongoOp). A plugin asks for a function by name with positional parameters; [DB.Call]
// runs it only when it is declared and granted, checks each parameter against its JSON Schema,
// binds the parameters (never interpolates them) and bounds the statement:
//
//   - a read function (read_only, the default) runs in a transaction the database itself keeps
//     read-only: PostgreSQL BEGIN READ ONLY; SQLite on a connection opened with mode=ro and
//     PRAGMA query_only; MySQL START TRANSACTION READ ONLY, for a query only (see mysqlDB). A
//     write smuggled into a read function is refused by the database;
//   - a write function runs only when the grant allows writes, in a transaction that is committed
//     only when the statement succeeded;
//   - every statement has a timeout: PostgreSQL SET LOCAL statement_timeout, so the server
//     cancels the statement itself, with a context deadline shortly after as a backstop; SQLite a
//     context deadline, which interrupts the statement (sqlite3_interrupt);
//   - a function is exactly one statement: PostgreSQL's extended protocol runs one statement per
//     call (a DSN asking for the simple protocol, which runs several, is switched to exec), and
//     a function whose SQL holds several is refused before it reaches either database;
//   - the work stops at the function's max_rows + 1 or max_bytes (the JSON size of the rows),
//     with Truncated set: PostgreSQL reads run as a cursor fetched in growing batches, so the
//     server produces no row past the cap's batch; SQLite stops stepping the statement.
//
// On MongoDB (mongodb://…/DATABASE) a function is a declared operation (manifest.MongoOp) whose
// parameters are only ever values: sent as {$eq: v} in a query and {$literal: v} in an
// expression, an argument holding a "$" key refused; reads send only find or aggregate (never
// $out, $merge, $where, $function or $accumulator) with maxTimeMS = timeout_ms, limit
// max_rows + 1 and batches of at most 100, and kill the cursor at a cap (see mongo.go).
//
// The data source name is a secret: it is registered with the host's scrubber, and no error,
// log line or response carries it or a raw driver message (which could hold it, or row data).
// Agents get plain sentences in the error taxonomy; the detail goes to the log, scrubbed.
//
// Example:
//
//	db, err := dbfunc.Open(dbfunc.Config{
//		DSN:       dsn, // secret.Value: postgres://user:pass@host/db or sqlite:/var/lib/crm.db
//		Declared:  m.Database.Functions,
//		Granted:   policy.Functions,
//		Scrubber:  scrubber,
//	})
//	if err != nil { … }
//	defer db.Close()
//	resp := db.Call(ctx, []byte(`{"function":"find_customer","params":["ada@example.com"]}`))
//	// resp.Columns ["id","name","email"], resp.Rows [[1,"Ada","ada@example.com"]]
//
// A DB is safe for concurrent use. It holds one connection pool per connector (two for SQLite: a
// read-only one and a single writer), closed by [DB.Close].
package dbfunc

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Config configures a DB. Open copies what it needs; later changes have no effect.
type Config struct {
	// DSN is the data source name: postgres://… (or postgresql://…) for PostgreSQL,
	// mysql://user:password@host:port/database (or mariadb://…) for MySQL and MariaDB,
	// redis://… or rediss://… for Redis, mongodb://…/DATABASE (or mongodb+srv://…) for MongoDB,
	// sqlite:PATH for an SQLite file that must already exist. Required.
	DSN secret.Value
	// Declared are the manifest's database functions (manifest.Database.Functions).
	Declared []manifest.DBFunction
	// Granted are the functions the grant allows, by name (grant.Policy.Functions): only these
	// run. A write function must only be here when the grant allows writes.
	Granted map[string]*manifest.DBFunction
	// Scrubber is told the DSN and its password; it cleans every logged driver message.
	// Default: a private scrubber.
	Scrubber *scrub.Scrubber
	// Logger receives driver errors (scrubbed) at warn level. Default slog.Default().
	Logger *slog.Logger
	// MaxConns bounds the open connections of the pool (default 4).
	MaxConns int
}

// DB runs the granted database functions of one connector. Safe for concurrent use. The zero
// value is not usable; call Open.
type DB struct {
	backend  backend
	declared map[string]*manifest.DBFunction
	granted  map[string]*manifest.DBFunction
	scrub    *scrub.Scrubber
	logger   *slog.Logger
}

// Errors of Open. The text never holds the DSN.
var (
	// ErrNoDSN: Config.DSN is empty.
	ErrNoDSN = errors.New("dbfunc: the grant's database.dsn resolved to an empty value; set it to postgres://…, mysql://…, redis://…, mongodb://… or sqlite:PATH")
	// ErrDSN: the DSN is not a form this host understands.
	ErrDSN = errors.New("dbfunc: the database DSN is not postgres://user:password@host:port/database, mysql://user:password@host:port/database, redis://…, mongodb://user:password@host:port/database or sqlite:PATH; fix the secret the grant's database.dsn names")
)

// Open prepares the connection pool for cfg.DSN. It does not connect: the first call does, so a
// database that is briefly down does not stop the connector from loading.
func Open(cfg Config) (*DB, error) {
	if cfg.DSN.IsZero() {
		return nil, ErrNoDSN
	}
	if cfg.Scrubber == nil {
		cfg.Scrubber = scrub.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 4
	}
	be, err := openBackend(cfg.DSN, cfg.Scrubber, cfg.Logger, cfg.MaxConns)
	if err != nil {
		return nil, err
	}
	db := &DB{backend: be, declared: map[string]*manifest.DBFunction{}, granted: map[string]*manifest.DBFunction{},
		scrub: cfg.Scrubber, logger: cfg.Logger}
	for i := range cfg.Declared {
		f := cfg.Declared[i]
		db.declared[f.Name] = &f
	}
	for name, f := range cfg.Granted {
		if _, ok := db.declared[name]; ok && f != nil {
			db.granted[name] = f
		}
	}
	if err := checkMongoKind(be, db.granted); err != nil {
		be.close()
		return nil, err
	}
	return db, nil
}

// Close closes the connection pools. Calls in progress fail.
func (db *DB) Close() error { return db.backend.close() }

// request is abi.DBRequest with the parameters kept as raw JSON, so numbers keep their precision
// and each parameter is validated exactly as sent.
type request struct {
	Function string            `json:"function"`
	Params   []json.RawMessage `json:"params"`
}

// Call runs the function request names (an abi.DBRequest as JSON) and returns the answer for the
// plugin. It never panics on what the plugin sent; every refusal or failure is a response with
// Error set:
//
//   - bad_request (fatal): the envelope is not a DBRequest;
//   - not_granted (fatal): the function is not declared, not granted, or writes without the
//     grant's allow_writes;
//   - invalid_arguments (correctable): wrong parameter count, or a parameter fails its schema or
//     the database rejects its form (the message names the parameter where it can);
//   - timeout (retryable): the statement ran past its timeout_ms or the call's deadline;
//   - unavailable (retryable): the database cannot be reached, is busy, or aborted the
//     transaction (serialisation, deadlock);
//   - correctable constraint errors (a duplicate, a missing referenced row, a required value);
//   - fatal errors for a statement the database refuses (a write in a read function, invalid
//     SQL) or the host does not run (more than one statement): a problem for the publisher or
//     admin, not the agent.
func (db *DB) Call(ctx context.Context, reqJSON []byte) abi.DBResponse {
	var req request
	dec := json.NewDecoder(bytes.NewReader(reqJSON))
	if err := dec.Decode(&req); err != nil || req.Function == "" {
		return fail(abi.CodeBadRequest, abi.Fatal, "the connector sent a malformed database request: it must be {\"function\": NAME, \"params\": [...]} (see pdk/ABI.md)")
	}
	f, ok := db.granted[req.Function]
	if !ok {
		return fail(abi.CodeNotGranted, abi.Fatal, db.notGranted(req.Function))
	}
	if f.Redis == nil && f.Mongo == nil && manifest.Statements(f.SQL) != 1 {
		// Parse refuses such a manifest; this holds for one built otherwise. SQLite's driver
		// would run every statement, and after the first "COMMIT;" outside the transaction.
		return fail("database_error", abi.Fatal, fmt.Sprintf("database function %s declares more than one SQL statement, which the host never runs; report it to the connector's publisher", f.Name))
	}
	args, e := bindParams(f, req.Params)
	if e != nil {
		return abi.DBResponse{Error: e}
	}
	var resp abi.DBResponse
	var err error
	rb, isRedis := db.backend.(*redisDB)
	switch {
	case isRedis && f.Redis != nil:
		resp, err = rb.call(ctx, f, req.Params)
	case f.Redis != nil:
		err = errRedisOnSQL
	case f.ReadOnly:
		resp, err = db.backend.read(ctx, f, args)
	default:
		resp, err = db.backend.write(ctx, f, args)
	}
	if err != nil {
		return abi.DBResponse{Error: db.classify(ctx, f, err)}
	}
	return resp
}

func (db *DB) notGranted(name string) string {
	f, declared := db.declared[name]
	switch {
	case !declared:
		names := make([]string, 0, len(db.granted))
		for n := range db.granted {
			names = append(names, n)
		}
		if len(names) == 0 {
			return fmt.Sprintf("there is no database function %q, and none is granted to this connector", name)
		}
		return fmt.Sprintf("there is no database function %q (granted: %s)", name, strings.Join(slices.Sorted(slices.Values(names)), ", "))
	case !f.ReadOnly:
		return fmt.Sprintf("database function %s writes, and it is not granted with writes allowed; an admin must grant it and set database.allow_writes", name)
	default:
		return fmt.Sprintf("database function %s is not granted; an admin must grant it", name)
	}
}

// bindParams validates each parameter against its schema and converts it to a value the drivers
// bind.
func bindParams(f *manifest.DBFunction, params []json.RawMessage) ([]any, *abi.Error) {
	if len(params) != len(f.Params) {
		names := make([]string, len(f.Params))
		for i, p := range f.Params {
			names[i] = p.Name
		}
		return nil, &abi.Error{Code: abi.CodeInvalidArguments, Category: abi.Correctable,
			Message: fmt.Sprintf("database function %s takes %d parameters (%s), got %d", f.Name, len(f.Params), strings.Join(names, ", "), len(params))}
	}
	args := make([]any, len(params))
	for i, raw := range params {
		if len(raw) == 0 {
			raw = json.RawMessage("null")
		}
		if err := f.ValidateParam(i, raw); err != nil {
			return nil, &abi.Error{Code: abi.CodeInvalidArguments, Category: abi.Correctable,
				Message: fmt.Sprintf("database function %s: %v", f.Name, err)}
		}
		if f.Mongo != nil {
			args[i] = raw // the MongoDB backend puts the JSON value in the operation's template
			continue
		}
		v, err := bindValue(raw)
		if err != nil {
			return nil, &abi.Error{Code: abi.CodeInvalidArguments, Category: abi.Correctable,
				Message: fmt.Sprintf("database function %s: parameter %s is not a JSON value", f.Name, f.Params[i].Name)}
		}
		args[i] = v
	}
	return args, nil
}

// bindValue converts one JSON value to a driver value: null → nil, booleans, strings, integral
// numbers → int64, other numbers → float64, arrays and objects → their JSON text (which
// PostgreSQL casts to json/jsonb).
func bindValue(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		return x.Float64()
	default:
		return string(bytes.TrimSpace(raw)), nil
	}
}

func fail(code string, cat abi.Category, msg string) abi.DBResponse {
	return abi.DBResponse{Error: &abi.Error{Code: code, Category: cat, Message: msg}}
}

// backend is one database engine's way of running a function.
type backend interface {
	read(ctx context.Context, f *manifest.DBFunction, args []any) (abi.DBResponse, error)
	write(ctx context.Context, f *manifest.DBFunction, args []any) (abi.DBResponse, error)
	close() error
}

// collector gathers rows into a response up to a function's row and byte caps, from one result
// or several (the batches a cursor is fetched in). It reads one row past max_rows to tell
// whether there were more. With countAll (a write's RETURNING rows, which the database has
// already produced) it goes on counting the rows it does not keep, into Affected.
type collector struct {
	f          *manifest.DBFunction
	countAll   bool
	resp       abi.DBResponse
	size       int   // JSON size of what is kept so far
	seen       int   // rows read, kept or not
	vals, ptrs []any // scan buffers, sized at the first result
}

func newCollector(f *manifest.DBFunction, countAll bool) *collector {
	return &collector{f: f, countAll: countAll, resp: abi.DBResponse{Rows: [][]any{}}}
}

// done reports that a cap was passed and no further row is wanted.
func (c *collector) done() bool { return c.resp.Truncated && !c.countAll }

// add reads one result into the response, stopping at the first row past a cap unless
// countAll. It returns how many rows it read; the caller closes rows.
func (c *collector) add(rows *sql.Rows) (int, error) {
	if c.resp.Columns == nil {
		cols, err := rows.Columns()
		if err != nil {
			return 0, err
		}
		c.resp.Columns = cols
		c.size = 2 + len(cols)*4 // the JSON of the column names, roughly: the rows dominate
		for _, col := range cols {
			c.size += len(col)
		}
		c.vals, c.ptrs = make([]any, len(cols)), make([]any, len(cols))
		for i := range c.vals {
			c.ptrs[i] = &c.vals[i]
		}
	}
	n := 0
	for !c.done() && rows.Next() {
		n++
		if c.resp.Truncated || len(c.resp.Rows) >= c.f.MaxRows {
			c.keep(nil) // counting only, or the row past max_rows
			continue
		}
		if err := rows.Scan(c.ptrs...); err != nil {
			return n, err
		}
		row := make([]any, len(c.vals))
		for i, v := range c.vals {
			row[i] = jsonValue(v)
		}
		if err := c.keep(row); err != nil {
			return n, err
		}
	}
	return n, rows.Err()
}

// keep adds one row unless a cap is passed, which sets Truncated; it counts every row.
func (c *collector) keep(row []any) error {
	c.seen++
	switch {
	case c.resp.Truncated:
		return nil
	case len(c.resp.Rows) >= c.f.MaxRows:
		c.resp.Truncated = true
		return nil
	}
	b, err := json.Marshal(row)
	if err != nil {
		return err
	}
	if c.size+len(b)+1 > c.f.MaxBytes {
		c.resp.Truncated = true
		return nil
	}
	c.size += len(b) + 1
	c.resp.Rows = append(c.resp.Rows, row)
	return nil
}

// result is the response gathered; Affected is the count of rows only with countAll.
func (c *collector) result() abi.DBResponse {
	if c.countAll {
		c.resp.Affected = int64(c.seen)
	}
	return c.resp
}

// collect reads one whole result into a response (see collector) and closes rows.
func collect(rows *sql.Rows, f *manifest.DBFunction, countAll bool) (abi.DBResponse, error) {
	c := newCollector(f, countAll)
	if _, err := c.add(rows); err != nil {
		return abi.DBResponse{}, err
	}
	return c.result(), rows.Close()
}

// jsonValue turns a scanned value into one that encodes as plain JSON.
func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string:
		return x
	case int64:
		if x > 1<<53 || x < -(1<<53) {
			return strconv.FormatInt(x, 10) // beyond what a JSON reader's float64 keeps exactly
		}
		return x
	case float64:
		if x != x || x > 1.7976931348623157e308 || x < -1.7976931348623157e308 {
			return fmt.Sprint(x) // NaN, ±Inf have no JSON form
		}
		return x
	case []byte:
		return string(x) // text of numerics, json, uuids …; invalid UTF-8 becomes U+FFFD
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case fmt.Stringer:
		return x.String()
	default:
		if _, err := json.Marshal(x); err == nil {
			return x
		}
		return fmt.Sprint(x)
	}
}
