package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// A read-only command on a fresh state never writes a master key: the 'airlock tools'
// wrote a new master.key that did not match the replicas' state.
func TestReadOnlyCommandCreatesNoMasterKey(t *testing.T) {
	hermetic(t)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte("connectors: []\n"), 0o600)
	for _, args := range [][]string{{"tools"}, {"grants"}, {"agent", "list"}} {
		code, _, errOut := airlock(t, append(args, "--state-dir", stateDir, "--config", filepath.Join(dir, "airlock.yaml"))...)
		if code != exitOK {
			t.Fatalf("airlock %s = %d: %s", strings.Join(args, " "), code, errOut)
		}
		if _, err := os.Stat(filepath.Join(stateDir, secret.MasterKeyFile)); !os.IsNotExist(err) {
			t.Fatalf("airlock %s created %s (%v); want no master key written by a read-only command", strings.Join(args, " "), secret.MasterKeyFile, err)
		}
	}
	// A command that stores a secret creates it on the embedded state, and says so.
	withStdin(t, "value\n")
	code, _, errOut := airlock(t, "secret", "set", "k", "--state-dir", stateDir, "--config", filepath.Join(dir, "airlock.yaml"))
	if code != exitOK || !strings.Contains(errOut, "created a new master key") || !strings.Contains(errOut, "fingerprint") {
		t.Fatalf("secret set on a fresh state = %d, %q; want the key created, with a notice naming its fingerprint", code, errOut)
	}
}

// Replicas on one PostgreSQL: none creates a key of its own; one given another key than the
// state was sealed with refuses, naming both fingerprints; the same reference works anywhere.
func TestSharedStateMasterKey(t *testing.T) {
	hermetic(t)
	dsn := testenv.Postgres(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte("connectors: []\n"), 0o600)
	flags := func(replica string, more ...string) []string {
		return append(more, "--state", dsn, "--state-dir", filepath.Join(dir, replica), "--config", filepath.Join(dir, "airlock.yaml"))
	}
	withStdin(t, "value\n")
	code, _, errOut := airlock(t, flags("r1", "secret", "set", "k")...)
	if code == exitOK || !strings.Contains(errOut, "airlock init master-key") {
		t.Fatalf("secret set on PostgreSQL without a key = %d, %q; want a refusal pointing at 'airlock init master-key'", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "r1", secret.MasterKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("a key was created for the shared state (%v)", err)
	}
	keyA, keyB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	for _, k := range []string{keyA, keyB} {
		if code, _, errOut := airlock(t, "init", "master-key", "--out", k); code != exitOK {
			t.Fatalf("init master-key = %d: %s", code, errOut)
		}
	}
	if code, _, _ := airlock(t, "init", "master-key", "--out", keyA); code == exitOK {
		t.Error("init master-key replaced an existing key")
	}
	withStdin(t, "value\n")
	if code, _, errOut := airlock(t, flags("r1", "secret", "set", "k", "--master-key", "file:"+keyA)...); code != exitOK {
		t.Fatalf("secret set with --master-key = %d: %s", code, errOut)
	}
	// Replica 2, another machine, names the same key through the environment.
	t.Setenv("AIRLOCK_MASTER_KEY_REF", "file:"+keyA)
	if code, out, errOut := airlock(t, flags("r2", "secret", "list")...); code != exitOK || !strings.Contains(out, "k") {
		t.Fatalf("secret list on replica 2 = %d, %q, %q", code, out, errOut)
	}
	// Replica 3 names another key: refused, with both fingerprints.
	readKey := func(p string) []byte {
		raw, _ := os.ReadFile(p)
		k, err := secret.ParseMasterKey(strings.TrimSpace(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	code, _, errOut = airlock(t, flags("r3", "tools", "--master-key", "file:"+keyB)...)
	wantFP, gotFP := secret.Fingerprint(readKey(keyA)), secret.Fingerprint(readKey(keyB))
	if code == exitOK || !strings.Contains(errOut, wantFP) || !strings.Contains(errOut, gotFP) {
		t.Errorf("tools with the wrong key = %d, %q; want a refusal naming fingerprints %s (expected) and %s (given)", code, errOut, wantFP, gotFP)
	}
	// No key at all, on a state that has secrets: refused, naming the expected fingerprint.
	os.Unsetenv("AIRLOCK_MASTER_KEY_REF")
	code, _, errOut = airlock(t, flags("r4", "tools")...)
	if code == exitOK || !strings.Contains(errOut, wantFP) || !strings.Contains(errOut, "--master-key") {
		t.Errorf("tools without a key = %d, %q; want a refusal naming fingerprint %s and --master-key", code, errOut, wantFP)
	}
}
