package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
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
// encrypted store, whose master key is loaded here), gcp-sm:, azure-kv: and, when configured,
// vault:, op:// and doppler:.
func (g *globals) secrets(ctx context.Context, st *store.Store) (secret.Mux, *secret.Store, error) {
	_, cfg, stateDir, err := g.stateDSN()
	if err != nil {
		return nil, nil, err
	}
	mux := secret.Mux{"env": secret.Env{}, "file": secret.File{}}
	if err := g.addAWS(ctx, cfg, mux); err != nil {
		return nil, nil, err
	}
	// The master key may come from Vault, whose own credentials may be env: or file: (not
	// store:, which the master key opens).
	vault, err := g.vault(cfg, secret.Mux{"env": secret.Env{}, "file": secret.File{}})
	if err != nil {
		return nil, nil, err
	}
	key, err := g.masterKey(ctx, st, cfg, stateDir, vault)
	if err != nil {
		return nil, nil, err
	}
	// No key means no secret store yet: a read-only command does not create one, and grants
	// naming store: secrets fail with a clear error when they resolve.
	var ss *secret.Store
	if key != nil {
		if ss, err = secret.OpenStore(ctx, storeBackend{st}, key); err != nil {
			return nil, nil, err
		}
		mux["store"] = ss
		if vault, err = g.vault(cfg, secret.Mux{"env": secret.Env{}, "file": secret.File{}, "store": ss}); err != nil {
			return nil, nil, err
		}
	}
	if vault != nil {
		mux["vault"] = vault
	}
	// The other managers' own tokens may come from any source above.
	creds := maps.Clone(mux)
	if err := g.onePassword(cfg, mux, creds); err != nil {
		return nil, nil, err
	}
	if err := g.doppler(cfg, mux, creds); err != nil {
		return nil, nil, err
	}
	g.addGCPSecrets(cfg, mux)
	if err := g.addAzureSecrets(cfg, mux, creds); err != nil {
		return nil, nil, err
	}
	return mux, ss, nil
}

// vault returns the Vault secret source the configuration names (nil: none), taking its
// credentials from creds.
func (g *globals) vault(cfg *fileConfig, creds secret.Mux) (*secret.Vault, error) {
	v := cfg.Vault
	if v == nil {
		return nil, nil
	}
	vc := &secret.VaultConfig{Address: v.Address, Namespace: v.Namespace, Token: v.Token, Secrets: creds}
	if v.AppRole != nil {
		vc.AppRole = &secret.AppRole{RoleID: v.AppRole.RoleID, SecretID: v.AppRole.SecretID, Mount: v.AppRole.Mount}
	}
	vault, err := secret.NewVault(vc)
	if err != nil {
		return nil, fmt.Errorf("%s: vault: %w", g.config, err)
	}
	return vault, nil
}

// masterKey returns the master key of the built-in secret store: the reference --master-key
// ($AIRLOCK_MASTER_KEY_REF) or the configuration's master_key names, else $AIRLOCK_MASTER_KEY,
// else STATE_DIR/master.key. It never creates a key silently: only a command that may
// (g.mayCreateKey: serve, demo, secret) on a fresh embedded SQLite state creates
// STATE_DIR/master.key, and says so. It returns a nil key, without error, when there is no key
// and no secret store yet and the command may not create one.
func (g *globals) masterKey(ctx context.Context, st *store.Store, cfg *fileConfig, stateDir string, vault *secret.Vault) ([]byte, error) {
	if ref := cmpOr(g.key, cfg.MasterKey); ref != "" {
		src := secret.Mux{"env": secret.Env{}, "file": secret.File{}}
		if vault != nil {
			src["vault"] = vault
		}
		v, err := src.Resolve(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("master key %s: %w", ref, err)
		}
		key, err := secret.ParseMasterKey(strings.TrimSpace(v.Expose()))
		if err != nil {
			return nil, fmt.Errorf("master key %s: it must hold the base64 encoding of exactly 32 random bytes (create one with 'airlock init master-key')", ref)
		}
		return key, nil
	}
	key, _, err := secret.FindMasterKey(stateDir)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	sealedWith, serr := secret.SealedWith(ctx, storeBackend{st})
	switch {
	case serr == nil:
		return nil, fmt.Errorf("no master key: this state's secrets are sealed with the master key of fingerprint %s, and none was given: "+
			"name it with --master-key REF (env:, file: or vault:), master_key in %s or %s, or restore %s", sealedWith, g.config, secret.MasterKeyEnv, filepath.Join(stateDir, secret.MasterKeyFile))
	case !errors.Is(serr, secret.ErrNotFound):
		return nil, serr
	case !g.mayCreateKey:
		return nil, nil
	case st.Driver() != store.DriverSQLite:
		return nil, errors.New("no master key: the state store is PostgreSQL, shared by replicas, so a key created on this machine would be this replica's alone. " +
			"Create one with 'airlock init master-key --out FILE', keep it in your secret manager, and give every replica the same --master-key REF (or master_key in the configuration)")
	}
	key, source, err := secret.LoadMasterKey(stateDir)
	if err != nil {
		return nil, err
	}
	notice := g.notice
	if notice == nil {
		notice = os.Stderr
	}
	path, fp := strings.TrimSuffix(source, " (created)"), secret.Fingerprint(key)
	banner(g, notice, fmt.Sprintf("airlock: created a new master key in %s (fingerprint %s): it seals the secrets of this state; back it up, and give it to other replicas with --master-key file:PATH", path, fp),
		"path", path, "fingerprint", fp)
	return key, nil
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
