package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

// stateDSN returns the state store's DSN: --state, the config file's state, or SQLite in the
// state directory.
func (g *globals) stateDSN() (string, *fileConfig, string, error) {
	cfg, stateDir, err := g.loadConfig()
	if err != nil {
		return "", nil, "", err
	}
	dsn := g.state
	if dsn == "" {
		dsn = cfg.State
	}
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(stateDir, "state.db")
	}
	return dsn, cfg, stateDir, nil
}

// openStore opens the state store (creating an SQLite one on first use).
func (g *globals) openStore(ctx context.Context) (*store.Store, error) {
	dsn, _, _, err := g.stateDSN()
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(dsn, "sqlite:") || strings.HasSuffix(dsn, ".db") {
		if err := mkdirFor(strings.TrimPrefix(dsn, "sqlite:")); err != nil {
			return nil, err
		}
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("opening the state store: %w", err)
	}
	if _, err := g.attachAudit(ctx, st); err != nil { // every record this process appends is keyed
		st.Close()
		return nil, err
	}
	return st, nil
}

// secrets returns the secret sources grants may reference: env:, file:, store: (the built-in
// encrypted store, whose master key is loaded here) and, when configured, vault:.
func (g *globals) secrets(ctx context.Context, st *store.Store) (secret.Mux, *secret.Store, error) {
	_, cfg, stateDir, err := g.stateDSN()
	if err != nil {
		return nil, nil, err
	}
	mux := secret.Mux{"env": secret.Env{}, "file": secret.File{}}
	key, _, err := secret.LoadMasterKey(stateDir)
	if err != nil {
		return nil, nil, err
	}
	ss, err := secret.OpenStore(ctx, storeBackend{st}, key)
	if err != nil {
		return nil, nil, err
	}
	mux["store"] = ss
	if v := cfg.Vault; v != nil {
		vc := &secret.VaultConfig{Address: v.Address, Namespace: v.Namespace, Token: v.Token, Secrets: secret.Mux{"env": secret.Env{}, "file": secret.File{}, "store": ss}}
		if v.AppRole != nil {
			vc.AppRole = &secret.AppRole{RoleID: v.AppRole.RoleID, SecretID: v.AppRole.SecretID, Mount: v.AppRole.Mount}
		}
		vault, err := secret.NewVault(vc)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: vault: %w", g.config, err)
		}
		mux["vault"] = vault
	}
	return mux, ss, nil
}

// storeBackend adapts the state store to the secret store's Backend.
type storeBackend struct{ st *store.Store }

func mapStoreErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", secret.ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", secret.ErrConflict, err)
	}
	return err
}

func (b storeBackend) GetMeta(ctx context.Context, key string) ([]byte, error) {
	v, err := b.st.GetMeta(ctx, key)
	return v, mapStoreErr(err)
}

func (b storeBackend) SetMeta(ctx context.Context, key string, value []byte) error {
	return mapStoreErr(b.st.SetMeta(ctx, key, value))
}

func (b storeBackend) CompareAndSetMeta(ctx context.Context, key string, old, value []byte) error {
	return mapStoreErr(b.st.CompareAndSetMeta(ctx, key, old, value))
}

func (b storeBackend) PutSealed(ctx context.Context, r secret.SealedRecord) error {
	return mapStoreErr(b.st.PutSealed(ctx, store.Sealed{Kind: r.Kind, Name: r.Name, KeyID: r.KeyID, Blob: r.Blob, Updated: r.Updated}))
}

func (b storeBackend) GetSealed(ctx context.Context, kind, name string) (secret.SealedRecord, error) {
	r, err := b.st.GetSealed(ctx, kind, name)
	return secret.SealedRecord{Kind: r.Kind, Name: r.Name, KeyID: r.KeyID, Blob: r.Blob, Updated: r.Updated}, mapStoreErr(err)
}

func (b storeBackend) ListSealed(ctx context.Context, kind string) ([]secret.SealedRecord, error) {
	rs, err := b.st.ListSealed(ctx, kind)
	out := make([]secret.SealedRecord, len(rs))
	for i, r := range rs {
		out[i] = secret.SealedRecord{Kind: r.Kind, Name: r.Name, KeyID: r.KeyID, Blob: r.Blob, Updated: r.Updated}
	}
	return out, mapStoreErr(err)
}

func (b storeBackend) DeleteSealed(ctx context.Context, kind, name string) error {
	return mapStoreErr(b.st.DeleteSealed(ctx, kind, name))
}

// mkdirFor creates the directory of path (mode 0700) unless it is an in-memory name.
func mkdirFor(path string) error {
	if path == "" || strings.HasPrefix(path, ":memory:") {
		return nil
	}
	return os.MkdirAll(filepath.Dir(path), 0o700)
}
