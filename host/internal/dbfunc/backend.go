package dbfunc

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// openBackend parses dsn, tells the scrubber every form of it a driver might echo, and opens the
// pools (lazily: nothing connects yet).
func openBackend(dsn secret.Value, s *scrub.Scrubber, log *slog.Logger, maxConns int) (backend, error) {
	raw := dsn.Expose()
	s.Add(raw)
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		u, err := url.Parse(raw)
		if err != nil {
			return nil, ErrDSN
		}
		if pw, ok := u.User.Password(); ok {
			s.Add(pw)
		}
		cfg, err := pgx.ParseConfig(raw)
		if err != nil {
			return nil, ErrDSN
		}
		if cfg.Password != "" {
			s.Add(cfg.Password)
		}
		if cfg.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
			// The simple protocol runs every statement of a string: "COMMIT; DELETE …" would end
			// a read's read-only transaction and write outside it. exec also sends no named
			// prepared statements (what simple_protocol is usually chosen for, behind PgBouncer),
			// but over the extended protocol, where the server runs one statement per call.
			cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
			log.Warn("the database DSN sets default_query_exec_mode=simple_protocol; database functions run with exec instead, " +
				"so a function can never run more than one statement (it sends no named prepared statements either)")
		}
		db := stdlib.OpenDB(*cfg)
		db.SetMaxOpenConns(maxConns)
		db.SetMaxIdleConns(maxConns)
		db.SetConnMaxIdleTime(5 * time.Minute)
		return &postgres{db: db}, nil
	case strings.HasPrefix(raw, "redis://"), strings.HasPrefix(raw, "rediss://"):
		return openRedis(raw, s, maxConns)
	case strings.HasPrefix(raw, "mysql://"), strings.HasPrefix(raw, "mariadb://"):
		return openMySQL(raw, s, log, maxConns)
	case isMongo(raw):
		return openMongo(raw, s, maxConns, nil)
	case strings.HasPrefix(raw, "sqlite:"):
		path := strings.TrimPrefix(raw, "sqlite:")
		path = strings.TrimPrefix(path, "//") // sqlite:///abs/path
		if path == "" || strings.ContainsAny(path, "?#\x00") || path == ":memory:" {
			return nil, ErrDSN
		}
		// A file: URI, so SQLite itself applies mode=ro; the path is escaped so it cannot add
		// parameters. The read pool cannot write at all (mode=ro, query_only); the write pool has
		// one connection, so the connector's own writers never contend for the file lock.
		name := "file:" + (&url.URL{Path: path}).EscapedPath()
		ro, err := sql.Open("sqlite", name+"?mode=ro&_query_only=1&_busy_timeout=5000&_defensive=1")
		if err != nil {
			return nil, ErrDSN
		}
		ro.SetMaxOpenConns(maxConns)
		ro.SetMaxIdleConns(maxConns)
		ro.SetConnMaxIdleTime(5 * time.Minute)
		rw, err := sql.Open("sqlite", name+"?mode=rw&_busy_timeout=5000&_txlock=immediate&_defensive=1")
		if err != nil {
			ro.Close()
			return nil, ErrDSN
		}
		rw.SetMaxOpenConns(1)
		rw.SetConnMaxIdleTime(5 * time.Minute)
		return &sqliteDB{ro: ro, rw: rw}, nil
	}
	return nil, ErrDSN
}

// returning matches a RETURNING clause: a write function with one returns rows (and its Affected
// is their count); one without is executed and Affected is the driver's count of changed rows.
var returning = regexp.MustCompile(`(?i)\breturning\b`)

// postgres runs functions on PostgreSQL through pgx's database/sql driver. Parameters go over the
// extended protocol (bound, never interpolated; one statement per function).
type postgres struct{ db *sql.DB }

// pgBackstop is how long after a function's statement_timeout its context ends, should the
// server not answer: long enough that the server's own cancellation normally comes first.
const pgBackstop = time.Second

func (p *postgres) begin(ctx context.Context, f *manifest.DBFunction, readOnly bool) (*sql.Tx, error) {
	tx, err := p.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: readOnly}) // BEGIN READ ONLY for reads
	if err != nil {
		return nil, err
	}
	// statement_timeout is enforced by the server even if the client is gone; LOCAL ends with
	// the transaction, so a pooled connection never keeps it.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", f.TimeoutMS)); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// A read that is a query runs as a cursor fetched in batches, so the server stops producing rows
// once the function's caps are passed: a plain query would go on producing and sending every
// row, which pgx reads to the end when the rows are closed. The first batch is small (most
// reads return a few rows, and a byte cap may be passed early); each next one is four times
// larger, never past max_rows + 1.
const (
	cursorName = "airlock_rows"
	firstFetch = 16
)

func (p *postgres) read(ctx context.Context, f *manifest.DBFunction, args []any) (abi.DBResponse, error) {
	if err := checkText(args); err != nil {
		return abi.DBResponse{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.Timeout()+pgBackstop)
	defer cancel()
	tx, err := p.begin(ctx, f, true)
	if err != nil {
		return abi.DBResponse{}, err
	}
	defer tx.Rollback() // a read has nothing to commit
	if !isQuery(f.SQL) {
		return query(ctx, tx, f, args, false) // SHOW, EXPLAIN …: no cursor; their results are small
	}
	// Through Query, not Exec: pgx sends an Exec without arguments over the simple protocol,
	// which would run every statement of the string.
	declare, err := tx.QueryContext(ctx, "DECLARE "+cursorName+" NO SCROLL CURSOR FOR "+f.SQL, args...)
	if err != nil {
		return abi.DBResponse{}, err
	}
	if err := declare.Close(); err != nil {
		return abi.DBResponse{}, err
	}
	c := newCollector(f, false)
	for batch := min(firstFetch, f.MaxRows+1); ; {
		// Never from the statement cache: the same FETCH text returns other columns for the
		// next function's cursor.
		rows, err := tx.QueryContext(ctx, "FETCH FORWARD "+strconv.Itoa(batch)+" FROM "+cursorName, pgx.QueryExecModeDescribeExec)
		if err != nil {
			return abi.DBResponse{}, err
		}
		n, err := c.add(rows)
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return abi.DBResponse{}, err
		}
		left := f.MaxRows + 1 - c.seen
		if c.done() || n < batch || left <= 0 {
			return c.result(), nil
		}
		batch = min(batch*4, left)
	}
}

// isQuery reports whether sql is a query a cursor can run: its first word, after comments and
// opening parentheses, is SELECT, WITH, VALUES or TABLE.
func isQuery(sql string) bool {
	for {
		sql = strings.TrimLeft(sql, " \t\r\n\f\v(")
		switch {
		case strings.HasPrefix(sql, "--"):
			_, sql, _ = strings.Cut(sql, "\n")
		case strings.HasPrefix(sql, "/*"):
			_, sql, _ = strings.Cut(sql, "*/")
		default:
			end := strings.IndexFunc(sql, func(r rune) bool { return !unicode.IsLetter(r) })
			if end < 0 {
				end = len(sql)
			}
			switch strings.ToUpper(sql[:end]) {
			case "SELECT", "WITH", "VALUES", "TABLE":
				return true
			}
			return false
		}
	}
}

// paramError is a parameter the database cannot take, found before the statement runs.
type paramError struct {
	index  int
	reason string
}

func (e *paramError) Error() string { return fmt.Sprintf("parameter %d %s", e.index+1, e.reason) }

// checkText refuses a text parameter holding a NUL: PostgreSQL stores no NUL in text, and the
// server's refusal would otherwise come back in a different form in each query mode.
func checkText(args []any) error {
	for i, a := range args {
		if s, ok := a.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return &paramError{index: i, reason: "contains a NUL character (\\u0000), which PostgreSQL does not accept in text; remove it"}
		}
	}
	return nil
}

func (p *postgres) write(ctx context.Context, f *manifest.DBFunction, args []any) (abi.DBResponse, error) {
	if err := checkText(args); err != nil {
		return abi.DBResponse{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.Timeout()+pgBackstop)
	defer cancel()
	if len(args) == 0 && !returning.MatchString(f.SQL) {
		return p.writeNoArgs(ctx, f)
	}
	tx, err := p.begin(ctx, f, false)
	if err != nil {
		return abi.DBResponse{}, err
	}
	return runWrite(ctx, tx, f, args)
}

// writeNoArgs runs a write without parameters or RETURNING. pgx sends an Exec without arguments
// over the simple protocol, which runs every statement of a string, and database/sql gives the
// count of changed rows only from an Exec; so this one goes through pgx itself, as a Query (the
// extended protocol: one statement) whose command tag has the count.
func (p *postgres) writeNoArgs(ctx context.Context, f *manifest.DBFunction) (abi.DBResponse, error) {
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return abi.DBResponse{}, err
	}
	defer conn.Close()
	var resp abi.DBResponse
	err = conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", f.TimeoutMS)); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, f.SQL)
		if err != nil {
			return err
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		resp.Affected = rows.CommandTag().RowsAffected()
		return tx.Commit(ctx)
	})
	return resp, err
}

func (p *postgres) close() error { return p.db.Close() }

// sqliteDB runs functions on an SQLite file through modernc.org/sqlite. Context cancellation
// interrupts a running statement (sqlite3_interrupt).
type sqliteDB struct{ ro, rw *sql.DB }

func (s *sqliteDB) read(ctx context.Context, f *manifest.DBFunction, args []any) (abi.DBResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, f.Timeout())
	defer cancel()
	tx, err := s.ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return abi.DBResponse{}, err
	}
	defer tx.Rollback()
	return query(ctx, tx, f, args, false)
}

func (s *sqliteDB) write(ctx context.Context, f *manifest.DBFunction, args []any) (abi.DBResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, f.Timeout())
	defer cancel()
	tx, err := s.rw.BeginTx(ctx, nil)
	if err != nil {
		return abi.DBResponse{}, err
	}
	return runWrite(ctx, tx, f, args)
}

func (s *sqliteDB) close() error {
	err := s.ro.Close()
	if err2 := s.rw.Close(); err == nil {
		err = err2
	}
	return err
}

func query(ctx context.Context, tx *sql.Tx, f *manifest.DBFunction, args []any, countAll bool) (abi.DBResponse, error) {
	rows, err := tx.QueryContext(ctx, f.SQL, args...)
	if err != nil {
		return abi.DBResponse{}, err
	}
	defer rows.Close()
	return collect(rows, f, countAll)
}

// runWrite runs a write function in tx and commits only when it succeeded.
func runWrite(ctx context.Context, tx *sql.Tx, f *manifest.DBFunction, args []any) (abi.DBResponse, error) {
	defer tx.Rollback() // no-op after Commit
	var resp abi.DBResponse
	if returning.MatchString(f.SQL) {
		var err error
		if resp, err = query(ctx, tx, f, args, true); err != nil {
			return abi.DBResponse{}, err
		}
	} else {
		// On PostgreSQL only with arguments (writeNoArgs): pgx sends an Exec without any over
		// the simple protocol.
		res, err := tx.ExecContext(ctx, f.SQL, args...)
		if err != nil {
			return abi.DBResponse{}, err
		}
		if resp.Affected, err = res.RowsAffected(); err != nil {
			return abi.DBResponse{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return abi.DBResponse{}, err
	}
	return resp, nil
}
