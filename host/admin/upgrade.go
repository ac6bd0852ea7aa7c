package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
)

// RejectUpgrade discards the pending version of connector name (one that asks for more than
// the active version and waits for an admin): it is deleted from the store, the active version
// keeps running under its grant, and the rejection is recorded with who made it. Installing the
// bundle again asks anew.
func (a *Admin) RejectUpgrade(ctx context.Context, name, version, by string) error {
	in, err := a.st.GetInstalled(ctx, name, version)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("connector %s@%s is not installed (see `airlock plugin list`): %w", name, version, store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if in.Status != store.InstalledPending {
		return fmt.Errorf("connector %s@%s is %s, not a pending upgrade: only a pending version can be rejected (revoke the grant to stop an active one): %w",
			name, version, in.Status, store.ErrConflict)
	}
	if err := a.st.DeleteInstalled(ctx, name, version); err != nil {
		return err
	}
	a.logger.Info("upgrade rejected", "connector", name, "version", version, "by", by)
	return audit.Action(ctx, a.st, by, "reject upgrade", name, map[string]string{"version": version, "digest": in.Digest})
}

func (a *Admin) apiRejectUpgrade(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	err := a.RejectUpgrade(r.Context(), name, version, adminFrom(r.Context()))
	reply(w, map[string]any{"rejected": name, "version": version}, err)
}
