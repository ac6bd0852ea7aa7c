package dbfunc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

// classify maps a driver error to the taxonomy. The agent gets a plain sentence; the driver's
// own message (which may quote row data, and for a connection error the server's address) goes
// to the log only, scrubbed of the DSN.
func (db *DB) classify(ctx context.Context, f *manifest.DBFunction, err error) *abi.Error {
	e := db.classifyQuiet(ctx, f, err)
	db.logger.Warn("database function failed", "function", f.Name, "code", e.Code, "err", db.scrub.String(err.Error()))
	return e
}

func (db *DB) classifyQuiet(ctx context.Context, f *manifest.DBFunction, err error) *abi.Error {
	timeout := &abi.Error{Code: abi.CodeTimeout, Category: abi.Retryable, RetryAfterMS: 1000,
		Message: fmt.Sprintf("database function %s did not finish within its %d ms limit and was cancelled; try again later or with narrower arguments", f.Name, f.TimeoutMS)}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
		return timeout
	}
	if errors.Is(err, context.Canceled) {
		return &abi.Error{Code: abi.CodeTimeout, Category: abi.Retryable, Message: "the call was cancelled while database function " + f.Name + " ran"}
	}
	unavailable := &abi.Error{Code: abi.CodeUnavailable, Category: abi.Retryable, RetryAfterMS: 1000,
		Message: fmt.Sprintf("the database of function %s is unavailable or busy right now; try again later", f.Name)}
	refused := func(what string) *abi.Error {
		return &abi.Error{Code: "database_error", Category: abi.Fatal,
			Message: fmt.Sprintf("the database refused function %s: %s. This is a problem in the connector's declared statement or the database, not in the arguments: do not retry, report it to an admin", f.Name, what)}
	}
	correctable := func(code, what string) *abi.Error {
		return &abi.Error{Code: code, Category: abi.Correctable, Message: fmt.Sprintf("database function %s: %s", f.Name, what)}
	}

	var pe *paramError
	if errors.As(err, &pe) && pe.index < len(f.Params) {
		return correctable(abi.CodeInvalidArguments, "parameter "+f.Params[pe.index].Name+" "+pe.reason)
	}

	if e, ok := mysqlError(err, f, timeout, unavailable, refused, correctable); ok {
		return e
	}
	if e, ok := redisError(err, f, timeout, unavailable, refused); ok {
		return e
	}
	if e := classifyMongo(err, timeout, unavailable, refused, correctable); e != nil {
		return e
	}

	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		class := pg.Code[:2]
		switch {
		case pg.Code == "57014": // query_canceled: statement_timeout
			return timeout
		case pg.Code == "25006": // read_only_sql_transaction
			return refused("it tried to write, and it is declared read-only (the database itself stopped the write)")
		case pg.Code == "23505":
			return correctable("conflict", "a row with these values already exists; change the values or update the existing row")
		case pg.Code == "23503":
			return correctable("not_found", "a value refers to a row that does not exist (or a row other rows still refer to); check the identifiers")
		case pg.Code == "23502":
			return correctable(abi.CodeInvalidArguments, "a required value is missing (null)")
		case class == "23":
			return correctable(abi.CodeInvalidArguments, "the values break a rule of the database (a constraint); check them")
		case class == "22": // data exception: invalid input syntax, out of range …
			return correctable(abi.CodeInvalidArguments, "a parameter has a form or range the database does not accept for its column; check the types and values")
		case class == "40", class == "53", class == "55", class == "57", class == "08": // serialization/deadlock, resources, lock, shutdown, connection
			return unavailable
		case class == "28": // invalid authorization
			return refused("the host could not sign in to the database (an admin must check the grant's DSN)")
		case class == "42":
			return refused("its statement is not valid for this database (syntax, or a table, column or permission that does not exist)")
		default:
			return refused("the statement failed")
		}
	}

	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return correctable("conflict", "a row with these values already exists; change the values or update the existing row")
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return correctable("not_found", "a value refers to a row that does not exist (or a row other rows still refer to); check the identifiers")
		case sqlite3.SQLITE_CONSTRAINT_NOTNULL:
			return correctable(abi.CodeInvalidArguments, "a required value is missing (null)")
		}
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_INTERRUPT:
			return timeout
		case sqlite3.SQLITE_READONLY:
			if f.ReadOnly {
				return refused("it tried to write, and it is declared read-only (the database itself stopped the write)")
			}
			return refused("the database file is read-only for the host")
		case sqlite3.SQLITE_CONSTRAINT:
			return correctable(abi.CodeInvalidArguments, "the values break a rule of the database (a constraint); check them")
		case sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_RANGE, sqlite3.SQLITE_TOOBIG:
			return correctable(abi.CodeInvalidArguments, "a parameter has a form or size the database does not accept; check the types and values")
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL:
			return unavailable
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
			return refused("the host cannot open the database file (an admin must check the grant's DSN and the file)")
		default:
			return refused("its statement is not valid for this database or failed")
		}
	}
	// modernc reports an interrupted statement with a plain error in some paths.
	if strings.Contains(err.Error(), "interrupted") {
		return timeout
	}

	var ne net.Error
	var ce *pgconn.ConnectError
	if errors.As(err, &ne) || errors.As(err, &ce) {
		return unavailable
	}
	return refused("the statement failed")
}
