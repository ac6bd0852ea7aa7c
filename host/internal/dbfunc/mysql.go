package dbfunc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

// mysqlDB runs functions on MySQL or MariaDB through go-sql-driver/mysql:
//
//   - parameters are bound by the server (prepared statements; interpolateParams and
//     multiStatements are forced off whatever the DSN says, so a function is one statement);
//     the manifest's $N become ? markers (manifest.MySQLPlaceholders);
//   - a read runs in START TRANSACTION READ ONLY, and only when it is a query (SELECT, WITH,
//     VALUES, TABLE, SHOW, EXPLAIN, DESCRIBE): MySQL commits implicitly before DDL, so a
//     "CREATE TABLE" or "DROP TABLE" would run even in a read-only transaction; nor may it write
//     a file (INTO OUTFILE / DUMPFILE);
//   - the server bounds the statement: MariaDB max_statement_time (every statement), MySQL
//     max_execution_time (SELECT) and innodb_lock_wait_timeout (writes), set on the session
//     before every statement (the flavour is asked once per pool), with the context as a
//     backstop;
//   - a read's rows stop at the server: sql_select_limit = max_rows + 1. When the statement
//     has its own larger LIMIT, or the byte cap stops the read early, the rest is not drained
//     (the driver would read it to the end): the connection is dropped, and the server stops at
//     its next write to it.
type mysqlDB struct {
	db      *sql.DB
	flavour atomic.Int32 // 0 not asked yet, flavourMariaDB or flavourMySQL
}

const (
	flavourMariaDB = 1
	flavourMySQL   = 2
)

// openMySQL opens the pool for a mysql:// (or mariadb://) DSN. The DSN's URL form is converted
// to the driver's own; every form of the password is given to the scrubber.
func openMySQL(raw string, s *scrub.Scrubber, log *slog.Logger, maxConns int) (backend, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" || strings.Contains(strings.TrimPrefix(u.Path, "/"), "/") {
		return nil, ErrDSN
	}
	q := u.Query()
	// The driver's DSN parser cuts at the last '/': the query is re-encoded so none is left in it.
	cfg, err := mysql.ParseDSN("/?" + q.Encode())
	if err != nil {
		return nil, ErrDSN
	}
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
	if u.Port() == "" {
		cfg.Addr = u.Host + ":3306"
	}
	cfg.User = u.User.Username()
	if pw, ok := u.User.Password(); ok {
		cfg.Passwd = pw
		addPassword(s, u)
	}
	if cfg.MultiStatements || cfg.InterpolateParams {
		log.Warn("the database DSN sets multiStatements or interpolateParams; database functions run without them, " +
			"so a function is one statement and its parameters are bound by the server")
	}
	cfg.MultiStatements, cfg.InterpolateParams = false, false
	cfg.AllowAllFiles = false // LOAD DATA LOCAL INFILE may read no host file
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	cfg.Logger = mysqlLogger{log: log, s: s}
	s.Add(cfg.FormatDSN())
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, ErrDSN
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &mysqlDB{db: db}, nil
}

// addPassword tells the scrubber the password of a URL's userinfo, as written and decoded.
func addPassword(s *scrub.Scrubber, u *url.URL) {
	if pw, ok := u.User.Password(); ok {
		s.Add(pw)
		if _, esc, _ := strings.Cut(u.User.String(), ":"); esc != pw {
			s.Add(esc)
		}
	}
}

// mysqlLogger sends the driver's own messages to the host's log, scrubbed.
type mysqlLogger struct {
	log *slog.Logger
	s   *scrub.Scrubber
}

func (l mysqlLogger) Print(v ...any) { l.log.Warn("mysql driver: " + l.s.String(fmt.Sprint(v...))) }

// errNotAQuery is a read function whose statement is not a query MySQL keeps read-only.
var errNotAQuery = errors.New("dbfunc: a MySQL read function that is not a query")

// statement returns the function's statement with ? markers and its arguments in their order.
func (m *mysqlDB) statement(f *manifest.DBFunction, args []any) (string, []any, error) {
	q, order, err := manifest.MySQLPlaceholders(f.SQL)
	if err != nil {
		return "", nil, &statementError{reason: err.Error()}
	}
	bound := make([]any, len(order))
	for i, p := range order {
		if p >= len(args) {
			return "", nil, &statementError{reason: fmt.Sprintf("it uses $%d but declares %d parameters", p+1, len(args))}
		}
		bound[i] = args[p]
	}
	return q, bound, nil
}

// statementError is a declared statement the host does not run on this backend.
type statementError struct{ reason string }

func (e *statementError) Error() string { return "dbfunc: " + e.reason }

// mysqlReadable reports whether a read function's statement is one MySQL keeps read-only.
func mysqlReadable(sql string) bool {
	words := manifest.CodeWords(sql)
	if len(words) == 0 || !slices.Contains([]string{"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC"}, words[0]) {
		return false
	}
	return !slices.Contains(words, "OUTFILE") && !slices.Contains(words, "DUMPFILE")
}

// limit sets the session's bounds for the next statement of tx. Every call sets all of them, so
// what a pooled connection kept from an earlier call never applies.
func (m *mysqlDB) limit(ctx context.Context, tx *sql.Tx, f *manifest.DBFunction, read bool) error {
	if m.flavour.Load() == 0 {
		var v string
		if err := tx.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
			return err
		}
		if strings.Contains(strings.ToLower(v), "mariadb") {
			m.flavour.Store(flavourMariaDB)
		} else {
			m.flavour.Store(flavourMySQL)
		}
	}
	rows := "DEFAULT"
	if read {
		rows = fmt.Sprint(f.MaxRows + 1)
	}
	var set string
	if m.flavour.Load() == flavourMariaDB {
		set = fmt.Sprintf("SET SESSION max_statement_time = %.3f, sql_select_limit = %s", f.Timeout().Seconds(), rows)
	} else {
		set = fmt.Sprintf("SET SESSION max_execution_time = %d, sql_select_limit = %s, innodb_lock_wait_timeout = %d",
			f.TimeoutMS, rows, max(1, (f.TimeoutMS+999)/1000))
	}
	_, err := tx.ExecContext(ctx, set)
	return err
}

func (m *mysqlDB) read(ctx context.Context, f *manifest.DBFunction, args []any) (abi.DBResponse, error) {
	q, bound, err := m.statement(f, args)
	if err != nil {
		return abi.DBResponse{}, err
	}
	if !mysqlReadable(q) {
		return abi.DBResponse{}, errNotAQuery
	}
	ctx, cancel := context.WithTimeout(ctx, f.Timeout()+pgBackstop)
	defer cancel()
	tx, err := m.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}) // START TRANSACTION READ ONLY
	if err != nil {
		return abi.DBResponse{}, err
	}
	defer tx.Rollback() // a read has nothing to commit
	if err := m.limit(ctx, tx, f, true); err != nil {
		return abi.DBResponse{}, err
	}
	// Prepared even without parameters: the binary protocol returns typed values (the text
	// protocol returns every number as text), and a prepared statement is one statement.
	stmt, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return abi.DBResponse{}, err
	}
	defer stmt.Close()
	qctx, drop := context.WithCancel(ctx)
	defer drop()
	rows, err := stmt.QueryContext(qctx, bound...)
	if err != nil {
		return abi.DBResponse{}, err
	}
	c := newCollector(f, false)
	if _, err := c.add(rows); err != nil {
		rows.Close()
		return abi.DBResponse{}, err
	}
	if c.done() && rows.Next() {
		// More rows than sql_select_limit lets through (the statement's own LIMIT), or the byte
		// cap stopped early: closing would read them all. Cancelling drops the connection.
		drop()
	}
	rows.Close()
	return c.result(), nil
}

func (m *mysqlDB) write(ctx context.Context, f *manifest.DBFunction, args []any) (abi.DBResponse, error) {
	q, bound, err := m.statement(f, args)
	if err != nil {
		return abi.DBResponse{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.Timeout()+pgBackstop)
	defer cancel()
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return abi.DBResponse{}, err
	}
	if err := m.limit(ctx, tx, f, false); err != nil {
		tx.Rollback()
		return abi.DBResponse{}, err
	}
	g := *f
	g.SQL = q
	return runWrite(ctx, tx, &g, bound)
}

func (m *mysqlDB) close() error { return m.db.Close() }

// mysqlError maps a MySQL/MariaDB server error to the taxonomy (ok false: not one).
func mysqlError(err error, f *manifest.DBFunction, timeout, unavailable *abi.Error, refused func(string) *abi.Error,
	correctable func(code, what string) *abi.Error) (*abi.Error, bool) {
	var se *statementError
	if errors.As(err, &se) {
		return refused("the host does not run it: " + se.reason), true
	}
	if errors.Is(err, errNotAQuery) {
		return refused("it is declared read-only and its statement is not a query (SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN, DESCRIBE) " +
			"that writes no file; MySQL would commit a DDL statement even in a read-only transaction"), true
	}
	if errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, mysql.ErrPktSync) || errors.Is(err, mysql.ErrBusyBuffer) {
		return unavailable, true
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return nil, false
	}
	switch me.Number {
	case 1969, 3024, 1317, 1028: // max_statement_time, max_execution_time exceeded; interrupted
		return timeout, true
	case 1792, 1290: // read-only transaction; --read-only server
		if f.ReadOnly {
			return refused("it tried to write, and it is declared read-only (the database itself stopped the write)"), true
		}
		return refused("the database is read-only for the host"), true
	case 1062, 1586, 1022:
		return correctable("conflict", "a row with these values already exists; change the values or update the existing row"), true
	case 1452, 1451, 1216, 1217:
		return correctable("not_found", "a value refers to a row that does not exist (or a row other rows still refer to); check the identifiers"), true
	case 1048, 1364:
		return correctable(abi.CodeInvalidArguments, "a required value is missing (null)"), true
	case 1264, 1265, 1292, 1366, 1406, 1367, 1411, 3819, 4025:
		return correctable(abi.CodeInvalidArguments, "a parameter has a form or range the database does not accept for its column; check the types and values"), true
	case 1205, 1213, 1040, 1203, 1053, 1927, 2006, 2013:
		return unavailable, true
	case 1045, 1044, 1698, 1251:
		return refused("the host could not sign in to the database (an admin must check the grant's DSN)"), true
	case 1064, 1146, 1054, 1142, 1143, 1049, 1210, 1295:
		return refused("its statement is not valid for this database (syntax, or a table, column or permission that does not exist)"), true
	}
	return refused("the statement failed"), true
}
