package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Connection statuses.
const (
	StatusConnected   = "connected"
	StatusNeedsReauth = "needs_reauth"
)

// Connection is one connected account: one per (connector, credential slot, subject).
type Connection struct {
	Connector, Slot, Subject string
	Token                    []byte            // sealed token set (the caller seals it); nil when not connected
	Metadata                 map[string]string // non-secret, e.g. instance_url
	Status                   string            // StatusConnected or StatusNeedsReauth
	Detail                   string            // why, in plain words, when Status is needs_reauth
	Updated                  time.Time         // stamped by the store when zero
}

func connectionName(connector, slot, subject string) string {
	return fmt.Sprintf("connection %s/%s for subject %q", connector, slot, subject)
}

// GetConnection returns the connection (connector, slot, subject), or an error wrapping
// [ErrNotFound].
func (s *Store) GetConnection(ctx context.Context, connector, slot, subject string) (Connection, error) {
	rows, err := s.query(ctx, `SELECT connector, slot, subject, token, metadata, status, detail, updated
		FROM connections WHERE connector = ? AND slot = ? AND subject = ?`, connector, slot, subject)
	if err != nil {
		return Connection{}, wrap("reading "+connectionName(connector, slot, subject), err)
	}
	cs, err := scanConnections(rows)
	if err != nil {
		return Connection{}, wrap("reading "+connectionName(connector, slot, subject), err)
	}
	if len(cs) == 0 {
		return Connection{}, notFound(connectionName(connector, slot, subject), "connect the account first")
	}
	return cs[0], nil
}

// PutConnection inserts or replaces the connection (c.Connector, c.Slot, c.Subject).
func (s *Store) PutConnection(ctx context.Context, c Connection) error {
	op := "writing " + connectionName(c.Connector, c.Slot, c.Subject)
	if c.Connector == "" || c.Slot == "" {
		return fmt.Errorf("store: %s: a connection needs a connector and a credential slot", op)
	}
	md := c.Metadata
	if md == nil {
		md = map[string]string{}
	}
	mdJSON, err := json.Marshal(md)
	if err != nil {
		return wrap(op, err)
	}
	var token any
	if c.Token != nil {
		token = c.Token
	}
	_, err = s.exec(ctx, `INSERT INTO connections (connector, slot, subject, token, metadata, status, detail, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (connector, slot, subject) DO UPDATE SET token = excluded.token, metadata = excluded.metadata,
			status = excluded.status, detail = excluded.detail, updated = excluded.updated`,
		c.Connector, c.Slot, c.Subject, token, string(mdJSON), c.Status, c.Detail, toNanos(s.stamp(c.Updated)))
	return wrap(op, err)
}

// ListConnections returns the connections of connector ("" = every connector), sorted by
// connector, slot and subject.
func (s *Store) ListConnections(ctx context.Context, connector string) ([]Connection, error) {
	q := `SELECT connector, slot, subject, token, metadata, status, detail, updated FROM connections`
	var args []any
	if connector != "" {
		q += ` WHERE connector = ?`
		args = append(args, connector)
	}
	rows, err := s.query(ctx, q+` ORDER BY connector, slot, subject`, args...)
	if err != nil {
		return nil, wrap("listing connections", err)
	}
	cs, err := scanConnections(rows)
	return cs, wrap("listing connections", err)
}

// DeleteConnection removes the connection (connector, slot, subject), or returns an error
// wrapping [ErrNotFound].
func (s *Store) DeleteConnection(ctx context.Context, connector, slot, subject string) error {
	return s.deleteOne(ctx, connectionName(connector, slot, subject),
		`DELETE FROM connections WHERE connector = ? AND slot = ? AND subject = ?`, connector, slot, subject)
}

func scanConnections(rows *sql.Rows) ([]Connection, error) {
	defer rows.Close()
	var out []Connection
	for rows.Next() {
		var (
			c       Connection
			md      string
			updated int64
		)
		if err := rows.Scan(&c.Connector, &c.Slot, &c.Subject, &c.Token, &md, &c.Status, &c.Detail, &updated); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(md), &c.Metadata); err != nil {
			return nil, errors.New("the stored metadata of a connection is not valid JSON: reconnect the account")
		}
		c.Updated = fromNanos(updated)
		out = append(out, c)
	}
	return out, rows.Err()
}
