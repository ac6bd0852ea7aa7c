package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrSchemaTooNew reports a database whose schema was written by a newer airlock than this
// binary. Open refuses it rather than misread or corrupt it.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary")

// migration is one numbered schema step. Steps are never edited once released: a change is a
// new step appended at the end. "{blob}" in a statement becomes the dialect's bytes type.
type migration struct {
	name  string
	stmts []string
}

// migrations is the schema history; step i has version i+1.
var migrations = []migration{
	{name: "initial schema", stmts: []string{
		`CREATE TABLE meta (
			name  TEXT PRIMARY KEY,
			value {blob} NOT NULL
		)`,
		`CREATE TABLE sealed (
			kind    TEXT NOT NULL,
			name    TEXT NOT NULL,
			key_id  TEXT NOT NULL,
			blob    {blob} NOT NULL,
			updated BIGINT NOT NULL,
			PRIMARY KEY (kind, name)
		)`,
		`CREATE TABLE connections (
			connector TEXT NOT NULL,
			slot      TEXT NOT NULL,
			subject   TEXT NOT NULL,
			token     {blob},
			metadata  TEXT NOT NULL,
			status    TEXT NOT NULL,
			detail    TEXT NOT NULL,
			updated   BIGINT NOT NULL,
			PRIMARY KEY (connector, slot, subject)
		)`,
		`CREATE TABLE installed (
			name         TEXT NOT NULL,
			version      TEXT NOT NULL,
			digest       TEXT NOT NULL,
			publisher    TEXT NOT NULL,
			manifest     {blob} NOT NULL,
			module       {blob} NOT NULL,
			status       TEXT NOT NULL CHECK (status IN ('active', 'pending', 'retired')),
			unsigned     INTEGER NOT NULL,
			installed_at BIGINT NOT NULL,
			PRIMARY KEY (name, version)
		)`,
		// At most one active version per connector, enforced by the database itself.
		`CREATE UNIQUE INDEX installed_one_active ON installed (name) WHERE status = 'active'`,
		`CREATE TABLE grants (
			connector TEXT NOT NULL,
			version   INTEGER NOT NULL,
			body      {blob},
			admin     TEXT NOT NULL,
			note      TEXT NOT NULL,
			created   BIGINT NOT NULL,
			revoked   INTEGER NOT NULL,
			PRIMARY KEY (connector, version)
		)`,
		`CREATE TABLE approvals (
			id          TEXT PRIMARY KEY,
			connector   TEXT NOT NULL,
			tool        TEXT NOT NULL,
			agent       TEXT NOT NULL,
			subject     TEXT NOT NULL,
			args_sha256 TEXT NOT NULL,
			args        {blob} NOT NULL,
			status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used', 'expired')),
			reason      TEXT NOT NULL,
			decided_by  TEXT NOT NULL,
			created     BIGINT NOT NULL,
			expires     BIGINT NOT NULL,
			decided     BIGINT NOT NULL
		)`,
		`CREATE INDEX approvals_status ON approvals (status, created)`,
		`CREATE INDEX approvals_call ON approvals (connector, tool, subject, args_sha256)`,
		`CREATE TABLE idempotency (
			scope       TEXT NOT NULL,
			idem_key    TEXT NOT NULL,
			args_sha256 TEXT NOT NULL,
			state       TEXT NOT NULL CHECK (state IN ('running', 'done')),
			outcome     {blob},
			created     BIGINT NOT NULL,
			expires     BIGINT NOT NULL,
			PRIMARY KEY (scope, idem_key)
		)`,
		`CREATE INDEX idempotency_expires ON idempotency (expires)`,
		`CREATE TABLE trust_keys (
			name       TEXT PRIMARY KEY,
			public_key {blob} NOT NULL,
			added      BIGINT NOT NULL,
			added_by   TEXT NOT NULL
		)`,
		`CREATE TABLE audit (
			seq       BIGINT PRIMARY KEY,
			ts        BIGINT NOT NULL,
			prev_hash TEXT NOT NULL,
			hash      TEXT NOT NULL,
			data      {blob} NOT NULL,
			kind      TEXT NOT NULL,
			connector TEXT NOT NULL,
			tool      TEXT NOT NULL,
			agent     TEXT NOT NULL,
			subject   TEXT NOT NULL,
			outcome   TEXT NOT NULL
		)`,
		`CREATE INDEX audit_ts ON audit (ts)`,
		`CREATE INDEX audit_connector ON audit (connector, seq)`,
		`CREATE INDEX audit_agent ON audit (agent, seq)`,
	}},
	{name: "keyed audit chain and signed checkpoints", stmts: []string{
		// key_id and mac authenticate each link with a key the database does not hold
		// (package audit); '' on records written before this step.
		`ALTER TABLE audit ADD COLUMN key_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE audit ADD COLUMN mac TEXT NOT NULL DEFAULT ''`,
		`CREATE TABLE audit_checkpoints (
			seq     BIGINT NOT NULL,
			hash    TEXT NOT NULL,
			ts      BIGINT NOT NULL,
			replica TEXT NOT NULL,
			key_id  TEXT NOT NULL,
			sig     TEXT NOT NULL,
			PRIMARY KEY (replica, seq)
		)`,
		`CREATE INDEX audit_checkpoints_seq ON audit_checkpoints (seq)`,
	}},
	{name: "bearer tokens", stmts: []string{
		// Agent and admin tokens, by SHA-256 only, so every replica on the store accepts the
		// same tokens (they lived in STATE_DIR/agents.json and admins.json before).
		`CREATE TABLE tokens (
			kind      TEXT NOT NULL CHECK (kind IN ('agent', 'admin')),
			name      TEXT NOT NULL,
			subject   TEXT NOT NULL,
			sha256    TEXT NOT NULL UNIQUE,
			created   BIGINT NOT NULL,
			last_used BIGINT NOT NULL,
			expires   BIGINT NOT NULL,
			PRIMARY KEY (kind, name)
		)`,
	}},
	{name: "agent profiles", stmts: []string{
		// What each agent (a profile's members) may use on top of the grants, versioned like
		// grants: the highest version is current; a deleted version has no body.
		`CREATE TABLE profiles (
			name    TEXT NOT NULL,
			version INTEGER NOT NULL,
			body    {blob},
			admin   TEXT NOT NULL,
			note    TEXT NOT NULL,
			created BIGINT NOT NULL,
			deleted INTEGER NOT NULL,
			PRIMARY KEY (name, version)
		)`,
	}},
	{name: "who asked: session, conversation and end user of calls", stmts: []string{
		// Labels a client sends with a call (never authority), kept in their own columns for
		// searching; '' on records written before this step and on records without them.
		`ALTER TABLE audit ADD COLUMN session TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE audit ADD COLUMN conversation TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE audit ADD COLUMN end_user TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX audit_conversation ON audit (conversation, seq)`,
		`CREATE INDEX audit_end_user ON audit (end_user, seq)`,
	}},
	{name: "admin roles", stmts: []string{
		// An admin token's role (viewer, approver, granter, owner); '' for agent tokens. Admin
		// tokens issued before roles existed could do everything: they become owners.
		`ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT ''`,
		`UPDATE tokens SET role = 'owner' WHERE kind = 'admin'`,
	}},
	{name: "idempotency leases", stmts: []string{
		// The replica running a keyed call renews its lease (lease_owner until lease_expires);
		// attempted is set before its first upstream request leaves. 0: no lease (a record
		// written before this step, or by an older binary), which waits for expires as before.
		`ALTER TABLE idempotency ADD COLUMN lease_owner TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE idempotency ADD COLUMN lease_expires BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE idempotency ADD COLUMN attempted INTEGER NOT NULL DEFAULT 0`,
	}},
	{name: "admin console sessions", stmts: []string{
		// The web console's sign-in sessions, shared by every replica on the store. Only
		// SHA-256 hashes: of the session ID (the cookie) and of the admin token that signed in
		// (looked up in tokens on every request), so a copy of the database rides no session.
		`CREATE TABLE console_sessions (
			id_sha256    TEXT PRIMARY KEY,
			token_sha256 TEXT NOT NULL,
			created      BIGINT NOT NULL,
			last_seen    BIGINT NOT NULL
		)`,
		`CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen)`,
	}},
}

// SchemaVersion is the schema version this binary writes.
func SchemaVersion() int { return len(migrations) }

// migrate applies the missing steps in one transaction, under a lock so that several processes
// opening the same database at once apply each step exactly once.
func (s *Store) migrate(ctx context.Context) error {
	return s.inTx(ctx, func(t tx) error {
		if err := t.lock(ctx, lockMigrate); err != nil {
			return wrap("locking the schema for migration", err)
		}
		if _, err := t.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY,
			name    TEXT NOT NULL,
			applied BIGINT NOT NULL
		)`); err != nil {
			return wrap("creating schema_migrations", err)
		}
		var have int
		if err := t.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return wrap("reading the schema version", err)
		}
		if have > len(migrations) {
			return fmt.Errorf("store: the %s database is at schema version %d but this airlock knows versions up to %d: "+
				"upgrade airlock, or point it at another database: %w", s.d.name, have, len(migrations), ErrSchemaTooNew)
		}
		for v := have + 1; v <= len(migrations); v++ {
			m := migrations[v-1]
			for _, stmt := range m.stmts {
				if _, err := t.exec(ctx, strings.ReplaceAll(stmt, "{blob}", s.d.blob)); err != nil {
					return fmt.Errorf("store: schema step %d (%s): %w", v, m.name, err)
				}
			}
			if _, err := t.exec(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
				v, m.name, s.now().UnixNano()); err != nil {
				return fmt.Errorf("store: schema step %d (%s): %w", v, m.name, err)
			}
		}
		return nil
	})
}
