package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// ConsoleSession is a signed-in session of the admin web console (host/console), kept in the
// store so that every replica serves it: a sign-in on one replica is honoured by the others,
// and a sign-out on any of them ends it everywhere. It holds hashes only: a copy of the
// database neither rides a session nor learns an admin token.
type ConsoleSession struct {
	IDSHA256    string // hex SHA-256 of the session ID (the cookie's value), never the ID
	TokenSHA256 string // hex SHA-256 of the admin token that signed in, never the token
	Created     time.Time
	// LastSeen is the session's last use, as last written (the console writes it at most
	// once per interval of its choosing, not on every request).
	LastSeen time.Time
}

// AddConsoleSession records a new session. An IDSHA256 already recorded is an error wrapping
// [ErrConflict].
func (s *Store) AddConsoleSession(ctx context.Context, cs ConsoleSession) error {
	const op = "adding a console session"
	_, err := s.exec(ctx, `INSERT INTO console_sessions (id_sha256, token_sha256, created, last_seen) VALUES (?, ?, ?, ?)`,
		cs.IDSHA256, cs.TokenSHA256, toNanos(s.stamp(cs.Created)), toNanos(s.stamp(cs.LastSeen)))
	if err != nil && s.d.isUnique(err) {
		return wrap(op, ErrConflict)
	}
	return wrap(op, err)
}

// GetConsoleSession returns the session whose ID hashes to idSHA256, or an error wrapping
// [ErrNotFound] (never recorded, signed out, or swept). Whether it is still live is the
// caller's to judge from LastSeen.
func (s *Store) GetConsoleSession(ctx context.Context, idSHA256 string) (ConsoleSession, error) {
	const op = "reading a console session"
	row, err := s.readRow(ctx, `SELECT token_sha256, created, last_seen FROM console_sessions WHERE id_sha256 = ?`, idSHA256)
	if err != nil {
		return ConsoleSession{}, wrap(op, err)
	}
	cs := ConsoleSession{IDSHA256: idSHA256}
	var created, seen int64
	err = row.Scan(&cs.TokenSHA256, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleSession{}, notFound("the console session", "signed out or expired")
	}
	if err != nil {
		return ConsoleSession{}, wrap(op, err)
	}
	cs.Created, cs.LastSeen = fromNanos(created), fromNanos(seen)
	return cs, nil
}

// TouchConsoleSession moves the session's LastSeen from was (as read) to now. Concurrent
// touches of one session (several replicas, several tabs) write once; a session gone in
// between stays gone.
func (s *Store) TouchConsoleSession(ctx context.Context, idSHA256 string, was, now time.Time) error {
	_, err := s.exec(ctx, `UPDATE console_sessions SET last_seen = ? WHERE id_sha256 = ? AND last_seen = ?`,
		toNanos(now), idSHA256, toNanos(was))
	return wrap("touching a console session", err)
}

// DeleteConsoleSession ends the session whose ID hashes to idSHA256 (sign-out, or its token is
// no longer valid). Deleting a session that is gone already is not an error.
func (s *Store) DeleteConsoleSession(ctx context.Context, idSHA256 string) error {
	_, err := s.exec(ctx, `DELETE FROM console_sessions WHERE id_sha256 = ?`, idSHA256)
	return wrap("ending a console session", err)
}

// PurgeConsoleSessions deletes the sessions last seen before idleSince (expired by the
// console's idle timeout) and returns how many it deleted.
func (s *Store) PurgeConsoleSessions(ctx context.Context, idleSince time.Time) (int64, error) {
	const op = "purging expired console sessions"
	r, err := s.exec(ctx, `DELETE FROM console_sessions WHERE last_seen < ?`, toNanos(idleSince))
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := affected(r)
	return n, wrap(op, err)
}
