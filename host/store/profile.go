package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// ChangeProfile is the kind of [Change] for an agent profile that was set or deleted.
const ChangeProfile = "profile"

// ProfileRecord is one version of an agent profile (host.Profile as JSON). Versions count up
// from 1 per name; the highest is the current one. A deleted version has Deleted set and no
// Body: the profile no longer exists until it is set again.
type ProfileRecord struct {
	Name    string
	Version int
	Body    []byte // JSON; nil when Deleted
	Admin   string // who made this change
	Note    string // why, in the admin's words
	Created time.Time
	Deleted bool
}

// PutProfile records body (JSON) as the new current version of profile name, made by admin
// with note, and tells the other replicas (LISTEN/NOTIFY; they also poll).
func (s *Store) PutProfile(ctx context.Context, name string, body []byte, admin, note string) (ProfileRecord, error) {
	if !json.Valid(body) {
		return ProfileRecord{}, fmt.Errorf("store: setting profile %s: the profile is not valid JSON", name)
	}
	return s.addProfile(ctx, ProfileRecord{Name: name, Body: body, Admin: admin, Note: note})
}

// DeleteProfile records a deleted version as the current version of profile name. Deleting a
// profile that does not exist (or is deleted already) is an error wrapping [ErrNotFound].
func (s *Store) DeleteProfile(ctx context.Context, name, admin, note string) (ProfileRecord, error) {
	cur, err := s.CurrentProfile(ctx, name)
	if err != nil {
		return ProfileRecord{}, err
	}
	if cur.Deleted {
		return ProfileRecord{}, notFound("profile "+name, "it was deleted already")
	}
	return s.addProfile(ctx, ProfileRecord{Name: name, Admin: admin, Note: note, Deleted: true})
}

func (s *Store) addProfile(ctx context.Context, p ProfileRecord) (ProfileRecord, error) {
	op := "setting profile " + p.Name
	if p.Deleted {
		op = "deleting profile " + p.Name
	}
	if p.Name == "" {
		return ProfileRecord{}, fmt.Errorf("store: %s: a profile needs a name", op)
	}
	p.Created = s.now().UTC()
	err := s.inTx(ctx, func(t tx) error {
		// Profiles are decisions like grants: the same lock serialises their writers.
		if err := t.lock(ctx, lockGrant); err != nil {
			return wrap(op, err)
		}
		var last int
		if err := t.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM profiles WHERE name = ?`, p.Name).Scan(&last); err != nil {
			return wrap(op, err)
		}
		p.Version = last + 1
		var body any
		if !p.Deleted {
			body = p.Body
		}
		_, err := t.exec(ctx, `INSERT INTO profiles (name, version, body, admin, note, created, deleted) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			p.Name, p.Version, body, p.Admin, p.Note, toNanos(p.Created), boolInt(p.Deleted))
		return wrap(op, err)
	})
	if err != nil {
		return ProfileRecord{}, err
	}
	s.notify(ctx, ChangeProfile, p.Name)
	return p, nil
}

const profileCols = `name, version, body, admin, note, created, deleted`

func scanProfiles(rows *sql.Rows) ([]ProfileRecord, error) {
	defer rows.Close()
	var out []ProfileRecord
	for rows.Next() {
		var (
			p       ProfileRecord
			created int64
			deleted int
		)
		if err := rows.Scan(&p.Name, &p.Version, &p.Body, &p.Admin, &p.Note, &created, &deleted); err != nil {
			return nil, err
		}
		p.Created, p.Deleted = fromNanos(created), deleted != 0
		if p.Deleted {
			p.Body = nil
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// CurrentProfile returns the current version of profile name (check Deleted), or an error
// wrapping [ErrNotFound] when it was never set.
func (s *Store) CurrentProfile(ctx context.Context, name string) (ProfileRecord, error) {
	rows, err := s.query(ctx, `SELECT `+profileCols+` FROM profiles WHERE name = ? ORDER BY version DESC LIMIT 1`, name)
	if err != nil {
		return ProfileRecord{}, wrap("reading profile "+name, err)
	}
	ps, err := scanProfiles(rows)
	if err != nil {
		return ProfileRecord{}, wrap("reading profile "+name, err)
	}
	if len(ps) == 0 {
		return ProfileRecord{}, notFound("profile "+name, "see `airlock profile list`")
	}
	return ps[0], nil
}

// ProfileHistory returns every version of profile name, oldest first.
func (s *Store) ProfileHistory(ctx context.Context, name string) ([]ProfileRecord, error) {
	rows, err := s.query(ctx, `SELECT `+profileCols+` FROM profiles WHERE name = ? ORDER BY version`, name)
	if err != nil {
		return nil, wrap("reading the history of profile "+name, err)
	}
	ps, err := scanProfiles(rows)
	return ps, wrap("reading the history of profile "+name, err)
}

// ListProfiles returns the current version of every profile that exists (deleted ones left
// out), sorted by name.
func (s *Store) ListProfiles(ctx context.Context) ([]ProfileRecord, error) {
	rows, err := s.query(ctx, `SELECT `+profileCols+` FROM profiles p
		WHERE version = (SELECT MAX(version) FROM profiles q WHERE q.name = p.name) AND deleted = 0
		ORDER BY name`)
	if err != nil {
		return nil, wrap("listing profiles", err)
	}
	ps, err := scanProfiles(rows)
	return ps, wrap("listing profiles", err)
}
