package credential

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"
)

// Connection statuses.
const (
	StatusConnected   = "connected"
	StatusNeedsReauth = "needs_reauth"
)

// Connection is the persisted state of one connection (connector, credential slot, subject) of
// an OAuth authorization-code slot. Token is sealed: it is the [Sealer] output for the JSON of
// the access token, refresh token and expiry, with the connection's identity as associated data,
// so a blob copied to another connection does not open.
type Connection struct {
	Connector, Slot, Subject string
	// Token is the sealed token set; nil when Status is needs_reauth and no token is kept.
	Token []byte
	// Metadata is non-secret connection metadata (instance_url).
	Metadata map[string]string
	// Status is StatusConnected or StatusNeedsReauth.
	Status string
	// Detail says, in plain words, why a connection needs re-authorisation.
	Detail  string
	Updated time.Time
}

// TokenStore persists connections. The state store (SQLite or PostgreSQL) implements it in
// production; [MemoryStore] is the in-memory implementation. Implementations must be safe for
// concurrent use, and PutConnection must replace the whole record atomically.
type TokenStore interface {
	// GetConnection returns the connection, or an error wrapping [ErrNoConnection] if there is
	// none.
	GetConnection(ctx context.Context, connector, slot, subject string) (Connection, error)
	// PutConnection creates or replaces the connection with c's identity.
	PutConnection(ctx context.Context, c Connection) error
}

// ErrNoConnection is wrapped by TokenStore.GetConnection when no connection is stored.
var ErrNoConnection = errors.New("no such connection")

// Sealer encrypts tokens at rest (AES-256-GCM under the host's data key in production). aad is
// bound to the ciphertext: Open with a different aad fails.
type Sealer interface {
	Seal(aad string, plaintext []byte) ([]byte, error)
	Open(aad string, blob []byte) ([]byte, error)
}

// MemoryStore is an in-memory [TokenStore]. The zero value is ready to use and safe for
// concurrent use; its connections are lost when the process exits.
type MemoryStore struct {
	mu    sync.Mutex
	conns map[[3]string]Connection
}

// GetConnection implements [TokenStore].
func (s *MemoryStore) GetConnection(ctx context.Context, connector, slot, subject string) (Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[[3]string{connector, slot, subject}]
	if !ok {
		return Connection{}, fmt.Errorf("connection %s/%s/%s: %w", connector, slot, subject, ErrNoConnection)
	}
	c.Token = append([]byte(nil), c.Token...)
	c.Metadata = maps.Clone(c.Metadata)
	return c, nil
}

// PutConnection implements [TokenStore].
func (s *MemoryStore) PutConnection(ctx context.Context, c Connection) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = make(map[[3]string]Connection)
	}
	c.Token = append([]byte(nil), c.Token...)
	c.Metadata = maps.Clone(c.Metadata)
	s.conns[[3]string{c.Connector, c.Slot, c.Subject}] = c
	return nil
}

// EphemeralSealer is a [Sealer] using AES-256-GCM under a random key made by
// [NewEphemeralSealer]; what it seals cannot be opened after the process exits. Safe for
// concurrent use.
type EphemeralSealer struct {
	aead cipher.AEAD
}

// NewEphemeralSealer returns a Sealer with a fresh random key.
func NewEphemeralSealer() *EphemeralSealer {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // unreachable: the key is 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &EphemeralSealer{aead: aead}
}

// Seal implements [Sealer].
func (s *EphemeralSealer) Seal(aad string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, []byte(aad)), nil
}

// Open implements [Sealer].
func (s *EphemeralSealer) Open(aad string, blob []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(blob) < n+s.aead.Overhead() {
		return nil, errors.New("sealed token is truncated")
	}
	out, err := s.aead.Open(nil, blob[:n], blob[n:], []byte(aad))
	if err != nil {
		return nil, errors.New("sealed token does not open with this key for this connection")
	}
	return out, nil
}
