package store

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"
)

// TrustKey is a publisher's ed25519 public key: bundles signed with it are trusted.
type TrustKey struct {
	Name      string
	PublicKey []byte // ed25519.PublicKeySize bytes
	Added     time.Time
	AddedBy   string
}

// PutTrustKey adds or replaces the trusted key k.Name.
func (s *Store) PutTrustKey(ctx context.Context, k TrustKey) error {
	op := "trusting key " + k.Name
	if k.Name == "" {
		return fmt.Errorf("store: %s: a trusted key needs a name", op)
	}
	if len(k.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("store: %s: an ed25519 public key is %d bytes, not %d", op, ed25519.PublicKeySize, len(k.PublicKey))
	}
	_, err := s.exec(ctx, `INSERT INTO trust_keys (name, public_key, added, added_by) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET public_key = excluded.public_key, added = excluded.added, added_by = excluded.added_by`,
		k.Name, k.PublicKey, toNanos(s.stamp(k.Added)), k.AddedBy)
	if err == nil {
		s.notify(ctx, ChangeTrust, k.Name)
	}
	return wrap(op, err)
}

// ListTrustKeys returns the trusted keys sorted by name.
func (s *Store) ListTrustKeys(ctx context.Context) ([]TrustKey, error) {
	rows, err := s.query(ctx, `SELECT name, public_key, added, added_by FROM trust_keys ORDER BY name`)
	if err != nil {
		return nil, wrap("listing trusted keys", err)
	}
	defer rows.Close()
	var out []TrustKey
	for rows.Next() {
		var (
			k     TrustKey
			added int64
		)
		if err := rows.Scan(&k.Name, &k.PublicKey, &added, &k.AddedBy); err != nil {
			return nil, wrap("listing trusted keys", err)
		}
		k.Added = fromNanos(added)
		out = append(out, k)
	}
	return out, wrap("listing trusted keys", rows.Err())
}

// DeleteTrustKey removes the trusted key name, or returns an error wrapping [ErrNotFound].
func (s *Store) DeleteTrustKey(ctx context.Context, name string) error {
	defer s.notify(ctx, ChangeTrust, name)
	return s.deleteOne(ctx, "trusted key "+name, `DELETE FROM trust_keys WHERE name = ?`, name)
}
