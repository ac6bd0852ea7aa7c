package host

import (
	"context"
	"errors"
)

// Disconnect deletes subject's connection to the connector's authorization-code slot from the
// state store and drops the token this host holds in memory for it, so the subject's next call
// fails until the account is connected again. Other processes sharing the store drop theirs
// when their cached access token expires. Deleting a connection that does not exist returns an
// error wrapping store.ErrNotFound.
func (h *Host) Disconnect(ctx context.Context, connector, slot, subject string) error {
	if h.cfg.Store == nil {
		return errors.New("host: disconnect: connections live in the state store, and this host has none")
	}
	if err := h.cfg.Store.DeleteConnection(ctx, connector, slot, subject); err != nil {
		return err
	}
	if c, ok := h.acquire(connector); ok {
		defer c.inflight.Done()
		if p := c.providers[slot]; p != nil {
			p.Forget(subject)
		}
	}
	return nil
}
