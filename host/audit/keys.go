package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/host/store"
)

// KindAuditKey is the sealed-record kind under which audit keys are kept in the state store,
// encrypted by the secret store (host/secret) under the master key. Re-seal it too when
// rotating the data key (secret.RotateDataKey(ctx, backend, key, secret.KindSecret, audit.KindAuditKey)).
const KindAuditKey = "audit_key"

// Sealer encrypts small records bound to an identity; *secret.Store implements it. The audit
// keys are sealed with it, so the database holds them only encrypted under the master key.
type Sealer interface {
	Seal(aad string, plaintext []byte) ([]byte, error)
	Open(aad string, blob []byte) ([]byte, error)
}

// Labels that separate what each derived key and each signature is for.
const (
	macLabel        = "airlock audit mac v1"
	signLabel       = "airlock audit ed25519 v1"
	linkLabel       = "airlock audit link v1"
	checkpointLabel = "airlock audit checkpoint v1"
	publicKeyPrefix = "ed25519:"
)

// auditKey is one audit key: a random root from which the HMAC key of the chain and the
// ed25519 key of the checkpoints are derived.
type auditKey struct {
	id      string
	created time.Time
	mac     []byte
	priv    ed25519.PrivateKey
	pub     ed25519.PublicKey
	macs    sync.Pool // of keyed HMAC states: a link costs one Reset, no key schedule
}

func deriveKey(root []byte, created time.Time) *auditKey {
	m := hmac.New(sha256.New, root)
	m.Write([]byte(macLabel))
	macKey := m.Sum(nil)
	m = hmac.New(sha256.New, root)
	m.Write([]byte(signLabel))
	priv := ed25519.NewKeyFromSeed(m.Sum(nil))
	pub := priv.Public().(ed25519.PublicKey)
	return &auditKey{id: KeyID(pub), created: created, mac: macKey, priv: priv, pub: pub}
}

// KeyID is the id of an audit key: the first 16 hex digits of the SHA-256 of its public key,
// so anyone holding the public key can tell which records and checkpoints it covers.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// FormatPublicKey returns the text form of a checkpoint public key: "ed25519:" and the
// standard base64 of its 32 bytes (what `airlock audit key` prints).
func FormatPublicKey(pub ed25519.PublicKey) string {
	return publicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads what [FormatPublicKey] writes.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), publicKeyPrefix))
	if err != nil || len(b) != ed25519.PublicKeySize || !strings.HasPrefix(strings.TrimSpace(s), publicKeyPrefix) {
		return nil, errors.New(`an audit public key looks like "ed25519:" followed by 44 base64 characters (print it with ` + "`airlock audit key`)")
	}
	return ed25519.PublicKey(b), nil
}

// linkMAC is the MAC of one link of the chain: hex HMAC-SHA-256 under the key's MAC key of
// "airlock audit link v1\n" + keyID + "\n" + seq + "\n" + hash.
func (k *auditKey) linkMAC(seq int64, chainHash string) string {
	m, _ := k.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, k.mac)
	}
	var buf [128]byte
	b := append(buf[:0], linkLabel+"\n"...)
	b = append(b, k.id...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, '\n')
	b = append(b, chainHash...)
	m.Reset()
	m.Write(b)
	var sum [sha256.Size]byte
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], m.Sum(sum[:0]))
	k.macs.Put(m)
	return string(out[:])
}

// CheckpointPayload is the exact byte string a checkpoint's ed25519 signature covers:
// "airlock audit checkpoint v1\n" seq "\n" hash "\n" time (RFC 3339, UTC, nanoseconds) "\n"
// replica "\n" key_id.
func CheckpointPayload(c store.AuditCheckpoint) []byte {
	return []byte(checkpointLabel + "\n" + strconv.FormatInt(c.Seq, 10) + "\n" + c.Hash + "\n" +
		c.Time.UTC().Format(time.RFC3339Nano) + "\n" + c.Replica + "\n" + c.KeyID)
}

// VerifyCheckpoint checks c's signature under pub, and that pub is the key c names.
func VerifyCheckpoint(c store.AuditCheckpoint, pub ed25519.PublicKey) error {
	if KeyID(pub) != c.KeyID {
		return fmt.Errorf("it names key %s, not this public key (%s)", c.KeyID, KeyID(pub))
	}
	sig, err := base64.StdEncoding.DecodeString(c.Sig)
	if err != nil || !ed25519.Verify(pub, CheckpointPayload(c), sig) {
		return errors.New("its signature is not valid: it was forged or changed")
	}
	return nil
}

// Keyring holds the audit keys of a state store, unsealed, in memory: the newest signs and
// authenticates new records, the older ones still verify what they covered. Safe for
// concurrent use.
type Keyring struct {
	st     *store.Store
	sealer Sealer

	mu       sync.RWMutex
	keys     map[string]*auditKey
	active   *auditKey
	reloaded time.Time // last reload for an unknown key id
}

// sealedKey is the plaintext of a sealed audit key.
type sealedKey struct {
	Root    []byte    `json:"root"`
	Created time.Time `json:"created"`
}

// LoadKeyring unseals the audit keys kept in st with sealer, creating the first one when
// there is none yet.
func LoadKeyring(ctx context.Context, st *store.Store, sealer Sealer) (*Keyring, error) {
	k := &Keyring{st: st, sealer: sealer}
	if err := k.load(ctx); err != nil {
		return nil, err
	}
	if k.active == nil {
		if _, err := k.Rotate(ctx); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (k *Keyring) load(ctx context.Context) error {
	recs, err := k.st.ListSealed(ctx, KindAuditKey)
	if err != nil {
		return fmt.Errorf("audit: reading the audit keys: %w", err)
	}
	keys := map[string]*auditKey{}
	var active *auditKey
	for _, r := range recs {
		pt, err := k.sealer.Open(KindAuditKey+"/"+r.Name, r.Blob)
		if err != nil {
			return fmt.Errorf("audit: audit key %s does not open with this master key: %w", r.Name, err)
		}
		var sk sealedKey
		if err := json.Unmarshal(pt, &sk); err != nil || len(sk.Root) != 32 {
			return fmt.Errorf("audit: audit key %s is malformed", r.Name)
		}
		ak := deriveKey(sk.Root, sk.Created)
		clear(sk.Root)
		if ak.id != r.Name {
			return fmt.Errorf("audit: audit key %s is stored under another name (%s)", ak.id, r.Name)
		}
		keys[ak.id] = ak
		if active == nil || ak.created.After(active.created) {
			active = ak
		}
	}
	k.mu.Lock()
	k.keys, k.active = keys, active
	k.mu.Unlock()
	return nil
}

// Rotate creates a new audit key and makes it the one new records and checkpoints use; older
// keys are kept to verify what they covered. It returns the new key's id.
func (k *Keyring) Rotate(ctx context.Context) (string, error) {
	root := make([]byte, 32)
	if _, err := rand.Read(root); err != nil {
		return "", err
	}
	now := time.Now().UTC()
	ak := deriveKey(root, now)
	pt, err := json.Marshal(sealedKey{Root: root, Created: now})
	clear(root)
	if err != nil {
		return "", err
	}
	blob, err := k.sealer.Seal(KindAuditKey+"/"+ak.id, pt)
	clear(pt)
	if err != nil {
		return "", fmt.Errorf("audit: sealing a new audit key: %w", err)
	}
	if err := k.st.PutSealed(ctx, store.Sealed{Kind: KindAuditKey, Name: ak.id, KeyID: "", Blob: blob, Updated: now}); err != nil {
		return "", fmt.Errorf("audit: saving a new audit key: %w", err)
	}
	return ak.id, k.load(ctx)
}

// PublicKey is the public half of an audit key.
type PublicKey struct {
	ID      string
	Key     ed25519.PublicKey
	Created time.Time
	Active  bool
}

// PublicKeys returns every key's public half, oldest first.
func (k *Keyring) PublicKeys() []PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var out []PublicKey
	for _, ak := range k.keys {
		out = append(out, PublicKey{ID: ak.id, Key: ak.pub, Created: ak.created, Active: ak == k.active})
	}
	slices.SortFunc(out, func(a, b PublicKey) int { return a.Created.Compare(b.Created) })
	return out
}

func (k *Keyring) current() *auditKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.active
}

// lookup returns key id, reloading the keyring once when another process may have rotated.
func (k *Keyring) lookup(id string) (*auditKey, error) {
	k.mu.RLock()
	ak := k.keys[id]
	k.mu.RUnlock()
	if ak != nil {
		return ak, nil
	}
	if id != "" && k.mayReload() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := k.load(ctx); err == nil {
			k.mu.RLock()
			ak = k.keys[id]
			k.mu.RUnlock()
		}
	}
	if ak == nil {
		return nil, fmt.Errorf("it names audit key %q, which this host does not hold", id)
	}
	return ak, nil
}

// mayReload allows one reload of the keyring per second, so records naming unknown keys (a
// forgery) cannot make a verification read the keys once per record.
func (k *Keyring) mayReload() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if time.Since(k.reloaded) < time.Second {
		return false
	}
	k.reloaded = time.Now()
	return true
}

// SignLink implements [store.AuditKeys].
func (k *Keyring) SignLink(seq int64, hash string) (string, string, error) {
	ak := k.current()
	if ak == nil {
		return "", "", errors.New("audit: no audit key")
	}
	return ak.id, ak.linkMAC(seq, hash), nil
}

// CheckLink implements [store.AuditKeys].
func (k *Keyring) CheckLink(keyID string, seq int64, hash, mac string) error {
	ak, err := k.lookup(keyID)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(ak.linkMAC(seq, hash)), []byte(mac)) {
		return errors.New("wrong MAC")
	}
	return nil
}

// sign signs a checkpoint of (seq, hash) at t for replica with the active key.
func (k *Keyring) sign(seq int64, hash string, t time.Time, replica string) store.AuditCheckpoint {
	ak := k.current()
	c := store.AuditCheckpoint{Seq: seq, Hash: hash, Time: t.UTC(), Replica: replica, KeyID: ak.id}
	c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(ak.priv, CheckpointPayload(c)))
	return c
}

// verify checks a checkpoint against the key it names.
func (k *Keyring) verify(c store.AuditCheckpoint) error {
	ak, err := k.lookup(c.KeyID)
	if err != nil {
		return err
	}
	return VerifyCheckpoint(c, ak.pub)
}
