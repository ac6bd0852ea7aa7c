package secret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// MasterKeyEnv is the environment variable [LoadMasterKey] reads the master key from first: the
// standard base64 encoding of 32 random bytes.
const MasterKeyEnv = "AIRLOCK_MASTER_KEY"

// MasterKeyFile is the name of the key file [LoadMasterKey] uses in the state directory when
// [MasterKeyEnv] is not set.
const MasterKeyFile = "master.key"

// LoadMasterKey returns the master key of the built-in secret store and says where it came
// from:
//
//   - from AIRLOCK_MASTER_KEY if that variable is set (source "AIRLOCK_MASTER_KEY"); a value
//     that is not the base64 encoding of 32 bytes is an error, never silently replaced;
//   - otherwise from STATE_DIR/master.key (source is its path), which must not be readable
//     or writable by group or others;
//   - otherwise it creates that file with a fresh random key, mode 0600, in a directory created
//     with mode 0700 (source is the path followed by " (created)").
//
// Errors never contain key material.
func LoadMasterKey(stateDir string) (key []byte, source string, err error) {
	if v, ok := os.LookupEnv(MasterKeyEnv); ok {
		k, err := ParseMasterKey(v)
		if err != nil {
			return nil, "", fmt.Errorf("%s must be the base64 encoding of exactly 32 bytes (generate one with: %s)", MasterKeyEnv, keygenHint)
		}
		return k, MasterKeyEnv, nil
	}
	if stateDir == "" {
		return nil, "", fmt.Errorf("no master key: set %s or give a state directory for %s", MasterKeyEnv, MasterKeyFile)
	}
	path := filepath.Join(stateDir, MasterKeyFile)
	for range 2 {
		k, err := readMasterKeyFile(path)
		if !errors.Is(err, fs.ErrNotExist) {
			return k, path, err
		}
		k, err = NewMasterKey()
		if err != nil {
			return nil, "", err
		}
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return nil, "", fmt.Errorf("creating the state directory %s for the master key: %w", stateDir, err)
		}
		err = createKeyFile(path, k)
		if errors.Is(err, fs.ErrExist) {
			continue // another process created it first: read theirs
		}
		if err != nil {
			return nil, "", err
		}
		return k, path + " (created)", nil
	}
	return nil, "", fmt.Errorf("master key file %s keeps appearing and disappearing: check what else manages it", path)
}

func readMasterKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("master key file %s cannot be opened (check its owner and permissions): %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("master key file %s is not a regular file: remove it or point the state directory elsewhere", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s has mode %04o, so other users can read or change it: run `chmod 600 %s` (and consider rotating the key)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("master key file %s cannot be read: %w", path, err)
	}
	k, err := ParseMasterKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("master key file %s must contain the base64 encoding of exactly 32 bytes: restore it from your backup", path)
	}
	return k, nil
}

// createKeyFile creates path holding key, atomically: another process sees either no file or
// the complete key, never an empty file. It returns an error wrapping fs.ErrExist if path
// already exists.
func createKeyFile(path string, key []byte) error {
	tmp, err := writeTempKey(path, key)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("creating master key file %s: %w", path, err)
	}
	return nil
}

// writeTempKey writes key to a new file with mode 0600 next to path and returns its name.
func writeTempKey(path string, key []byte) (string, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".master.key-*")
	if err != nil {
		return "", fmt.Errorf("writing master key file in %s: %w", dir, err)
	}
	name := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = io.WriteString(f, EncodeMasterKey(key)+"\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("writing master key file %s: %w", path, err)
	}
	return name, nil
}

// WriteMasterKeyFile replaces the key file at path with key atomically (a temporary file with
// mode 0600 in the same directory, synced, then renamed), for a master-key rotation: write the
// new key to a side file first, run [RotateMasterKey], then move it into place, so a crash in
// between never leaves the state without a key that opens it.
func WriteMasterKeyFile(path string, key []byte) error {
	if err := checkMasterKey(key); err != nil {
		return err
	}
	tmp, err := writeTempKey(path, key)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing master key file %s: %w", path, err)
	}
	return nil
}

// Fingerprint identifies a master key without revealing it: a keyed hash (HMAC-SHA-256 of a
// fixed label under the key), in hex. The state store keeps the fingerprint of the key its
// secrets are sealed with, so a mismatch names both.
func Fingerprint(master []byte) string { return kekID(master) }

// WrongMasterKeyError is the [ErrWrongMasterKey] that names the fingerprints of the master key
// the state's secrets are sealed with (Want) and of the one given (Got).
type WrongMasterKeyError struct{ Want, Got string }

func (e *WrongMasterKeyError) Error() string {
	return fmt.Sprintf("the master key does not open this state: its secrets are sealed with the master key of fingerprint %s, but the key given has fingerprint %s. "+
		"Every replica must name the same master key (--master-key, %s or master_key in the configuration); check which one it was created (or last rotated) with", e.Want, e.Got, MasterKeyEnv)
}

// Is makes errors.Is(err, ErrWrongMasterKey) hold.
func (e *WrongMasterKeyError) Is(target error) bool { return target == ErrWrongMasterKey }

// FindMasterKey is [LoadMasterKey] without creating a key: when AIRLOCK_MASTER_KEY is unset and
// STATE_DIR/master.key does not exist, it returns an error wrapping [fs.ErrNotExist].
func FindMasterKey(stateDir string) (key []byte, source string, err error) {
	if v, ok := os.LookupEnv(MasterKeyEnv); ok && v != "" {
		return LoadMasterKey(stateDir)
	}
	if stateDir == "" {
		return nil, "", fmt.Errorf("no master key: set %s or give a state directory for %s: %w", MasterKeyEnv, MasterKeyFile, fs.ErrNotExist)
	}
	path := filepath.Join(stateDir, MasterKeyFile)
	k, err := readMasterKeyFile(path)
	return k, path, err
}

// SealedWith returns the fingerprint of the master key the secret store in backend is sealed
// with, or an error wrapping [ErrNotFound] when the state holds no secret store yet.
func SealedWith(ctx context.Context, backend Backend) (string, error) {
	raw, err := backend.GetMeta(ctx, KeyringMetaKey)
	if err != nil {
		return "", err
	}
	r, err := parseKeyring(raw)
	if err != nil {
		return "", err
	}
	return r.KEKID, nil
}
