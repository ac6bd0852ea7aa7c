package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// GetMeta returns the value stored under key, or an error wrapping [ErrNotFound].
func (s *Store) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.queryRow(ctx, `SELECT value FROM meta WHERE name = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(fmt.Sprintf("meta value %q", key), "")
	}
	if err != nil {
		return nil, wrap(fmt.Sprintf("reading meta value %q", key), err)
	}
	return nonNil(v), nil
}

// SetMeta stores value under key, replacing any previous value.
func (s *Store) SetMeta(ctx context.Context, key string, value []byte) error {
	_, err := s.exec(ctx, `INSERT INTO meta (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, key, nonNil(value))
	if err == nil {
		s.notify(ctx, ChangeSecret, "meta/"+key)
	}
	return wrap(fmt.Sprintf("writing meta value %q", key), err)
}

// CompareAndSetMeta sets key to value only if its current value equals old; a nil old means
// the key must not exist yet. Otherwise it changes nothing and returns an error wrapping
// [ErrConflict]: another writer got there first, so re-read and decide again.
func (s *Store) CompareAndSetMeta(ctx context.Context, key string, old, value []byte) error {
	op := fmt.Sprintf("compare-and-set meta value %q", key)
	var (
		r   sql.Result
		err error
	)
	if old == nil {
		r, err = s.exec(ctx, `INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, key, nonNil(value))
	} else {
		r, err = s.exec(ctx, `UPDATE meta SET value = ? WHERE name = ? AND value = ?`, nonNil(value), key, old)
	}
	if err != nil {
		return wrap(op, err)
	}
	if n, err := affected(r); err != nil {
		return wrap(op, err)
	} else if n == 0 {
		return fmt.Errorf("store: %s: the value changed concurrently; read it again and retry: %w", op, ErrConflict)
	}
	s.notify(ctx, ChangeSecret, "meta/"+key)
	return nil
}

// Sealed is one opaque encrypted record, such as a secret of the built-in secret store (kind
// "secret"). The store never sees its plaintext.
type Sealed struct {
	Kind, Name string
	KeyID      string // the data key Blob is sealed with
	Blob       []byte
	Updated    time.Time // stamped by the store when zero
}

// PutSealed inserts or replaces the record (r.Kind, r.Name).
func (s *Store) PutSealed(ctx context.Context, r Sealed) error {
	op := fmt.Sprintf("writing sealed record %s/%s", r.Kind, r.Name)
	if r.Kind == "" || r.Name == "" {
		return fmt.Errorf("store: %s: a sealed record needs a kind and a name", op)
	}
	_, err := s.exec(ctx, `INSERT INTO sealed (kind, name, key_id, blob, updated) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (kind, name) DO UPDATE SET key_id = excluded.key_id, blob = excluded.blob, updated = excluded.updated`,
		r.Kind, r.Name, r.KeyID, nonNil(r.Blob), toNanos(s.stamp(r.Updated)))
	if err == nil {
		s.notify(ctx, ChangeSecret, r.Kind+"/"+r.Name)
	}
	return wrap(op, err)
}

// GetSealed returns the record (kind, name), or an error wrapping [ErrNotFound].
func (s *Store) GetSealed(ctx context.Context, kind, name string) (Sealed, error) {
	r := Sealed{Kind: kind, Name: name}
	var updated int64
	err := s.queryRow(ctx, `SELECT key_id, blob, updated FROM sealed WHERE kind = ? AND name = ?`, kind, name).
		Scan(&r.KeyID, &r.Blob, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Sealed{}, notFound(fmt.Sprintf("sealed record %s/%s", kind, name), "")
	}
	if err != nil {
		return Sealed{}, wrap(fmt.Sprintf("reading sealed record %s/%s", kind, name), err)
	}
	r.Blob = nonNil(r.Blob)
	r.Updated = fromNanos(updated)
	return r, nil
}

// ListSealed returns every record of kind, sorted by name, blobs included.
func (s *Store) ListSealed(ctx context.Context, kind string) ([]Sealed, error) {
	op := fmt.Sprintf("listing sealed records of kind %s", kind)
	rows, err := s.query(ctx, `SELECT name, key_id, blob, updated FROM sealed WHERE kind = ? ORDER BY name`, kind)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []Sealed
	for rows.Next() {
		r := Sealed{Kind: kind}
		var updated int64
		if err := rows.Scan(&r.Name, &r.KeyID, &r.Blob, &updated); err != nil {
			return nil, wrap(op, err)
		}
		r.Blob = nonNil(r.Blob)
		r.Updated = fromNanos(updated)
		out = append(out, r)
	}
	return out, wrap(op, rows.Err())
}

// DeleteSealed removes the record (kind, name), or returns an error wrapping [ErrNotFound].
func (s *Store) DeleteSealed(ctx context.Context, kind, name string) error {
	defer s.notify(ctx, ChangeSecret, kind+"/"+name)
	return s.deleteOne(ctx, fmt.Sprintf("sealed record %s/%s", kind, name),
		`DELETE FROM sealed WHERE kind = ? AND name = ?`, kind, name)
}

// deleteOne runs a DELETE and reports ErrNotFound when it removed nothing.
func (s *Store) deleteOne(ctx context.Context, what, q string, args ...any) error {
	r, err := s.exec(ctx, q, args...)
	if err != nil {
		return wrap("deleting "+what, err)
	}
	n, err := affected(r)
	if err != nil {
		return wrap("deleting "+what, err)
	}
	if n == 0 {
		return notFound(what, "")
	}
	return nil
}
