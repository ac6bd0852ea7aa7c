package mcp_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// backends are the state stores tests that say "on SQLite and PostgreSQL" run on.
var backends = []struct {
	name string
	dsn  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "state.db") }},
	{"postgres", func(t *testing.T) string { return testenv.Postgres(t) }},
}

// Two processes on one state store (two replicas): a token issued through one is accepted by
// the other, and a revocation through either is refused by both from the next request on.
func TestStoreTokensSharedByReplicas(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.dsn(t)
			open := func() *store.Store {
				st, err := store.Open(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			}
			one, two := mcp.StoreAgents(open()), mcp.StoreAgents(open())
			token, err := one.Add("ci-bot", "acme")
			if err != nil {
				t.Fatal(err)
			}
			id, ok, err := two.Verify(token)
			if err != nil || !ok || id != (mcp.Identity{Name: "ci-bot", Subject: "acme"}) {
				t.Fatalf("Verify on the other replica = %+v, %v, %v; want ci-bot/acme", id, ok, err)
			}
			// An admin store on the same database does not take an agent token, nor the reverse.
			if _, ok, _ := mcp.StoreAdmins(open()).Verify(token); ok {
				t.Error("an agent token passed as an admin's")
			}
			if _, err := two.Add("ci-bot", ""); !errors.Is(err, mcp.ErrAgentExists) {
				t.Errorf("adding ci-bot again on the other replica = %v; want ErrAgentExists", err)
			}
			list, err := one.List()
			if err != nil || len(list) != 1 || list[0].LastUsed.IsZero() {
				t.Errorf("List = %+v, %v; want ci-bot with its last use stamped", list, err)
			}
			if err := two.Revoke("ci-bot"); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := one.Verify(token); ok || err != nil {
				t.Errorf("Verify after a revoke on the other replica = %v, %v; want refused", ok, err)
			}
			if err := one.Revoke("ci-bot"); !errors.Is(err, mcp.ErrNoAgent) {
				t.Errorf("revoking twice = %v; want ErrNoAgent", err)
			}

			short, err := one.AddUntil("short", "", time.Now().Add(300*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := two.Verify(short); !ok {
				t.Fatal("a token before its expiry is refused")
			}
			time.Sleep(400 * time.Millisecond)
			if _, ok, _ := two.Verify(short); ok {
				t.Error("an expired token is accepted")
			}
		})
	}
}

// An operator upgrading keeps the agents of STATE_DIR/agents.json: they move into the store
// once, tokens unchanged, and the file is no longer read.
func TestMigrateTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agents.json")
	token, err := mcp.OpenAgents(path).Add("old-bot", "acme")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	agents := mcp.StoreAgents(st)
	if n, err := agents.MigrateFile(context.Background(), path); n != 1 || err != nil {
		t.Fatalf("MigrateFile = %d, %v; want 1 token moved", n, err)
	}
	if id, ok, err := agents.Verify(token); !ok || err != nil || id.Subject != "acme" {
		t.Errorf("the migrated token: %+v, %v, %v; want accepted as old-bot/acme", id, ok, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("agents.json is still there (%v); want it renamed", err)
	}
	if _, err := os.Stat(path + ".migrated"); err != nil {
		t.Errorf("agents.json.migrated: %v", err)
	}
	if n, err := agents.MigrateFile(context.Background(), path); n != 0 || err != nil {
		t.Errorf("second MigrateFile = %d, %v; want nothing to do", n, err)
	}
}

// VerifySHA256 (the console's sessions keep the admin token's hash only) answers as Verify does
// for the token with that hash, for admins in the state store and in a token file; an agent's
// token hash is no admin, and neither is anything but 64 hex digits.
func TestVerifySHA256(t *testing.T) {
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, admins := range []*mcp.Agents{mcp.StoreAdmins(st), mcp.OpenAdmins(filepath.Join(t.TempDir(), "admins.json"))} {
		token, err := admins.Issue(mcp.NewToken{Name: "olivia", Role: "owner"})
		if err != nil {
			t.Fatal(err)
		}
		agent, err := mcp.StoreAgents(st).Issue(mcp.NewToken{Name: fmt.Sprint("bot-", i), Subject: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := admins.Verify(token)
		if id, ok, err := admins.VerifySHA256(sha256Hex(token)); !ok || err != nil || id != want {
			t.Errorf("VerifySHA256 of olivia's token hash (%q) = %+v, %v, %v; want %+v", admins.Path(), id, ok, err, want)
		}
		for _, bad := range []string{sha256Hex(agent), sha256Hex(token)[:62], "zz" + sha256Hex(token)[2:], token, ""} {
			if id, ok, err := admins.VerifySHA256(bad); ok || err != nil {
				t.Errorf("VerifySHA256(%q) = %+v, %v, %v; want refused", bad, id, ok, err)
			}
		}
		if err := admins.Revoke("olivia"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := admins.VerifySHA256(sha256Hex(token)); ok {
			t.Errorf("a revoked admin token's hash still verifies (%q)", admins.Path())
		}
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
