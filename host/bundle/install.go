package bundle

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
)

// Installed statuses (store.Installed.Status).
const (
	StatusActive  = store.InstalledActive  // the version the host runs
	StatusPending = store.InstalledPending // installed, waiting for an admin to approve what it asks for more
	StatusRetired = store.InstalledRetired // replaced by a later active version
)

// Store is what installing needs from the state store (host/store.Store implements it).
// PutInstalled with status active must retire the version active until then, atomically.
type Store interface {
	PutInstalled(ctx context.Context, in store.Installed) error
	GetInstalled(ctx context.Context, name, version string) (store.Installed, error)
	ActiveInstalled(ctx context.Context, name string) (store.Installed, error)
}

// TrustStore lists the trusted publisher keys (host/store.Store implements it).
type TrustStore interface {
	ListTrustKeys(ctx context.Context) ([]store.TrustKey, error)
}

// TrustedKeys returns the keys of ts as Keys for [Verify]. A stored key of the wrong size is
// skipped (it can verify nothing).
func TrustedKeys(ctx context.Context, ts TrustStore) ([]Key, error) {
	list, err := ts.ListTrustKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("bundle: reading the trust store: %w", err)
	}
	keys := make([]Key, 0, len(list))
	for _, k := range list {
		if len(k.PublicKey) == ed25519.PublicKeySize {
			keys = append(keys, Key{Name: k.Name, PublicKey: ed25519.PublicKey(k.PublicKey)})
		}
	}
	return keys, nil
}

// Result says what [Install] did.
type Result struct {
	// Installed is the record as stored.
	Installed store.Installed
	// Previous is the version that was active before, "" for a first install.
	Previous string
	// Changes is what this version asks for beyond Previous; when not empty the version is
	// pending until an admin approves them.
	Changes []manifest.Change
	// Downgrade is true when the version is lower than the active one (kept pending).
	Downgrade bool
	// AlreadyInstalled is true when the same version with the same digest was installed before;
	// nothing was written.
	AlreadyInstalled bool
}

// ErrConflict is wrapped when the same name and version is installed with a different digest.
var ErrConflict = errors.New("this version is already installed with a different module")

// Install records a verified bundle in st. It grants nothing: the grant workflow decides what
// the connector may use. The version becomes active when nothing else is active (first install)
// or when it is newer than the active version and asks for nothing more ([manifest.Compare]);
// otherwise it is recorded pending, for an admin to approve. Installing the same version again
// with the same digest changes nothing; with another digest it is refused (publish a new version).
// now stamps InstalledAt.
func Install(ctx context.Context, st Store, v *Verified, now time.Time) (*Result, error) {
	m := v.Manifest
	rec := store.Installed{
		Name: m.Name, Version: m.Version, Digest: v.Digest, Publisher: v.Publisher,
		Manifest: v.ManifestYAML, Module: v.Module, Status: StatusPending, Unsigned: v.Unsigned,
		InstalledAt: now.UTC(),
	}
	prev, err := st.GetInstalled(ctx, m.Name, m.Version)
	switch {
	case err == nil && prev.Digest == v.Digest:
		return &Result{Installed: prev, AlreadyInstalled: true}, nil
	case err == nil:
		return nil, fmt.Errorf("%w: %s %s is installed with module sha256 %s, this bundle has %s: a changed module needs a new version number (or remove %s@%s first)", ErrConflict, m.Name, m.Version, prev.Digest, v.Digest, m.Name, m.Version)
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("bundle: reading the installed connectors: %w", err)
	}
	res := &Result{}
	active, err := st.ActiveInstalled(ctx, m.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		rec.Status = StatusActive
	case err != nil:
		return nil, fmt.Errorf("bundle: reading the installed connectors: %w", err)
	default:
		res.Previous = active.Version
		old, perr := manifest.Parse(ManifestEntry, active.Manifest)
		if perr != nil {
			// The active manifest no longer parses (an older airlock wrote it): review everything.
			res.Changes = []manifest.Change{{Kind: manifest.ChangeTool, Path: "", Detail: "the active version's manifest cannot be compared (" + firstLine(perr.Error()) + "): review the whole manifest"}}
		} else {
			res.Changes = manifest.Compare(old, m)
		}
		res.Downgrade = CompareVersions(m.Version, active.Version) < 0
		if len(res.Changes) == 0 && !res.Downgrade {
			rec.Status = StatusActive
		}
	}
	// An active record retires the version active until now in the same transaction.
	if err := st.PutInstalled(ctx, rec); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Another install of this version won a race (the check above saw nothing).
			return nil, fmt.Errorf("%w: %s %s was installed concurrently: %v", ErrConflict, m.Name, m.Version, err)
		}
		return nil, fmt.Errorf("bundle: recording %s %s: %w", m.Name, m.Version, err)
	}
	res.Installed = rec
	return res, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// CompareVersions compares two semantic versions (MAJOR.MINOR.PATCH[-pre][+build]) and returns
// -1, 0 or +1. A pre-release sorts before its release; build metadata is ignored. Text that is not
// a version sorts as plain strings.
func CompareVersions(a, b string) int {
	a, _, _ = strings.Cut(a, "+")
	b, _, _ = strings.Cut(b, "+")
	ac, apre, _ := strings.Cut(a, "-")
	bc, bpre, _ := strings.Cut(b, "-")
	as, bs := strings.Split(ac, "."), strings.Split(bc, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y string
		if i < len(as) {
			x = as[i]
		}
		if i < len(bs) {
			y = bs[i]
		}
		if c := compareIdent(x, y); c != 0 {
			return c
		}
	}
	switch {
	case apre == bpre:
		return 0
	case apre == "":
		return 1
	case bpre == "":
		return -1
	}
	ap, bp := strings.Split(apre, "."), strings.Split(bpre, ".")
	for i := 0; i < min(len(ap), len(bp)); i++ {
		if c := compareIdent(ap[i], bp[i]); c != 0 {
			return c
		}
	}
	return compareInt(len(ap), len(bp))
}

func compareIdent(x, y string) int {
	xi, xerr := strconv.ParseUint(x, 10, 64)
	yi, yerr := strconv.ParseUint(y, 10, 64)
	switch {
	case xerr == nil && yerr == nil:
		return compareInt(int(min(xi, 1<<62)), int(min(yi, 1<<62)))
	case xerr == nil:
		return -1 // numeric identifiers sort before alphanumeric ones
	case yerr == nil:
		return 1
	}
	return strings.Compare(x, y)
}

func compareInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
