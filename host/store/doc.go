// Package store keeps the host's state in SQLite (the embedded default, one file, no set-up) or
// PostgreSQL (shared by every replica): meta values (the wrapped data keys of the secret
// store), sealed records (encrypted secrets), connected accounts, installed connectors, grants
// with their history, human approvals, idempotency records, trusted publisher keys, bearer
// tokens and the admin console's sessions (by SHA-256 only), and the tamper-evident audit log.
//
// # Opening
//
// [Open] takes a DSN:
//
//	sqlite:/var/lib/airlock/state.db    an SQLite file (created mode 0600, WAL journal)
//	/var/lib/airlock/state.db           the same: a bare path ending in .db
//	sqlite::memory:                     a private in-memory database, for tests
//	postgres://airlock@db:5432/airlock?sslmode=verify-full
//	postgresql://…                      any URL pgx accepts
//
// One implementation over database/sql serves both; a small dialect table covers the
// differences (placeholders, the bytes column type, advisory locks). Open applies the numbered
// schema migrations missing from the database in one transaction, recording them in
// schema_migrations; on PostgreSQL it holds an advisory lock meanwhile, so replicas starting at
// once migrate exactly once. A database whose schema is newer than the binary is refused
// ([ErrSchemaTooNew]).
//
// SQLite runs with WAL, a busy timeout, foreign keys on, and one connection per process, so
// that writers queue instead of failing; every transaction begins IMMEDIATE, which makes them
// serialisable across processes too (the CLI and a server may share the file).
//
// # Errors
//
// Methods wrap [ErrNotFound] (the record does not exist) and [ErrConflict] (it is not in the
// state the operation needs: exists already, changed concurrently, already decided or used)
// with a sentence saying what to do; test them with errors.Is. No method puts a stored value
// (a blob, a token, a grant) into an error.
//
// # The audit log
//
// The audit log is append-only and hash-chained. Record n carries the hash of record n-1 and
// its own hash:
//
//	Hash = hex(sha256(PrevHash + "\n" + decimal(Seq) + "\n" + Data))
//
// where PrevHash is "" for record 1 and Data is the JSON event exactly as appended ([AuditHash]).
// Appenders are serialised (pg_advisory_xact_lock on PostgreSQL, the single writer on SQLite),
// so several replicas still write one chain. The fields searched on (kind, connector, tool,
// agent, subject, outcome, time) are copied into their own columns at append; [Store.VerifyAudit]
// walks the whole chain and reports the first record that was changed, deleted, reordered, or
// whose search columns no longer match its data, as an *[AuditBreak]. With [Store.SetAuditKeys]
// (package audit's Trail) each record also carries the MAC of its link under a key the database
// does not hold, checked by [Store.VerifyAuditKeyed], and signed checkpoints are kept in
// audit_checkpoints ([Store.PutAuditCheckpoint]); package audit verifies those and the anchor
// file that catches a truncated tail.
//
// # Example
//
//	st, err := store.Open(ctx, "sqlite:"+filepath.Join(stateDir, "state.db"))
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	if _, err := st.PutGrant(ctx, "slack", []byte(`{"tools":["post_message"]}`), "alice", "ticket 42"); err != nil {
//		return err
//	}
//	if _, err := st.AppendAudit(ctx, []byte(`{"kind":"call","connector":"slack","outcome":"ok"}`)); err != nil {
//		return err
//	}
//	n, err := st.VerifyAudit(ctx) // n records intact, or err is an *AuditBreak
//
// A Store is safe for concurrent use.
package store
