package host

import (
	"context"
	"errors"
	"time"
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

// ConnectionExpiry reports when the stored access token of subject's connection to the
// connector's slot expires and whether it can be refreshed (never a token). ok is false when
// the connector is not loaded here or holds no token for the subject.
func (h *Host) ConnectionExpiry(ctx context.Context, connector, slot, subject string) (expires time.Time, refreshable, ok bool, err error) {
	c, loaded := h.acquire(connector)
	if !loaded {
		return time.Time{}, false, false, nil
	}
	defer c.inflight.Done()
	p := c.providers[slot]
	if p == nil {
		return time.Time{}, false, false, nil
	}
	return p.Expiry(ctx, subject)
}
