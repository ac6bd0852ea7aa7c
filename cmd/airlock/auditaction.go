package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/bundle"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

// anchorPath is where checkpoints are also written outside the database:
// $AIRLOCK_AUDIT_ANCHOR, else STATE_DIR/audit-anchor.jsonl.
func anchorPath(stateDir string) string {
	if p := os.Getenv("AIRLOCK_AUDIT_ANCHOR"); p != "" {
		return p
	}
	return filepath.Join(stateDir, audit.AnchorFile)
}

// attachAudit unseals the audit keys of st with the master key and attaches the keyed trail,
// so every record this process appends is authenticated and checkpointed.
func (g *globals) attachAudit(ctx context.Context, st *store.Store) (*audit.Trail, error) {
	if t := audit.TrailOf(st); t != nil {
		return t, nil
	}
	_, cfg, stateDir, err := g.stateDSN()
	if err != nil {
		return nil, err
	}
	vault, err := g.vault(cfg, secret.Mux{"env": secret.Env{}, "file": secret.File{}})
	if err != nil {
		return nil, err
	}
	// The same rule as the secret store's: a read-only command never creates a master key, and
	// with none yet there is no audit key to key records with (nor records it appends).
	key, err := g.masterKey(ctx, st, cfg, stateDir, vault)
	if err != nil || key == nil {
		return nil, err
	}
	ss, err := secret.OpenStore(ctx, storeBackend{st}, key)
	if err != nil {
		return nil, err
	}
	t, err := audit.Attach(ctx, st, ss, &audit.TrailOptions{Anchor: anchorPath(stateDir)})
	if err != nil {
		return nil, fmt.Errorf("opening the audit trail: %w", err)
	}
	return t, nil
}

// recordAction records an admin action made from the CLI, as adminName() (cli:<os user>):
// names and the resulting change only, never a secret value. st may be nil: the state store is
// opened for the record.
func (g *globals) recordAction(ctx context.Context, st *store.Store, action, target string, detail any) error {
	if st == nil {
		var err error
		if st, err = g.openStore(ctx); err != nil {
			return fmt.Errorf("%s %s was done but could not be recorded in the audit log: %w", action, target, err)
		}
		defer st.Close()
	}
	g.mayCreateKey = true // an admin action is recorded keyed: a fresh embedded state gets its key
	if t, err := g.attachAudit(ctx, st); err != nil || t == nil {
		if err == nil {
			err = errors.New("no master key to key the audit trail with")
		}
		return fmt.Errorf("%s %s was done but could not be recorded in the audit log: %w", action, target, err)
	}
	if err := audit.Action(ctx, st, adminName(), action, target, detail); err != nil {
		return fmt.Errorf("%s %s was done but could not be recorded in the audit log: %w", action, target, err)
	}
	return nil
}

// recordInstall records a bundle installation made with the CLI.
func (g *globals) recordInstall(ctx context.Context, st *store.Store, res *bundle.Result) error {
	action, detail := installAction(res)
	return g.recordAction(ctx, st, action, res.Installed.Name, detail)
}

// installAction describes an installation for the audit trail: "install" for a first or
// replacing version, "upgrade" for one left pending because it asks for more.
func installAction(res *bundle.Result) (string, map[string]any) {
	in := res.Installed
	action := "install"
	if in.Status == bundle.StatusPending {
		action = "upgrade"
	}
	detail := map[string]any{"version": in.Version, "module_sha256": in.Digest, "publisher": in.Publisher,
		"status": in.Status, "previous": res.Previous, "unsigned": in.Unsigned, "already_installed": res.AlreadyInstalled}
	if len(res.Changes) > 0 {
		detail["asks_for_more"] = res.Changes
	}
	return action, detail
}
