package host

import (
	"context"
	"errors"
	"time"

	"github.com/airlock-dev/airlock/host/internal/credential"
)

// Disconnect ends subject's connection to the connector's authorization-code slot. When the
// slot's manifest names a revocation_url, the provider is first asked to revoke the tokens
// (RFC 7009), so they stop working everywhere at once; then the connection is deleted from the
// state store and this host drops the token it holds in memory, so the subject's next call fails
// until the account is connected again. Other processes sharing the store drop theirs when
// their cached access token expires (at once, when the provider revoked it).
//
// revokeErr says why the provider was not told (credential.ErrNoRevocation without a
// revocation_url; or the endpoint's failure, never quoting it): the connection is deleted all
// the same, since keeping tokens an admin asked to drop would be worse. err is the deletion's;
// a connection that does not exist gives an error wrapping store.ErrNotFound.
func (h *Host) Disconnect(ctx context.Context, connector, slot, subject string) (revokeErr, err error) {
	if h.cfg.Store == nil {
		return nil, errors.New("host: disconnect: connections live in the state store, and this host has none")
	}
	revokeErr = credential.ErrNoRevocation
	c, loaded := h.acquire(connector)
	if loaded {
		defer c.inflight.Done()
		if p := c.providers[slot]; p != nil {
			if revokeErr = p.Revoke(ctx, subject); revokeErr != nil && !errors.Is(revokeErr, credential.ErrNoRevocation) {
				h.logger.Warn("disconnect: the provider did not revoke the tokens; the connection is deleted all the same",
					"connector", connector, "slot", slot, "err", h.scrub.String(revokeErr.Error()))
			}
		}
	}
	if err := h.cfg.Store.DeleteConnection(ctx, connector, slot, subject); err != nil {
		return revokeErr, err
	}
	if loaded {
		if p := c.providers[slot]; p != nil {
			p.Forget(subject)
		}
	}
	return revokeErr, nil
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
