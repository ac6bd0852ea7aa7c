package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Token kinds.
const (
	TokenAgent = "agent"
	TokenAdmin = "admin"
)

// Token is a bearer token's record: its holder and the SHA-256 of the token, never the token.
type Token struct {
	Kind    string // TokenAgent or TokenAdmin
	Name    string
	Subject string    // the tenant an agent's calls act for; "" for admins
	SHA256  string    // hex
	Created time.Time // stamped by the store when zero
	// LastUsed is when the token last authenticated a request (to the minute); zero: never.
	LastUsed time.Time
	// Expires is when the token stops working; zero: never.
	Expires time.Time
}

// lastUsedEvery is how stale LastUsed may get: a token used all the time is written once a
// minute, not on every request.
const lastUsedEvery = time.Minute

// AddToken records a new token. A name already used for that kind is an error wrapping
// [ErrConflict].
func (s *Store) AddToken(ctx context.Context, t Token) error {
	op := fmt.Sprintf("adding %s token %s", t.Kind, t.Name)
	_, err := s.exec(ctx, `INSERT INTO tokens (kind, name, subject, sha256, created, last_used, expires) VALUES (?, ?, ?, ?, ?, 0, ?)`,
		t.Kind, t.Name, t.Subject, t.SHA256, toNanos(s.stamp(t.Created)), toNanos(t.Expires))
	if err != nil && s.d.isUnique(err) {
		return fmt.Errorf("store: %s: it already exists: %w", op, ErrConflict)
	}
	return wrap(op, err)
}

// ListTokens returns the tokens of kind, sorted by name.
func (s *Store) ListTokens(ctx context.Context, kind string) ([]Token, error) {
	op := "listing " + kind + " tokens"
	rows, err := s.query(ctx, `SELECT name, subject, sha256, created, last_used, expires FROM tokens WHERE kind = ? ORDER BY name`, kind)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t := Token{Kind: kind}
		var created, used, expires int64
		if err := rows.Scan(&t.Name, &t.Subject, &t.SHA256, &created, &used, &expires); err != nil {
			return nil, wrap(op, err)
		}
		t.Created, t.LastUsed, t.Expires = fromNanos(created), fromNanos(used), fromNanos(expires)
		out = append(out, t)
	}
	return out, wrap(op, rows.Err())
}

// RevokeToken deletes the token (kind, name), or returns an error wrapping [ErrNotFound]. The
// other replicas are told at once (a token is looked up on every request anyway).
func (s *Store) RevokeToken(ctx context.Context, kind, name string) error {
	if err := s.deleteOne(ctx, kind+" token "+name, `DELETE FROM tokens WHERE kind = ? AND name = ?`, kind, name); err != nil {
		return err
	}
	s.notify(ctx, ChangeToken, kind+"/"+name)
	return nil
}

// LookupToken returns the token of kind whose SHA-256 is sha256hex, if it exists and has not
// expired at now, and records its use (at most once a minute). ok is false for an unknown,
// revoked or expired token.
func (s *Store) LookupToken(ctx context.Context, kind, sha256hex string, now time.Time) (t Token, ok bool, err error) {
	t.Kind = kind
	var created, used, expires int64
	row, err := s.readRow(ctx, `SELECT name, subject, sha256, created, last_used, expires FROM tokens WHERE kind = ? AND sha256 = ?`, kind, sha256hex)
	if err == nil {
		err = row.Scan(&t.Name, &t.Subject, &t.SHA256, &created, &used, &expires)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, false, nil
	}
	if err != nil {
		return Token{}, false, wrap("looking up a "+kind+" token", err)
	}
	t.Created, t.LastUsed, t.Expires = fromNanos(created), fromNanos(used), fromNanos(expires)
	if !t.Expires.IsZero() && !now.Before(t.Expires) {
		return Token{}, false, nil
	}
	if now.Sub(t.LastUsed) >= lastUsedEvery {
		t.LastUsed = now.UTC().Truncate(time.Second)
		// Best effort: a failed stamp must not refuse a valid token.
		_, _ = s.exec(ctx, `UPDATE tokens SET last_used = ? WHERE kind = ? AND name = ? AND last_used = ?`,
			toNanos(t.LastUsed), kind, t.Name, used)
	}
	return t, true, nil
}
