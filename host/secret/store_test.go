package secret_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/airlock-dev/airlock/host/secret"
)

func mustKey(t *testing.T) []byte {
	t.Helper()
	k, err := secret.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustOpen(t *testing.T, b secret.Backend, key []byte) *secret.Store {
	t.Helper()
	s, err := secret.OpenStore(context.Background(), b, key)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	return s
}

// noLeak fails if err's text contains any of the given secrets, raw or encoded.
func noLeak(t *testing.T, what string, err error, secrets ...[]byte) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error() + fmt.Sprintf(" %+v %#v", err, err)
	for _, s := range secrets {
		for _, form := range []string{string(s), fmt.Sprintf("%x", s), base64.StdEncoding.EncodeToString(s)} {
			if form != "" && strings.Contains(msg, form) {
				t.Errorf("%s: error leaks a secret: %s", what, msg)
			}
		}
	}
}

// backendHolds reports whether any byte the backend stores contains needle.
func backendHolds(t *testing.T, b *secret.MemoryBackend, needle []byte) bool {
	t.Helper()
	ctx := context.Background()
	ring, err := b.GetMeta(ctx, secret.KeyringMetaKey)
	if err != nil {
		t.Fatalf("GetMeta: %v", err)
	}
	hay := [][]byte{ring}
	rs, err := b.ListSealed(ctx, secret.KindSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		hay = append(hay, r.Blob, []byte(r.Name), []byte(r.KeyID))
	}
	for _, h := range hay {
		for _, form := range [][]byte{needle, []byte(base64.StdEncoding.EncodeToString(needle)), []byte(fmt.Sprintf("%x", needle))} {
			if bytes.Contains(h, form) {
				return true
			}
		}
	}
	return false
}

func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	b := &secret.MemoryBackend{}
	key := mustKey(t)
	s := mustOpen(t, b, key)

	if err := s.Set(ctx, "slack_bot", secret.New(canary)); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := s.Set(ctx, "team/salesforce.key-2", secret.New("other")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	got, err := s.Get(ctx, "slack_bot")
	if err != nil || got.Expose() != canary {
		t.Fatalf("Get = %v (%d bytes), %v; want the canary back", got, len(got.Expose()), err)
	}
	if backendHolds(t, b, []byte(canary)) {
		t.Error("the backend stores the plaintext")
	}
	if backendHolds(t, b, key) {
		t.Error("the backend stores the master key")
	}

	// A second host (same backend, same key) reads what the first wrote.
	s2 := mustOpen(t, b, key)
	via := secret.Mux{"store": s2, "env": secret.Env{}}
	got, err = via.Resolve(ctx, "store:slack_bot")
	if err != nil || got.Expose() != canary {
		t.Fatalf(`Resolve("store:slack_bot") on a second Store = %v, want the canary`, err)
	}

	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "slack_bot" || list[1].Name != "team/salesforce.key-2" {
		t.Errorf("List = %+v, want slack_bot and team/salesforce.key-2 in order", list)
	}
	js, _ := json.Marshal(list)
	if strings.Contains(fmt.Sprintf("%+v %s", list, js), canary) {
		t.Errorf("List exposes a value: %s", js)
	}

	if err := s.Delete(ctx, "slack_bot"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s2.Get(ctx, "slack_bot"); !errors.Is(err, secret.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "slack_bot"); !errors.Is(err, secret.ErrNotFound) {
		t.Errorf("Delete twice: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Resolve(ctx, "store:nope"); !errors.Is(err, secret.ErrNotFound) || !strings.Contains(err.Error(), "airlock secret set nope") {
		t.Errorf("Resolve(store:nope) = %v, want ErrNotFound telling how to add it", err)
	}
}

func TestStoreRejectsBadNamesAndValues(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, &secret.MemoryBackend{}, mustKey(t))
	for _, name := range []string{"", "/abs", "../x", "a b", "a\x00b", "ü", strings.Repeat("a", 129), "-x", canary + "\n"} {
		if err := s.Set(ctx, name, secret.New("v")); err == nil {
			t.Errorf("Set(%q) succeeded, want an error", name)
		}
	}
	if err := s.Set(ctx, "empty", secret.Value{}); err == nil {
		t.Error("Set of an empty Value succeeded, want an error")
	}
	for _, ref := range []string{"store:", "store:a b", "env:X", "store:" + canary + "!", canary} {
		_, err := s.Resolve(ctx, ref)
		if err == nil {
			t.Errorf("Resolve(%q) succeeded", ref)
		}
		noLeak(t, "Resolve("+ref+")", err, []byte(canary))
	}
}

func TestSealedBlobsAreBoundToTheirRecord(t *testing.T) {
	ctx := context.Background()
	b := &secret.MemoryBackend{}
	s := mustOpen(t, b, mustKey(t))
	if err := s.Set(ctx, "admin_token", secret.New(canary)); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "public_token", secret.New("low-value")); err != nil {
		t.Fatal(err)
	}
	a, _ := b.GetSealed(ctx, secret.KindSecret, "admin_token")
	p, _ := b.GetSealed(ctx, secret.KindSecret, "public_token")

	// An attacker with write access to the database swaps the two blobs, hoping a tool that may
	// use public_token ends up sending the admin token.
	a.Blob, p.Blob = p.Blob, a.Blob
	for _, r := range []secret.SealedRecord{a, p} {
		if err := b.PutSealed(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"admin_token", "public_token"} {
		v, err := s.Get(ctx, name)
		if err == nil {
			t.Errorf("Get(%s) after swapping blobs = %d bytes, want an error", name, len(v.Expose()))
		}
		noLeak(t, "Get", err, []byte(canary))
	}
	// Copying onto a new name fails too, and so does opening a record under another kind.
	p.Name = "copy"
	_ = b.PutSealed(ctx, p)
	if _, err := s.Get(ctx, "copy"); err == nil {
		t.Error("a blob copied onto another name opened")
	}
	blob, err := s.Seal("oauth/slack/U1", []byte(canary))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open("oauth/slack/U2", blob); err == nil {
		t.Error("Open with another subject's identity succeeded")
	}
	if _, err := s.Open("secret/slack", blob); err == nil {
		t.Error("Open with another identity succeeded")
	}
	if pt, err := s.Open("oauth/slack/U1", blob); err != nil || string(pt) != canary {
		t.Errorf("Open with the right identity = %v", err)
	}
}

func TestSealedBlobTamperingIsDetected(t *testing.T) {
	ctx := context.Background()
	b := &secret.MemoryBackend{}
	s := mustOpen(t, b, mustKey(t))
	if err := s.Set(ctx, "k", secret.New(canary)); err != nil {
		t.Fatal(err)
	}
	orig, _ := b.GetSealed(ctx, secret.KindSecret, "k")
	for i := range orig.Blob {
		for _, bit := range []byte{0x01, 0x80} {
			r := orig
			r.Blob = bytes.Clone(orig.Blob)
			r.Blob[i] ^= bit
			_ = b.PutSealed(ctx, r)
			v, err := s.Get(ctx, "k")
			if err == nil {
				t.Fatalf("flipping bit %#x of byte %d went unnoticed: got %d bytes", bit, i, len(v.Expose()))
			}
			noLeak(t, "Get", err, []byte(canary))
		}
	}
	for _, n := range []int{0, 1, 9, 21, len(orig.Blob) - 1} {
		r := orig
		r.Blob = orig.Blob[:n]
		_ = b.PutSealed(ctx, r)
		if _, err := s.Get(ctx, "k"); err == nil {
			t.Errorf("a blob truncated to %d bytes opened", n)
		}
	}
	r := orig
	r.Blob = append(bytes.Clone(orig.Blob), 0)
	_ = b.PutSealed(ctx, r)
	if _, err := s.Get(ctx, "k"); err == nil {
		t.Error("a blob with a trailing byte opened")
	}
	_ = b.PutSealed(ctx, orig)
	if v, err := s.Get(ctx, "k"); err != nil || v.Expose() != canary {
		t.Errorf("the untouched blob does not open: %v", err)
	}
}

func TestSealedValuesAreNotDeterministic(t *testing.T) {
	s := mustOpen(t, &secret.MemoryBackend{}, mustKey(t))
	a, _ := s.Seal("x", []byte(canary))
	b, _ := s.Seal("x", []byte(canary))
	if bytes.Equal(a, b) {
		t.Error("sealing the same value twice gave the same blob: nonces are reused")
	}
}

func TestOpenStoreWithWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	b := &secret.MemoryBackend{}
	good := mustKey(t)
	s := mustOpen(t, b, good)
	if err := s.Set(ctx, "k", secret.New(canary)); err != nil {
		t.Fatal(err)
	}
	wrong := mustKey(t)
	_, err := secret.OpenStore(ctx, b, wrong)
	if !errors.Is(err, secret.ErrWrongMasterKey) {
		t.Fatalf("OpenStore(wrong key) = %v, want ErrWrongMasterKey", err)
	}
	if !strings.Contains(err.Error(), "AIRLOCK_MASTER_KEY") {
		t.Errorf("the error does not tell the admin what to check: %v", err)
	}
	noLeak(t, "OpenStore", err, []byte(canary), good, wrong)

	// An attacker rewrites the key fingerprint in the keyring to match their key: GCM still
	// refuses to unwrap the data key, so the wrong key never yields garbage.
	other := &secret.MemoryBackend{}
	mustOpen(t, other, wrong)
	theirs, _ := other.GetMeta(ctx, secret.KeyringMetaKey)
	ours, _ := b.GetMeta(ctx, secret.KeyringMetaKey)
	var tr, or map[string]any
	if err := json.Unmarshal(theirs, &tr); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ours, &or); err != nil {
		t.Fatal(err)
	}
	or["kek_id"] = tr["kek_id"]
	forged, _ := json.Marshal(or)
	_ = b.SetMeta(ctx, secret.KeyringMetaKey, forged)
	if _, err := secret.OpenStore(ctx, b, wrong); !errors.Is(err, secret.ErrWrongMasterKey) {
		t.Errorf("OpenStore(wrong key, forged fingerprint) = %v, want ErrWrongMasterKey", err)
	}

	for _, k := range [][]byte{nil, make([]byte, 16), make([]byte, 33)} {
		if _, err := secret.OpenStore(ctx, &secret.MemoryBackend{}, k); err == nil {
			t.Errorf("OpenStore with a %d-byte key succeeded", len(k))
		}
	}
	_ = b.SetMeta(ctx, secret.KeyringMetaKey, []byte("{not json"))
	if _, err := secret.OpenStore(ctx, b, good); err == nil || errors.Is(err, secret.ErrWrongMasterKey) {
		t.Errorf("OpenStore on a corrupt keyring = %v, want a corruption error", err)
	}
}

func TestRotateMasterKey(t *testing.T) {
	ctx := context.Background()
	b := &secret.MemoryBackend{}
	oldKey, newKey := mustKey(t), mustKey(t)
	running := mustOpen(t, b, oldKey)
	names := []string{"a", "b", "c", "d"}
	for _, n := range names {
		if err := running.Set(ctx, n, secret.New(canary+n)); err != nil {
			t.Fatal(err)
		}
	}
	oauthBlob, _ := running.Seal("oauth/x", []byte("tok"))

	// A running host keeps reading while the rotation happens.
	var wg sync.WaitGroup
	var readErrs atomic.Int64
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, n := range names {
					if v, err := running.Get(ctx, n); err != nil || v.Expose() != canary+n {
						readErrs.Add(1)
					}
				}
			}
		})
	}
	if err := secret.RotateMasterKey(ctx, b, mustKey(t), newKey); err == nil || !strings.Contains(err.Error(), "old master key does not open") {
		t.Errorf("RotateMasterKey with a wrong old key = %v, want a clear refusal", err)
	}
	err := secret.RotateMasterKey(ctx, b, oldKey, newKey)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}
	if n := readErrs.Load(); n != 0 {
		t.Errorf("a running host failed %d reads during the rotation", n)
	}
	// And after it, including writes that new hosts must read.
	if err := running.Set(ctx, "e", secret.New(canary+"e")); err != nil {
		t.Fatalf("Set on the running host after rotation: %v", err)
	}
	names = append(names, "e")

	if _, err := secret.OpenStore(ctx, b, oldKey); !errors.Is(err, secret.ErrWrongMasterKey) {
		t.Errorf("OpenStore(old key) after rotation = %v, want ErrWrongMasterKey", err)
	}
	fresh := mustOpen(t, b, newKey)
	for _, n := range names {
		if v, err := fresh.Get(ctx, n); err != nil || v.Expose() != canary+n {
			t.Errorf("Get(%s) with the new key: %v", n, err)
		}
	}
	if pt, err := fresh.Open("oauth/x", oauthBlob); err != nil || string(pt) != "tok" {
		t.Errorf("a blob sealed before the rotation does not open with the new key: %v", err)
	}
	if backendHolds(t, b, oldKey) || backendHolds(t, b, newKey) {
		t.Error("the backend stores a master key")
	}

	// Running it again is a no-op; rotating to the same key is refused.
	if err := secret.RotateMasterKey(ctx, b, oldKey, newKey); err != nil {
		t.Errorf("re-running the rotation: %v", err)
	}
	if err := secret.RotateMasterKey(ctx, b, newKey, newKey); err == nil {
		t.Error("rotating to the same key succeeded")
	}
	if err := secret.RotateMasterKey(ctx, &secret.MemoryBackend{}, oldKey, newKey); err == nil {
		t.Error("rotating an empty state succeeded")
	}
}

// racingBackend runs before() just ahead of its first CompareAndSetMeta, to play another host
// that changes the keyring in the middle of an operation.
type racingBackend struct {
	*secret.MemoryBackend
	once   sync.Once
	before func()
}

func (r *racingBackend) CompareAndSetMeta(ctx context.Context, key string, old, value []byte) error {
	r.once.Do(r.before)
	return r.MemoryBackend.CompareAndSetMeta(ctx, key, old, value)
}

func TestRotationsRetryOnConcurrentChange(t *testing.T) {
	ctx := context.Background()
	mem := &secret.MemoryBackend{}
	oldKey, newKey := mustKey(t), mustKey(t)
	s := mustOpen(t, mem, oldKey)
	_ = s.Set(ctx, "a", secret.New(canary))
	rb := &racingBackend{MemoryBackend: mem, before: func() {
		if _, err := secret.RotateDataKey(ctx, mem, oldKey); err != nil {
			t.Errorf("RotateDataKey: %v", err)
		}
	}}
	if err := secret.RotateMasterKey(ctx, rb, oldKey, newKey); err != nil {
		t.Fatalf("RotateMasterKey with a concurrent data-key rotation: %v", err)
	}
	// Both changes survived: the new key opens the state, including the data key added midway.
	fresh := mustOpen(t, mem, newKey)
	if v, err := fresh.Get(ctx, "a"); err != nil || v.Expose() != canary {
		t.Fatalf("Get after both rotations: %v", err)
	}
	var ring struct{ Keys []json.RawMessage }
	raw, _ := mem.GetMeta(ctx, secret.KeyringMetaKey)
	_ = json.Unmarshal(raw, &ring)
	if len(ring.Keys) != 2 {
		t.Errorf("keyring holds %d data keys, want 2 (the concurrent data-key rotation was lost)", len(ring.Keys))
	}
}

func TestRotateDataKey(t *testing.T) {
	ctx := context.Background()
	b := &secret.MemoryBackend{}
	key := mustKey(t)
	running := mustOpen(t, b, key)
	for _, n := range []string{"a", "b", "c"} {
		_ = running.Set(ctx, n, secret.New(canary+n))
	}
	before, _ := running.List(ctx)
	sealedElsewhere, _ := running.Seal("oauth/x", []byte("tok"))

	n, err := secret.RotateDataKey(ctx, b, key)
	if err != nil || n != 3 {
		t.Fatalf("RotateDataKey = %d, %v; want 3 records re-sealed", n, err)
	}
	after, _ := running.List(ctx)
	for i := range after {
		if after[i].KeyID == before[i].KeyID {
			t.Errorf("%s is still sealed with the old data key %s", after[i].Name, after[i].KeyID)
		}
	}
	// The running host, which loaded only the old data key, reads the re-sealed values.
	for _, n := range []string{"a", "b", "c"} {
		if v, err := running.Get(ctx, n); err != nil || v.Expose() != canary+n {
			t.Errorf("running Get(%s) after a data-key rotation: %v", n, err)
		}
	}
	if pt, err := mustOpen(t, b, key).Open("oauth/x", sealedElsewhere); err != nil || string(pt) != "tok" {
		t.Errorf("a blob sealed under the old data key does not open: %v", err)
	}
	if _, err := secret.RotateDataKey(ctx, b, mustKey(t)); !errors.Is(err, secret.ErrWrongMasterKey) {
		t.Errorf("RotateDataKey with a wrong master key = %v, want ErrWrongMasterKey", err)
	}
}

func TestStoreConcurrentUse(t *testing.T) {
	ctx := context.Background()
	b := &secret.MemoryBackend{}
	key := mustKey(t)

	// Many hosts start at once on an empty state: they must agree on one keyring.
	stores := make([]*secret.Store, 8)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			s, err := secret.OpenStore(ctx, b, key)
			if err != nil {
				t.Errorf("OpenStore: %v", err)
			}
			stores[i] = s
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i := range 16 {
		wg.Go(func() {
			s := stores[i%len(stores)]
			name := fmt.Sprintf("k%d", i%4)
			for j := range 50 {
				if j%3 == 0 {
					if err := s.Set(ctx, name, secret.New(fmt.Sprintf("%s-%s", canary, name))); err != nil {
						t.Errorf("Set: %v", err)
						return
					}
					continue
				}
				v, err := s.Get(ctx, name)
				if errors.Is(err, secret.ErrNotFound) {
					continue
				}
				if err != nil || v.Expose() != canary+"-"+name {
					t.Errorf("Get(%s) = %v, want the value written by some host", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestLoadMasterKeyFromEnv(t *testing.T) {
	key := mustKey(t)
	t.Setenv(secret.MasterKeyEnv, " "+base64.StdEncoding.EncodeToString(key)+"\n")
	got, src, err := secret.LoadMasterKey(t.TempDir())
	if err != nil || !bytes.Equal(got, key) || src != secret.MasterKeyEnv {
		t.Fatalf("LoadMasterKey = %q, %v; want the key from %s", src, err, secret.MasterKeyEnv)
	}
	for _, bad := range []string{"", canary, base64.StdEncoding.EncodeToString(key[:31]), base64.StdEncoding.EncodeToString(append(key, 1)), "!!!" + base64.StdEncoding.EncodeToString(key)} {
		t.Setenv(secret.MasterKeyEnv, bad)
		_, _, err := secret.LoadMasterKey(t.TempDir())
		if err == nil {
			t.Errorf("LoadMasterKey accepted %q", bad)
			continue
		}
		if !strings.Contains(err.Error(), "AIRLOCK_MASTER_KEY must be the base64 encoding of exactly 32 bytes") {
			t.Errorf("LoadMasterKey(%q) = %v, want it to say the key must be base64 of 32 bytes", bad, err)
		}
		noLeak(t, "LoadMasterKey", err, []byte(bad))
	}
}

func TestLoadMasterKeyFile(t *testing.T) {
	t.Setenv(secret.MasterKeyEnv, "") // restored at cleanup
	os.Unsetenv(secret.MasterKeyEnv)

	dir := filepath.Join(t.TempDir(), "state")
	key, src, err := secret.LoadMasterKey(dir)
	if err != nil {
		t.Fatalf("LoadMasterKey (first run): %v", err)
	}
	path := filepath.Join(dir, secret.MasterKeyFile)
	if src != path+" (created)" || len(key) != secret.KeySize {
		t.Errorf("first run: source %q, %d-byte key; want %q and 32 bytes", src, len(key), path+" (created)")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", perm)
	}
	if dst, _ := os.Stat(dir); dst.Mode().Perm()&0o077 != 0 {
		t.Errorf("state directory mode = %04o, want no group/other access", dst.Mode().Perm())
	}
	again, src2, err := secret.LoadMasterKey(dir)
	if err != nil || !bytes.Equal(again, key) || src2 != path {
		t.Errorf("second run = %q, %v; want the same key from %s", src2, err, path)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = secret.LoadMasterKey(dir)
	if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("LoadMasterKey on a 0644 key file = %v, want a refusal with the chmod command", err)
	}
	noLeak(t, "LoadMasterKey", err, key)
	_ = os.Chmod(path, 0o600)

	// A corrupt key file is refused, never replaced.
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := secret.LoadMasterKey(dir); err == nil {
		t.Error("LoadMasterKey accepted a corrupt key file")
	}
	if b, _ := os.ReadFile(path); string(b) != "not a key\n" {
		t.Error("LoadMasterKey overwrote a corrupt key file")
	}

	// WriteMasterKeyFile replaces it atomically with mode 0600.
	newKey := mustKey(t)
	if err := secret.WriteMasterKeyFile(path, newKey); err != nil {
		t.Fatal(err)
	}
	got, _, err := secret.LoadMasterKey(dir)
	if err != nil || !bytes.Equal(got, newKey) {
		t.Errorf("after WriteMasterKeyFile: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("WriteMasterKeyFile left mode %04o, want 0600", st.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("WriteMasterKeyFile left %d files in the directory, want 1", len(ents))
	}
}

func TestLoadMasterKeyConcurrentFirstRun(t *testing.T) {
	t.Setenv(secret.MasterKeyEnv, "")
	os.Unsetenv(secret.MasterKeyEnv)
	dir := t.TempDir()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, _, err := secret.LoadMasterKey(dir)
			if err != nil {
				t.Errorf("LoadMasterKey: %v", err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for i := range keys {
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatal("hosts starting at once on a new state got different master keys")
		}
	}
}
