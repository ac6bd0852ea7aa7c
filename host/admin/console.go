package admin

import (
	"context"
	"errors"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
)

// GrantTarget returns the manifest of the version of connector name that a grant without a
// version applies to ([Admin.Grant]): the active one, else the only installed one.
func (a *Admin) GrantTarget(ctx context.Context, name string) (*manifest.Manifest, error) {
	version := ""
	if act, err := a.st.ActiveInstalled(ctx, name); err == nil {
		version = act.Version
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	c, err := a.installed(ctx, name, version)
	if err != nil {
		return nil, err
	}
	return c.Manifest, nil
}

// CheckGrant reports what [Admin.Grant] would refuse in g for connector name, without
// recording anything: names the manifest does not declare, looser limits, secret references
// that cannot be resolved. The web console checks a grant before it shows its diff.
func (a *Admin) CheckGrant(ctx context.Context, name string, g *manifest.Grant) error {
	m, err := a.GrantTarget(ctx, name)
	if err != nil {
		return err
	}
	if err := host.CheckGrant(m, g); err != nil {
		return err
	}
	_, err = a.CheckReferences(ctx, g)
	return err
}
