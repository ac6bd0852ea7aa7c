package secret

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// KindSecret is the record kind of the named secrets [Store.Set] writes ("store:NAME").
const KindSecret = "secret"

// SealedRecord is one encrypted record as a [Backend] persists it. Blob is ciphertext only;
// KeyID names the data key it was sealed with, so a data-key rotation can find what to re-seal.
type SealedRecord struct {
	Kind, Name string
	KeyID      string
	Blob       []byte
	Updated    time.Time
}

// Backend persists the keyring and the sealed records of a [Store]: the host's state store
// (SQLite or PostgreSQL) in production, an in-memory map in tests. Nothing it holds is
// plaintext. Implementations must be safe for concurrent use.
//
// Absent keys and records are reported with an error wrapping [ErrNotFound].
type Backend interface {
	// GetMeta returns the value stored under key.
	GetMeta(ctx context.Context, key string) ([]byte, error)
	// SetMeta stores value under key unconditionally.
	SetMeta(ctx context.Context, key string, value []byte) error
	// CompareAndSetMeta stores value under key only if the current value equals old; a nil old
	// means the key must not exist. On a mismatch it returns an error wrapping [ErrConflict].
	CompareAndSetMeta(ctx context.Context, key string, old, value []byte) error
	// PutSealed inserts or replaces the record (r.Kind, r.Name).
	PutSealed(ctx context.Context, r SealedRecord) error
	// GetSealed returns the record (kind, name).
	GetSealed(ctx context.Context, kind, name string) (SealedRecord, error)
	// ListSealed returns every record of a kind, in any order.
	ListSealed(ctx context.Context, kind string) ([]SealedRecord, error)
	// DeleteSealed removes the record (kind, name).
	DeleteSealed(ctx context.Context, kind, name string) error
}

// Store is the built-in encrypted secret store, the [Source] for references "store:NAME".
//
// Every value is sealed with AES-256-GCM under a random 256-bit data key, with the record's
// identity ("secret/NAME") bound as associated data, so a blob copied onto another record does
// not open. The data keys are wrapped with AES-256-GCM under the master key and kept in the
// backend's meta table under [KeyringMetaKey]; the master key itself is never stored.
//
// A Store keeps the unwrapped data keys in memory, so it keeps working while another process
// rotates the master key ([RotateMasterKey]). It is safe for concurrent use.
type Store struct {
	backend Backend
	master  []byte
	now     func() time.Time

	mu   sync.RWMutex
	keys *dataKeys
}

// OpenStore opens the secret store kept in backend with masterKey (32 bytes, see
// [LoadMasterKey]). On first use it creates the keyring: one random data key wrapped under
// masterKey. A master key other than the one the state was created (or last rotated) with is
// refused with an error that says so; it never decrypts to garbage.
func OpenStore(ctx context.Context, backend Backend, masterKey []byte) (*Store, error) {
	if err := checkMasterKey(masterKey); err != nil {
		return nil, err
	}
	s := &Store{backend: backend, master: slices.Clone(masterKey), now: time.Now}
	if err := s.load(ctx, true); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads (and, if create, initialises) the keyring and unwraps it.
func (s *Store) load(ctx context.Context, create bool) error {
	for range 5 {
		raw, err := s.backend.GetMeta(ctx, KeyringMetaKey)
		if errors.Is(err, ErrNotFound) && create {
			w, dek, err := newDataKey(s.master, s.now())
			clear(dek)
			if err != nil {
				return fmt.Errorf("secret store: creating the data key: %w", err)
			}
			r := &keyring{Version: ringVersion, KEKID: kekID(s.master), Active: w.ID, Keys: []wrappedKey{w}}
			b, err := r.marshal()
			if err != nil {
				return err
			}
			err = s.backend.CompareAndSetMeta(ctx, KeyringMetaKey, nil, b)
			if errors.Is(err, ErrConflict) {
				continue // another host created it first: use theirs
			}
			if err != nil {
				return fmt.Errorf("secret store: saving the keyring (check the state store is writable): %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("secret store: reading the keyring from the state store: %w", err)
		}
		r, err := parseKeyring(raw)
		if err != nil {
			return err
		}
		dk, err := r.unwrapAll(s.master)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.keys = dk
		s.mu.Unlock()
		return nil
	}
	return errors.New("secret store: the keyring kept changing while it was read: try again")
}

func (s *Store) dataKeys() *dataKeys {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys
}

// Seal encrypts plaintext for the identity aad (for example "oauth/slack/bot/U123") under the
// store's active data key, for subsystems that keep their own encrypted records (the OAuth
// token cache). The blob opens only with [Store.Open] and the same aad.
func (s *Store) Seal(aad string, plaintext []byte) ([]byte, error) {
	blob, _, err := s.dataKeys().seal(aad, plaintext)
	return blob, err
}

// Open decrypts a blob made by [Store.Seal] (or by any host sharing this state) for the same
// aad. A blob that was altered, truncated or sealed for another identity fails; the error
// never contains plaintext.
func (s *Store) Open(aad string, blob []byte) ([]byte, error) {
	return s.open(context.Background(), aad, blob)
}

func (s *Store) open(ctx context.Context, aad string, blob []byte) ([]byte, error) {
	pt, err := s.dataKeys().open(aad, blob)
	if errors.Is(err, errUnknownKey) {
		// Another host rotated the data key after this one loaded the keyring.
		if err := s.load(ctx, false); err != nil {
			return nil, fmt.Errorf("secret store: a value is sealed with a data key this host has not loaded, and reloading the keyring failed (restart this host with the current master key): %w", err)
		}
		pt, err = s.dataKeys().open(aad, blob)
	}
	if errors.Is(err, errUnknownKey) {
		return nil, errSealedCorrupt
	}
	return pt, err
}

// Set stores v under name, replacing any previous value. Names are 1 to 128 letters, digits,
// '_', '-', '.' or '/', starting with a letter or digit.
func (s *Store) Set(ctx context.Context, name string, v Value) error {
	if err := checkName(name); err != nil {
		return err
	}
	if v.IsZero() {
		return fmt.Errorf("secret store: the value for %s is empty: provide the secret (delete the name instead to remove it)", name)
	}
	blob, keyID, err := s.dataKeys().seal(recordAAD(KindSecret, name), []byte(v.Expose()))
	if err != nil {
		return fmt.Errorf("secret store: sealing %s: %w", name, err)
	}
	err = s.backend.PutSealed(ctx, SealedRecord{Kind: KindSecret, Name: name, KeyID: keyID, Blob: blob, Updated: s.now().UTC()})
	if err != nil {
		return fmt.Errorf("secret store: saving %s (check the state store is writable): %w", name, err)
	}
	return nil
}

// Get returns the secret stored under name, or an error wrapping [ErrNotFound].
func (s *Store) Get(ctx context.Context, name string) (Value, error) {
	if err := checkName(name); err != nil {
		return Value{}, err
	}
	r, err := s.backend.GetSealed(ctx, KindSecret, name)
	if errors.Is(err, ErrNotFound) {
		return Value{}, fmt.Errorf("secret store has no secret named %s: add it with `airlock secret set %s` or change the grant's credential reference: %w", name, name, ErrNotFound)
	}
	if err != nil {
		return Value{}, fmt.Errorf("secret store: reading %s: %w", name, err)
	}
	pt, err := s.open(ctx, recordAAD(KindSecret, name), r.Blob)
	if err != nil {
		return Value{}, fmt.Errorf("secret store: opening %s: %w", name, err)
	}
	v := New(string(pt))
	clear(pt)
	return v, nil
}

// Info describes a stored secret without its value.
type Info struct {
	Name    string
	KeyID   string    // the data key it is sealed with
	Updated time.Time // when it was last set
}

// List returns the names of the stored secrets, sorted, never their values.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	rs, err := s.backend.ListSealed(ctx, KindSecret)
	if err != nil {
		return nil, fmt.Errorf("secret store: listing secrets: %w", err)
	}
	out := make([]Info, 0, len(rs))
	for _, r := range rs {
		out = append(out, Info{Name: r.Name, KeyID: r.KeyID, Updated: r.Updated})
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete removes the secret stored under name. Deleting a name that does not exist returns
// an error wrapping [ErrNotFound].
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if _, err := s.backend.GetSealed(ctx, KindSecret, name); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("secret store has no secret named %s: `airlock secret list` shows the names: %w", name, ErrNotFound)
	}
	if err := s.backend.DeleteSealed(ctx, KindSecret, name); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("secret store has no secret named %s: %w", name, ErrNotFound)
		}
		return fmt.Errorf("secret store: deleting %s: %w", name, err)
	}
	return nil
}

// Resolve implements [Source] for references "store:NAME".
func (s *Store) Resolve(ctx context.Context, ref string) (Value, error) {
	if err := ctx.Err(); err != nil {
		return Value{}, err
	}
	scheme, name, ok := splitRef(ref)
	if !ok || scheme != "store" {
		return Value{}, errors.New(`store source: the reference does not start with "store:": write store:NAME`)
	}
	if checkName(name) != nil {
		// Do not echo name: it may be a secret pasted by mistake.
		return Value{}, errors.New(`store source: the reference has no valid name after "store:": write store:NAME with NAME made of letters, digits, '_', '-', '.' and '/'`)
	}
	return s.Get(ctx, name)
}

func recordAAD(kind, name string) string { return kind + "/" + name }

func checkName(name string) error {
	ok := name != "" && len(name) <= 128
	for i, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '-' || c == '.' || c == '/'):
		default:
			ok = false
		}
	}
	if !ok {
		return errors.New("secret store: a secret name is 1 to 128 letters, digits, '_', '-', '.' or '/', starting with a letter or digit")
	}
	return nil
}

// RotateMasterKey re-wraps every data key of the state in backend under newKey, replacing the
// wrapping under oldKey in one compare-and-set. Values are not re-encrypted, so hosts already
// running (which hold the unwrapped data keys) keep reading and writing throughout; hosts that
// start afterwards need newKey, and oldKey alone opens nothing stored in backend any more.
//
// Running it again with the same keys after it succeeded is a no-op. A data key that oldKey
// ever unwrapped is unchanged by this operation: if the old master key may have leaked, follow
// up with [RotateDataKey].
func RotateMasterKey(ctx context.Context, backend Backend, oldKey, newKey []byte) error {
	if err := checkMasterKey(oldKey); err != nil {
		return fmt.Errorf("old %w", err)
	}
	if err := checkMasterKey(newKey); err != nil {
		return fmt.Errorf("new %w", err)
	}
	if kekID(oldKey) == kekID(newKey) {
		return errors.New("the new master key is the same as the old one: generate a new one")
	}
	for range 5 {
		raw, err := backend.GetMeta(ctx, KeyringMetaKey)
		if errors.Is(err, ErrNotFound) {
			return errors.New("there is no secret store in this state yet: nothing to rotate (start airlock once, or set a secret, first)")
		}
		if err != nil {
			return fmt.Errorf("reading the keyring from the state store: %w", err)
		}
		r, err := parseKeyring(raw)
		if err != nil {
			return err
		}
		if r.KEKID == kekID(newKey) {
			if _, err := r.unwrapAll(newKey); err == nil {
				return nil // already rotated
			}
		}
		if _, err := r.unwrapAll(oldKey); err != nil {
			if errors.Is(err, ErrWrongMasterKey) {
				return errors.New("the old master key does not open this state: give the master key airlock currently starts with as the old key")
			}
			return err
		}
		for i := range r.Keys {
			dek, err := r.Keys[i].unwrap(oldKey)
			if err != nil {
				return ErrWrongMasterKey
			}
			err = r.Keys[i].wrap(newKey, dek)
			clear(dek)
			if err != nil {
				return err
			}
		}
		r.KEKID = kekID(newKey)
		b, err := r.marshal()
		if err != nil {
			return err
		}
		err = backend.CompareAndSetMeta(ctx, KeyringMetaKey, raw, b)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("saving the re-wrapped keyring (nothing was changed; the old key still works): %w", err)
		}
		return nil
	}
	return errors.New("the keyring kept changing during the rotation: try again")
}

// RotateDataKey adds a fresh data key to the keyring as the active one and re-seals every
// record of the given kinds (default [KindSecret]) under it. It returns how many records it
// re-sealed. Older data keys stay in the keyring, wrapped under masterKey, so blobs sealed
// elsewhere with [Store.Seal] and hosts that have not reloaded keep working; running hosts pick
// the new key up the first time they meet a value sealed with it.
//
// A secret set by another host between this function reading and re-writing it could be
// overwritten with its previous value; run it while nobody changes secrets.
func RotateDataKey(ctx context.Context, backend Backend, masterKey []byte, kinds ...string) (int, error) {
	if len(kinds) == 0 {
		kinds = []string{KindSecret}
	}
	if err := checkMasterKey(masterKey); err != nil {
		return 0, err
	}
	added := false
	for range 5 {
		raw, err := backend.GetMeta(ctx, KeyringMetaKey)
		if errors.Is(err, ErrNotFound) {
			return 0, errors.New("there is no secret store in this state yet: nothing to rotate")
		}
		if err != nil {
			return 0, fmt.Errorf("reading the keyring from the state store: %w", err)
		}
		r, err := parseKeyring(raw)
		if err != nil {
			return 0, err
		}
		if _, err := r.unwrapAll(masterKey); err != nil {
			return 0, err
		}
		if len(r.Keys) >= maxRingKeys {
			return 0, fmt.Errorf("the keyring already holds %d data keys, the most it may: no further data-key rotation is possible", len(r.Keys))
		}
		w, dek, err := newDataKey(masterKey, time.Now())
		clear(dek)
		if err != nil {
			return 0, err
		}
		r.Keys = append(r.Keys, w)
		r.Active = w.ID
		b, err := r.marshal()
		if err != nil {
			return 0, err
		}
		err = backend.CompareAndSetMeta(ctx, KeyringMetaKey, raw, b)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("saving the keyring: %w", err)
		}
		added = true
		break
	}
	if !added {
		return 0, errors.New("the keyring kept changing during the rotation: try again")
	}
	s, err := OpenStore(ctx, backend, masterKey)
	if err != nil {
		return 0, err
	}
	active := s.dataKeys().active
	n := 0
	for _, kind := range kinds {
		rs, err := backend.ListSealed(ctx, kind)
		if err != nil {
			return n, fmt.Errorf("listing %s records: %w", kind, err)
		}
		for _, r := range rs {
			if r.KeyID == active {
				continue
			}
			cur, err := backend.GetSealed(ctx, kind, r.Name)
			if errors.Is(err, ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return n, fmt.Errorf("reading %s/%s: %w", kind, r.Name, err)
			}
			aad := recordAAD(kind, r.Name)
			pt, err := s.open(ctx, aad, cur.Blob)
			if err != nil {
				return n, fmt.Errorf("re-sealing %s/%s: %w", kind, r.Name, err)
			}
			blob, keyID, err := s.dataKeys().seal(aad, pt)
			clear(pt)
			if err != nil {
				return n, fmt.Errorf("re-sealing %s/%s: %w", kind, r.Name, err)
			}
			cur.Blob, cur.KeyID, cur.Updated = blob, keyID, time.Now().UTC()
			if err := backend.PutSealed(ctx, cur); err != nil {
				return n, fmt.Errorf("saving %s/%s: %w", kind, r.Name, err)
			}
			n++
		}
	}
	return n, nil
}

// MemoryBackend is a [Backend] that keeps everything in memory, for tests and examples. The
// zero value is ready to use; it is safe for concurrent use.
type MemoryBackend struct {
	mu     sync.Mutex
	meta   map[string][]byte
	sealed map[[2]string]SealedRecord
}

// GetMeta implements [Backend].
func (m *MemoryBackend) GetMeta(ctx context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.meta[key]
	if !ok {
		return nil, fmt.Errorf("meta %s: %w", key, ErrNotFound)
	}
	return slices.Clone(v), nil
}

// SetMeta implements [Backend].
func (m *MemoryBackend) SetMeta(ctx context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.meta == nil {
		m.meta = map[string][]byte{}
	}
	m.meta[key] = slices.Clone(value)
	return nil
}

// CompareAndSetMeta implements [Backend].
func (m *MemoryBackend) CompareAndSetMeta(ctx context.Context, key string, old, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.meta[key]
	if (old == nil && ok) || (old != nil && (!ok || string(cur) != string(old))) {
		return fmt.Errorf("meta %s: %w", key, ErrConflict)
	}
	if m.meta == nil {
		m.meta = map[string][]byte{}
	}
	m.meta[key] = slices.Clone(value)
	return nil
}

// PutSealed implements [Backend].
func (m *MemoryBackend) PutSealed(ctx context.Context, r SealedRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sealed == nil {
		m.sealed = map[[2]string]SealedRecord{}
	}
	r.Blob = slices.Clone(r.Blob)
	m.sealed[[2]string{r.Kind, r.Name}] = r
	return nil
}

// GetSealed implements [Backend].
func (m *MemoryBackend) GetSealed(ctx context.Context, kind, name string) (SealedRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.sealed[[2]string{kind, name}]
	if !ok {
		return SealedRecord{}, fmt.Errorf("%s/%s: %w", kind, name, ErrNotFound)
	}
	r.Blob = slices.Clone(r.Blob)
	return r, nil
}

// ListSealed implements [Backend].
func (m *MemoryBackend) ListSealed(ctx context.Context, kind string) ([]SealedRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []SealedRecord
	for k, r := range m.sealed {
		if k[0] == kind {
			r.Blob = slices.Clone(r.Blob)
			out = append(out, r)
		}
	}
	return out, nil
}

// DeleteSealed implements [Backend].
func (m *MemoryBackend) DeleteSealed(ctx context.Context, kind, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{kind, name}
	if _, ok := m.sealed[k]; !ok {
		return fmt.Errorf("%s/%s: %w", kind, name, ErrNotFound)
	}
	delete(m.sealed, k)
	return nil
}
