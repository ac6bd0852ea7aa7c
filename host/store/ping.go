package store

import (
	"context"
	"fmt"

	"github.com/airlock-dev/airlock/host/secret"
)

// Ping checks that the database answers, for a readiness probe. The error never holds the DSN.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("store: the %s database does not answer: %w", s.d.name, secret.RedactedError(err))
	}
	return nil
}
