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
	Subject string // the tenant an agent's calls act for; "" for admins
	// Role is an admin token's role (viewer, approver, granter or owner: host/admin.Role); ""
	// for agents. The store keeps it as given; host/admin decides what it allows.
	Role    string
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

const tokenColumns = `name, subject, role, sha256, created, last_used, expires`

// scanToken reads tokenColumns into a Token of kind.
func scanToken(kind string, row interface{ Scan(...any) error }) (Token, int64, error) {
	t := Token{Kind: kind}
	var created, used, expires int64
	err := row.Scan(&t.Name, &t.Subject, &t.Role, &t.SHA256, &created, &used, &expires)
	t.Created, t.LastUsed, t.Expires = fromNanos(created), fromNanos(used), fromNanos(expires)
	return t, used, err
}

// AddToken records a new token. A name already used for that kind is an error wrapping
// [ErrConflict].
func (s *Store) AddToken(ctx context.Context, t Token) error {
	op := fmt.Sprintf("adding %s token %s", t.Kind, t.Name)
	_, err := s.exec(ctx, `INSERT INTO tokens (kind, name, subject, role, sha256, created, last_used, expires) VALUES (?, ?, ?, ?, ?, ?, 0, ?)`,
		t.Kind, t.Name, t.Subject, t.Role, t.SHA256, toNanos(s.stamp(t.Created)), toNanos(t.Expires))
	if err != nil && s.d.isUnique(err) {
		return fmt.Errorf("store: %s: it already exists: %w", op, ErrConflict)
	}
	if err != nil {
		return wrap(op, err)
	}
	return wrap(op, s.tokens.changed())
}

// ListTokens returns the tokens of kind, sorted by name.
func (s *Store) ListTokens(ctx context.Context, kind string) ([]Token, error) {
	op := "listing " + kind + " tokens"
	rows, err := s.query(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE kind = ? ORDER BY name`, kind)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, _, err := scanToken(kind, rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, t)
	}
	return out, wrap(op, rows.Err())
}

// RevokeToken deletes the token (kind, name), or returns an error wrapping [ErrNotFound]. The
// other replicas are told at once: on PostgreSQL a token is looked up on every request; on an
// SQLite file the change mark makes every process forget the tokens it kept (see tokenCache).
func (s *Store) RevokeToken(ctx context.Context, kind, name string) error {
	what := kind + " token " + name
	if err := s.deleteOne(ctx, what, `DELETE FROM tokens WHERE kind = ? AND name = ?`, kind, name); err != nil {
		return err
	}
	s.notify(ctx, ChangeToken, kind+"/"+name)
	return wrap("revoking "+what, s.tokens.changed())
}

// SetTokenRole changes the role of the token (kind, name), or returns an error wrapping
// [ErrNotFound]. Like a revocation it takes effect on the token's next request, on every
// replica (roles are read with the token on each request).
func (s *Store) SetTokenRole(ctx context.Context, kind, name, role string) error {
	what := kind + " token " + name
	r, err := s.exec(ctx, `UPDATE tokens SET role = ? WHERE kind = ? AND name = ?`, role, kind, name)
	if err != nil {
		return wrap("changing the role of "+what, err)
	}
	if n, err := affected(r); err != nil || n == 0 {
		if err != nil {
			return wrap("changing the role of "+what, err)
		}
		return notFound(what, "")
	}
	s.notify(ctx, ChangeToken, kind+"/"+name)
	return wrap("changing the role of "+what, s.tokens.changed())
}

// LookupToken returns the token of kind whose SHA-256 is sha256hex, if it exists and has not
// expired at now, and records its use (at most once a minute per token, so a busy token costs
// one write a minute, not one per request). ok is false for an unknown or revoked token. An
// expired token is returned with ok false and an error wrapping [ErrExpired] (naming the
// holder and the expiry), so the caller can tell its holder why.
//
// On an SQLite file a token found is kept in memory until the next change to the tokens table,
// by this process or another (see tokenCache), or until its use is due to be stamped: a
// revocation still refuses the token's next request.
func (s *Store) LookupToken(ctx context.Context, kind, sha256hex string, now time.Time) (t Token, ok bool, err error) {
	key := tokenKey{kind, sha256hex}
	t, hit, mark := s.tokens.get(key)
	if hit && now.Sub(t.LastUsed) < lastUsedEvery {
		err := t.expiredAt(now)
		return t, err == nil, err
	}
	row, err := s.readRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE kind = ? AND sha256 = ?`, kind, sha256hex)
	if err != nil {
		return Token{}, false, wrap("looking up a "+kind+" token", err)
	}
	t, used, err := scanToken(kind, row)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, false, nil
	}
	if err != nil {
		return Token{}, false, wrap("looking up a "+kind+" token", err)
	}
	if err := t.expiredAt(now); err != nil {
		return t, false, err
	}
	if now.Sub(t.LastUsed) >= lastUsedEvery {
		t.LastUsed = now.UTC().Truncate(time.Second)
		// Best effort: a failed stamp must not refuse a valid token. The last_used = ? guard
		// makes concurrent requests of one token write once.
		_, _ = s.exec(ctx, `UPDATE tokens SET last_used = ? WHERE kind = ? AND name = ? AND last_used = ?`,
			toNanos(t.LastUsed), kind, t.Name, used)
	}
	s.tokens.put(key, t, mark)
	return t, true, nil
}

// expiredAt returns an error wrapping [ErrExpired] if t has expired at now.
func (t Token) expiredAt(now time.Time) error {
	if !t.Expires.IsZero() && !now.Before(t.Expires) {
		return fmt.Errorf("store: %s token %s expired at %s: %w", t.Kind, t.Name, t.Expires.Format(time.RFC3339), ErrExpired)
	}
	return nil
}
