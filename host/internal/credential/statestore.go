package credential

import (
	"context"
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/host/store"
)

// StateStore adapts the host's state store (host/store) to [TokenStore]. Safe for concurrent use
// if the store is.
type StateStore struct {
	Store *store.Store
}

// GetConnection implements [TokenStore].
func (s StateStore) GetConnection(ctx context.Context, connector, slot, subject string) (Connection, error) {
	c, err := s.Store.GetConnection(ctx, connector, slot, subject)
	if errors.Is(err, store.ErrNotFound) {
		return Connection{}, fmt.Errorf("%w: %w", ErrNoConnection, err)
	}
	if err != nil {
		return Connection{}, err
	}
	return Connection{Connector: c.Connector, Slot: c.Slot, Subject: c.Subject, Token: c.Token, Metadata: c.Metadata,
		Status: c.Status, Detail: c.Detail, Updated: c.Updated}, nil
}

// PutConnection implements [TokenStore].
func (s StateStore) PutConnection(ctx context.Context, c Connection) error {
	return s.Store.PutConnection(ctx, store.Connection{Connector: c.Connector, Slot: c.Slot, Subject: c.Subject, Token: c.Token,
		Metadata: c.Metadata, Status: c.Status, Detail: c.Detail, Updated: c.Updated})
}
