package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file holds the envelope encryption behind [Store]: a keyring of data keys (DEKs), each
// wrapped with AES-256-GCM under the master key (KEK), and the blob format values are sealed in.

// KeySize is the size in bytes of a master key and of a data key: 32 (AES-256).
const KeySize = 32

const (
	blobVersion = 1
	keyIDSize   = 8
	nonceSize   = 12                                 // AES-GCM standard nonce
	blobHeader  = 1 + keyIDSize                      // version byte, data key id
	blobMin     = blobHeader + nonceSize + 16        // + GCM tag, empty plaintext
	ringVersion = 1                                  // keyring JSON format
	kekIDLabel  = "airlock master key id v1"         // HMAC label for the master key fingerprint
	wrapLabel   = "airlock keyring v1 data key "     // associated data prefix for a wrapped DEK
	sealLabel   = "airlock sealed v1 "               // associated data prefix for a sealed value
	maxSealSize = 1 << 20                            // largest plaintext Seal accepts, in bytes
	maxRingKeys = 64                                 // data keys a keyring may hold
	keygenHint  = "head -c 32 /dev/urandom | base64" // how to make a key
)

// keyring is the persisted form of the data keys, stored as JSON in the backend's meta table
// under [KeyringMetaKey]. It holds no plaintext key.
type keyring struct {
	Version int `json:"version"`
	// KEKID fingerprints the master key the data keys are wrapped with (an HMAC of a fixed
	// label under the key), so a wrong key is named as such before any decryption is tried.
	KEKID  string       `json:"kek_id"`
	Active string       `json:"active"` // id of the data key new values are sealed with
	Keys   []wrappedKey `json:"keys"`
}

type wrappedKey struct {
	ID      string    `json:"id"`      // 16 hex digits
	Nonce   []byte    `json:"nonce"`   // base64 in JSON
	Wrapped []byte    `json:"wrapped"` // AES-256-GCM(KEK, nonce, DEK, wrapLabel+ID)
	Created time.Time `json:"created"`
}

// dataKeys is an unwrapped keyring: data key id → AEAD. It lives only in host memory.
type dataKeys struct {
	active string
	aeads  map[string]cipher.AEAD
}

// KeyringMetaKey is the meta key under which [Store] keeps its keyring (the wrapped data keys).
const KeyringMetaKey = "secret.keyring"

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// kekID fingerprints a master key without revealing it.
func kekID(master []byte) string {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(kekIDLabel))
	return hex.EncodeToString(m.Sum(nil)[:keyIDSize])
}

func checkMasterKey(master []byte) error {
	if len(master) != KeySize {
		return fmt.Errorf("the master key is %d bytes long; it must be exactly %d random bytes (base64 of 32 bytes; generate one with: %s)", len(master), KeySize, keygenHint)
	}
	return nil
}

// newDataKey returns a fresh random data key, wrapped under master.
func newDataKey(master []byte, now time.Time) (wrappedKey, []byte, error) {
	dek := make([]byte, KeySize)
	idb := make([]byte, keyIDSize)
	if _, err := rand.Read(dek); err != nil {
		return wrappedKey{}, nil, err
	}
	if _, err := rand.Read(idb); err != nil {
		return wrappedKey{}, nil, err
	}
	w := wrappedKey{ID: hex.EncodeToString(idb), Created: now.UTC()}
	if err := w.wrap(master, dek); err != nil {
		return wrappedKey{}, nil, err
	}
	return w, dek, nil
}

func (w *wrappedKey) wrap(master, dek []byte) error {
	kek, err := newAEAD(master)
	if err != nil {
		return err
	}
	w.Nonce = make([]byte, nonceSize)
	if _, err := rand.Read(w.Nonce); err != nil {
		return err
	}
	w.Wrapped = kek.Seal(nil, w.Nonce, dek, []byte(wrapLabel+w.ID))
	return nil
}

func (w wrappedKey) unwrap(master []byte) ([]byte, error) {
	kek, err := newAEAD(master)
	if err != nil {
		return nil, err
	}
	if len(w.Nonce) != nonceSize {
		return nil, errBadKeyring
	}
	dek, err := kek.Open(nil, w.Nonce, w.Wrapped, []byte(wrapLabel+w.ID))
	if err != nil {
		return nil, err
	}
	if len(dek) != KeySize {
		return nil, errBadKeyring
	}
	return dek, nil
}

var errBadKeyring = errors.New("the secret store's keyring is malformed: restore the state from a backup")

func parseKeyring(raw []byte) (*keyring, error) {
	var r keyring
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, errBadKeyring
	}
	if r.Version != ringVersion {
		return nil, fmt.Errorf("the secret store's keyring has format version %d, which this airlock does not know: upgrade airlock", r.Version)
	}
	if len(r.Keys) == 0 || !slices.ContainsFunc(r.Keys, func(k wrappedKey) bool { return k.ID == r.Active }) {
		return nil, errBadKeyring
	}
	return &r, nil
}

func (r *keyring) marshal() ([]byte, error) { return json.Marshal(r) }

// unwrapAll opens every data key of r with master. A master key other than the one r was
// wrapped with fails with ErrWrongMasterKey; the fingerprint is checked first and every
// unwrap is authenticated by GCM, so a wrong key never yields garbage.
func (r *keyring) unwrapAll(master []byte) (*dataKeys, error) {
	if err := checkMasterKey(master); err != nil {
		return nil, err
	}
	if got := kekID(master); !hmac.Equal([]byte(r.KEKID), []byte(got)) {
		return nil, &WrongMasterKeyError{Want: r.KEKID, Got: got}
	}
	dk := &dataKeys{active: r.Active, aeads: make(map[string]cipher.AEAD, len(r.Keys))}
	for _, w := range r.Keys {
		dek, err := w.unwrap(master)
		if err != nil {
			if errors.Is(err, errBadKeyring) {
				return nil, err
			}
			return nil, ErrWrongMasterKey
		}
		a, err := newAEAD(dek)
		clear(dek)
		if err != nil {
			return nil, err
		}
		dk.aeads[w.ID] = a
	}
	return dk, nil
}

// seal encrypts plaintext under the active data key. The blob is
// version(1) | key id(8) | nonce(12) | ciphertext+tag, and the associated data is
// sealLabel + aad + header, so a blob opens only under the identity it was sealed for.
func (dk *dataKeys) seal(aad string, plaintext []byte) ([]byte, string, error) {
	if len(plaintext) > maxSealSize {
		return nil, "", fmt.Errorf("the value is larger than %d bytes: secrets are short; check what is being stored", maxSealSize)
	}
	a := dk.aeads[dk.active]
	id, err := hex.DecodeString(dk.active)
	if a == nil || err != nil || len(id) != keyIDSize {
		return nil, "", errBadKeyring
	}
	blob := make([]byte, blobHeader+nonceSize, blobHeader+nonceSize+len(plaintext)+a.Overhead())
	blob[0] = blobVersion
	copy(blob[1:], id)
	nonce := blob[blobHeader : blobHeader+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, "", err
	}
	blob = a.Seal(blob, nonce, plaintext, sealAAD(aad, blob[:blobHeader]))
	return blob, dk.active, nil
}

func sealAAD(aad string, header []byte) []byte {
	b := make([]byte, 0, len(sealLabel)+len(aad)+1+len(header))
	b = append(b, sealLabel...)
	b = append(b, aad...)
	b = append(b, 0)
	return append(b, header...)
}

// blobKeyID returns the data key id a blob was sealed with.
func blobKeyID(blob []byte) (string, error) {
	if len(blob) < blobMin || blob[0] != blobVersion {
		return "", errSealedCorrupt
	}
	return hex.EncodeToString(blob[1:blobHeader]), nil
}

var errSealedCorrupt = errors.New("the sealed value is corrupt or was not sealed for this record: restore it from a backup or set it again")

// open decrypts a blob made by seal for the same aad.
func (dk *dataKeys) open(aad string, blob []byte) ([]byte, error) {
	id, err := blobKeyID(blob)
	if err != nil {
		return nil, err
	}
	a := dk.aeads[id]
	if a == nil {
		return nil, errUnknownKey
	}
	pt, err := a.Open(nil, blob[blobHeader:blobHeader+nonceSize], blob[blobHeader+nonceSize:], sealAAD(aad, blob[:blobHeader]))
	if err != nil {
		return nil, errSealedCorrupt
	}
	return pt, nil
}

var errUnknownKey = errors.New("the sealed value uses a data key this keyring does not hold")

// NewMasterKey returns a fresh random master key of [KeySize] bytes.
func NewMasterKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// ParseMasterKey decodes a master key written as the standard base64 encoding of 32 bytes (the
// form of AIRLOCK_MASTER_KEY and of the key file). Surrounding white space is ignored. The
// error never contains the input.
func ParseMasterKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(k) != KeySize {
		return nil, fmt.Errorf("the master key must be the base64 encoding of exactly 32 bytes (generate one with: %s)", keygenHint)
	}
	return k, nil
}

// EncodeMasterKey returns the standard base64 form of a master key, as [ParseMasterKey] reads it.
func EncodeMasterKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }
