package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// GrantRecord is one version of the grant of a connector. Versions count up from 1; the
// highest is the current one. A revoked version has Revoked set and no Grant: the connector is
// granted nothing until a new grant is put.
type GrantRecord struct {
	Connector string
	Version   int
	Grant     []byte // JSON; nil when Revoked
	Admin     string // who made this change
	Note      string // why, in the admin's words
	Created   time.Time
	Revoked   bool
}

// PutGrant records grant (JSON) as the new current grant of connector, made by admin with
// note, and returns the new version.
func (s *Store) PutGrant(ctx context.Context, connector string, grant []byte, admin, note string) (GrantRecord, error) {
	if !json.Valid(grant) {
		return GrantRecord{}, fmt.Errorf("store: granting %s: the grant is not valid JSON", connector)
	}
	return s.addGrant(ctx, GrantRecord{Connector: connector, Grant: grant, Admin: admin, Note: note})
}

// RevokeGrant records a revoked version as the current grant of connector, made by admin with
// note. A connector never granted in the store can be revoked too (one a configuration file
// grants): the revocation overrides the file. Callers check that the connector exists.
func (s *Store) RevokeGrant(ctx context.Context, connector, admin, note string) (GrantRecord, error) {
	return s.addGrant(ctx, GrantRecord{Connector: connector, Admin: admin, Note: note, Revoked: true})
}

func (s *Store) addGrant(ctx context.Context, g GrantRecord) (GrantRecord, error) {
	op := "granting " + g.Connector
	if g.Revoked {
		op = "revoking the grant of " + g.Connector
	}
	if g.Connector == "" {
		return GrantRecord{}, fmt.Errorf("store: %s: a grant needs a connector name", op)
	}
	g.Created = s.now().UTC()
	err := s.inTx(ctx, func(t tx) error {
		// Serialise grant writers (PostgreSQL replicas) so versions never collide.
		if err := t.lock(ctx, lockGrant); err != nil {
			return wrap(op, err)
		}
		var last int
		if err := t.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM grants WHERE connector = ?`, g.Connector).Scan(&last); err != nil {
			return wrap(op, err)
		}
		g.Version = last + 1
		var body any
		if !g.Revoked {
			body = g.Grant
		}
		_, err := t.exec(ctx, `INSERT INTO grants (connector, version, body, admin, note, created, revoked) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			g.Connector, g.Version, body, g.Admin, g.Note, toNanos(g.Created), boolInt(g.Revoked))
		return wrap(op, err)
	})
	if err != nil {
		return GrantRecord{}, err
	}
	s.notify(ctx, ChangeGrant, g.Connector)
	if g.Revoked {
		g.Grant = nil
	}
	return g, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const grantCols = `connector, version, body, admin, note, created, revoked`

func scanGrants(rows *sql.Rows) ([]GrantRecord, error) {
	defer rows.Close()
	var out []GrantRecord
	for rows.Next() {
		var (
			g       GrantRecord
			created int64
			revoked int
		)
		if err := rows.Scan(&g.Connector, &g.Version, &g.Grant, &g.Admin, &g.Note, &created, &revoked); err != nil {
			return nil, err
		}
		g.Created = fromNanos(created)
		g.Revoked = revoked != 0
		if g.Revoked {
			g.Grant = nil
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// CurrentGrant returns the current (highest) version of the grant of connector, or an error
// wrapping [ErrNotFound] when it was never granted. Check Revoked: a revoked current grant
// grants nothing.
func (s *Store) CurrentGrant(ctx context.Context, connector string) (GrantRecord, error) {
	rows, err := s.query(ctx, `SELECT `+grantCols+` FROM grants WHERE connector = ? ORDER BY version DESC LIMIT 1`, connector)
	if err != nil {
		return GrantRecord{}, wrap("reading the grant of "+connector, err)
	}
	gs, err := scanGrants(rows)
	if err != nil {
		return GrantRecord{}, wrap("reading the grant of "+connector, err)
	}
	if len(gs) == 0 {
		return GrantRecord{}, notFound("a grant of connector "+connector, "an admin must grant it first")
	}
	return gs[0], nil
}

// GrantHistory returns every version of the grant of connector, oldest first.
func (s *Store) GrantHistory(ctx context.Context, connector string) ([]GrantRecord, error) {
	rows, err := s.query(ctx, `SELECT `+grantCols+` FROM grants WHERE connector = ? ORDER BY version`, connector)
	if err != nil {
		return nil, wrap("reading the grant history of "+connector, err)
	}
	gs, err := scanGrants(rows)
	return gs, wrap("reading the grant history of "+connector, err)
}

// ListGrants returns the current grant of every connector ever granted, revoked ones
// included, sorted by connector.
func (s *Store) ListGrants(ctx context.Context) ([]GrantRecord, error) {
	rows, err := s.query(ctx, `SELECT `+grantCols+` FROM grants g
		WHERE version = (SELECT MAX(version) FROM grants h WHERE h.connector = g.connector)
		ORDER BY connector`)
	if err != nil {
		return nil, wrap("listing grants", err)
	}
	gs, err := scanGrants(rows)
	return gs, wrap("listing grants", err)
}
