package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Statuses of an installed connector version.
const (
	InstalledActive  = "active"  // the version that serves calls; at most one per name
	InstalledPending = "pending" // awaiting an admin's approval of what it asks for more
	InstalledRetired = "retired" // kept for rollback and history
)

// Installed is one installed version of a connector.
type Installed struct {
	Name, Version, Digest, Publisher string
	Manifest                         []byte // the manifest file as installed (YAML)
	Module                           []byte // the wasm module; nil in ListInstalled
	Status                           string // InstalledActive, InstalledPending or InstalledRetired
	Unsigned                         bool   // installed with --allow-unsigned
	InstalledAt                      time.Time
}

func installedName(name, version string) string {
	return fmt.Sprintf("connector %s version %s", name, version)
}

// PutInstalled inserts or replaces the version (in.Name, in.Version). When in.Status is
// "active", the version active until now is retired in the same transaction, as [Store.Activate]
// does. A version already recorded with another digest is not replaced: the error wraps
// [ErrConflict].
func (s *Store) PutInstalled(ctx context.Context, in Installed) error {
	op := "installing " + installedName(in.Name, in.Version)
	if in.Name == "" || in.Version == "" {
		return fmt.Errorf("store: %s: an installed connector needs a name and a version", op)
	}
	switch in.Status {
	case InstalledActive, InstalledPending, InstalledRetired:
	default:
		return fmt.Errorf("store: %s: status %q is not one of active, pending, retired", op, in.Status)
	}
	unsigned := 0
	if in.Unsigned {
		unsigned = 1
	}
	return s.inTx(ctx, func(t tx) error {
		if in.Status == InstalledActive {
			if _, err := t.exec(ctx, `UPDATE installed SET status = 'retired' WHERE name = ? AND status = 'active' AND version <> ?`,
				in.Name, in.Version); err != nil {
				return wrap(op, err)
			}
		}
		// A version keeps its module: replacing a row is allowed only with the same digest, so two
		// installs racing with different modules cannot both succeed (the loser gets ErrConflict).
		res, err := t.exec(ctx, `INSERT INTO installed (name, version, digest, publisher, manifest, module, status, unsigned, installed_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name, version) DO UPDATE SET digest = excluded.digest, publisher = excluded.publisher,
				manifest = excluded.manifest, module = excluded.module, status = excluded.status,
				unsigned = excluded.unsigned, installed_at = excluded.installed_at
			WHERE installed.digest = excluded.digest`,
			in.Name, in.Version, in.Digest, in.Publisher, nonNil(in.Manifest), nonNil(in.Module), in.Status, unsigned,
			toNanos(s.stamp(in.InstalledAt)))
		if err != nil && s.d.isUnique(err) {
			return fmt.Errorf("store: %s: another version was activated concurrently; list the installed versions and retry: %w", op, ErrConflict)
		}
		if err != nil {
			return wrap(op, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return fmt.Errorf("store: %s: this version is already installed with another module (sha256 differs): a changed module needs a new version number: %w", op, ErrConflict)
		}
		return nil
	})
}

const installedCols = `name, version, digest, publisher, manifest, status, unsigned, installed_at`

func scanInstalled(sc interface{ Scan(...any) error }, module bool) (Installed, error) {
	var (
		in       Installed
		unsigned int
		at       int64
	)
	dest := []any{&in.Name, &in.Version, &in.Digest, &in.Publisher, &in.Manifest, &in.Status, &unsigned, &at}
	if module {
		dest = append(dest, &in.Module)
	}
	if err := sc.Scan(dest...); err != nil {
		return Installed{}, err
	}
	in.Unsigned = unsigned != 0
	in.InstalledAt = fromNanos(at)
	in.Manifest = nonNil(in.Manifest)
	if module {
		in.Module = nonNil(in.Module)
	}
	return in, nil
}

// GetInstalled returns the version (name, version) with its module bytes, or an error wrapping
// [ErrNotFound].
func (s *Store) GetInstalled(ctx context.Context, name, version string) (Installed, error) {
	in, err := scanInstalled(s.queryRow(ctx, `SELECT `+installedCols+`, module FROM installed WHERE name = ? AND version = ?`,
		name, version), true)
	if errors.Is(err, sql.ErrNoRows) {
		return Installed{}, notFound(installedName(name, version), "install it first")
	}
	return in, wrap("reading "+installedName(name, version), err)
}

// ActiveInstalled returns the active version of connector name with its module bytes, or an
// error wrapping [ErrNotFound] when none is active.
func (s *Store) ActiveInstalled(ctx context.Context, name string) (Installed, error) {
	in, err := scanInstalled(s.queryRow(ctx, `SELECT `+installedCols+`, module FROM installed WHERE name = ? AND status = 'active'`,
		name), true)
	if errors.Is(err, sql.ErrNoRows) {
		return Installed{}, notFound("an active version of connector "+name, "install it, or activate an installed version")
	}
	return in, wrap("reading the active version of connector "+name, err)
}

// ListInstalled returns every installed version, without module bytes, sorted by name and then
// by installation time.
func (s *Store) ListInstalled(ctx context.Context) ([]Installed, error) {
	rows, err := s.query(ctx, `SELECT `+installedCols+` FROM installed ORDER BY name, installed_at, version`)
	if err != nil {
		return nil, wrap("listing installed connectors", err)
	}
	defer rows.Close()
	var out []Installed
	for rows.Next() {
		in, err := scanInstalled(rows, false)
		if err != nil {
			return nil, wrap("listing installed connectors", err)
		}
		out = append(out, in)
	}
	return out, wrap("listing installed connectors", rows.Err())
}

// Activate makes (name, version) the active version and retires the previously active one,
// atomically. The version must be installed ([ErrNotFound] otherwise).
func (s *Store) Activate(ctx context.Context, name, version string) error {
	op := "activating " + installedName(name, version)
	defer s.notify(ctx, ChangeGrant, name)
	return s.inTx(ctx, func(t tx) error {
		var n int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM installed WHERE name = ? AND version = ?`, name, version).Scan(&n); err != nil {
			return wrap(op, err)
		}
		if n == 0 {
			return notFound(installedName(name, version), "install it first")
		}
		if _, err := t.exec(ctx, `UPDATE installed SET status = 'retired' WHERE name = ? AND status = 'active' AND version <> ?`,
			name, version); err != nil {
			return wrap(op, err)
		}
		_, err := t.exec(ctx, `UPDATE installed SET status = 'active' WHERE name = ? AND version = ?`, name, version)
		if err != nil && s.d.isUnique(err) {
			return fmt.Errorf("store: %s: another version was activated concurrently; list the installed versions and retry: %w", op, ErrConflict)
		}
		return wrap(op, err)
	})
}

// DeleteInstalled removes the version (name, version), or returns an error wrapping
// [ErrNotFound]. Deleting the active version leaves the connector with no active version.
func (s *Store) DeleteInstalled(ctx context.Context, name, version string) error {
	defer s.notify(ctx, ChangeGrant, name)
	return s.deleteOne(ctx, installedName(name, version), `DELETE FROM installed WHERE name = ? AND version = ?`, name, version)
}
