package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMeta(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, _ *clock) {
		ctx := context.Background()
		_, err := s.GetMeta(ctx, "ring")
		wantErr(t, "GetMeta of a missing key", err, ErrNotFound)

		// nil old: the key must not exist.
		must(t, "CAS create", s.CompareAndSetMeta(ctx, "ring", nil, []byte("v1")))
		wantErr(t, "CAS create over an existing key", s.CompareAndSetMeta(ctx, "ring", nil, []byte("evil")), ErrConflict)
		wantErr(t, "CAS with a stale old value", s.CompareAndSetMeta(ctx, "ring", []byte("v0"), []byte("evil")), ErrConflict)
		wantErr(t, "CAS of a missing key with an old value", s.CompareAndSetMeta(ctx, "other", []byte("v1"), []byte("x")), ErrConflict)
		if got, _ := s.GetMeta(ctx, "ring"); string(got) != "v1" {
			t.Fatalf("after refused CAS the value is %q, want v1", got)
		}
		must(t, "CAS update", s.CompareAndSetMeta(ctx, "ring", []byte("v1"), []byte("v2")))
		if got, _ := s.GetMeta(ctx, "ring"); string(got) != "v2" {
			t.Fatalf("GetMeta = %q, want v2", got)
		}
		if _, err := s.GetMeta(ctx, "other"); err == nil {
			t.Fatalf("a refused CAS created the key")
		}

		must(t, "SetMeta", s.SetMeta(ctx, "plain", []byte{0, 1, 2, 0xff}))
		must(t, "SetMeta overwrite", s.SetMeta(ctx, "plain", []byte{9, 0}))
		if got, _ := s.GetMeta(ctx, "plain"); !bytes.Equal(got, []byte{9, 0}) {
			t.Fatalf("GetMeta = %x, want 0900", got)
		}
		must(t, "SetMeta empty", s.SetMeta(ctx, "empty", nil))
		if got, err := s.GetMeta(ctx, "empty"); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("GetMeta of an empty value = %v, %v; want empty, non-nil", got, err)
		}
	})
}

// Concurrent compare-and-set from many writers: exactly one wins each round.
func TestMetaCASRace(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, _ *clock) {
		ctx := context.Background()
		must(t, "SetMeta", s.SetMeta(ctx, "k", []byte("0")))
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins int
		)
		for i := range 16 {
			wg.Go(func() {
				err := s.CompareAndSetMeta(ctx, "k", []byte("0"), fmt.Appendf(nil, "w%d", i))
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !isConflict(err) {
					t.Errorf("CAS: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d writers won the same compare-and-set, want 1", wins)
		}
	})
}

func isConflict(err error) bool { return err != nil && errors.Is(err, ErrConflict) }

func TestSealed(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		_, err := s.GetSealed(ctx, "secret", "slack")
		wantErr(t, "GetSealed missing", err, ErrNotFound)
		wantErr(t, "DeleteSealed missing", s.DeleteSealed(ctx, "secret", "slack"), ErrNotFound)
		if err := s.PutSealed(ctx, Sealed{Kind: "secret"}); err == nil {
			t.Fatalf("PutSealed without a name succeeded")
		}

		must(t, "put b", s.PutSealed(ctx, Sealed{Kind: "secret", Name: "b", KeyID: "k1", Blob: []byte{1, 2}}))
		must(t, "put a", s.PutSealed(ctx, Sealed{Kind: "secret", Name: "a", KeyID: "k1", Blob: []byte{3}}))
		must(t, "put other kind", s.PutSealed(ctx, Sealed{Kind: "token", Name: "a", KeyID: "k1", Blob: []byte{4}}))
		c.Add(time.Minute)
		must(t, "replace a", s.PutSealed(ctx, Sealed{Kind: "secret", Name: "a", KeyID: "k2", Blob: []byte{5, 6}}))

		got, err := s.GetSealed(ctx, "secret", "a")
		must(t, "GetSealed", err)
		want := Sealed{Kind: "secret", Name: "a", KeyID: "k2", Blob: []byte{5, 6}, Updated: c.Now()}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("GetSealed mismatch (-want +got):\n%s", diff)
		}
		list, err := s.ListSealed(ctx, "secret")
		must(t, "ListSealed", err)
		if len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" || !bytes.Equal(list[1].Blob, []byte{1, 2}) {
			t.Fatalf("ListSealed = %+v, want a then b with blobs, no other kind", list)
		}
		must(t, "DeleteSealed", s.DeleteSealed(ctx, "secret", "a"))
		_, err = s.GetSealed(ctx, "secret", "a")
		wantErr(t, "GetSealed after delete", err, ErrNotFound)
		if _, err := s.GetSealed(ctx, "token", "a"); err != nil {
			t.Fatalf("deleting secret/a removed token/a: %v", err)
		}
	})
}

func TestConnections(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		_, err := s.GetConnection(ctx, "salesforce", "oauth", "acme")
		wantErr(t, "GetConnection missing", err, ErrNotFound)
		wantErr(t, "DeleteConnection missing", s.DeleteConnection(ctx, "salesforce", "oauth", "acme"), ErrNotFound)

		sf := Connection{Connector: "salesforce", Slot: "oauth", Subject: "acme", Token: []byte("sealed"),
			Metadata: map[string]string{"instance_url": "https://acme.my.salesforce.com"}, Status: StatusConnected}
		must(t, "put", s.PutConnection(ctx, sf))
		must(t, "put other subject", s.PutConnection(ctx, Connection{Connector: "salesforce", Slot: "oauth", Subject: "globex",
			Status: StatusNeedsReauth, Detail: "the refresh token was revoked; sign in again"}))
		must(t, "put slack", s.PutConnection(ctx, Connection{Connector: "slack", Slot: "bot", Subject: "", Token: []byte("t")}))

		got, err := s.GetConnection(ctx, "salesforce", "oauth", "acme")
		must(t, "GetConnection", err)
		sf.Updated = c.Now()
		if diff := cmp.Diff(sf, got); diff != "" {
			t.Fatalf("GetConnection mismatch (-want +got):\n%s", diff)
		}
		g, _ := s.GetConnection(ctx, "salesforce", "oauth", "globex")
		if g.Token != nil || g.Status != StatusNeedsReauth || g.Detail == "" || g.Metadata == nil {
			t.Fatalf("not-connected connection = %+v, want nil token, needs_reauth, detail, empty metadata", g)
		}

		all, err := s.ListConnections(ctx, "")
		must(t, "ListConnections all", err)
		if len(all) != 3 {
			t.Fatalf("ListConnections(\"\") returned %d, want 3", len(all))
		}
		sfs, err := s.ListConnections(ctx, "salesforce")
		must(t, "ListConnections salesforce", err)
		if len(sfs) != 2 || sfs[0].Subject != "acme" || sfs[1].Subject != "globex" {
			t.Fatalf("ListConnections(salesforce) = %+v", sfs)
		}

		// Replace: the token is cleared on disconnect-by-reauth.
		sf.Token, sf.Status, sf.Detail = nil, StatusNeedsReauth, "expired"
		must(t, "replace", s.PutConnection(ctx, sf))
		got, _ = s.GetConnection(ctx, "salesforce", "oauth", "acme")
		if got.Token != nil || got.Status != StatusNeedsReauth {
			t.Fatalf("after replace = %+v", got)
		}
		must(t, "DeleteConnection", s.DeleteConnection(ctx, "salesforce", "oauth", "acme"))
		_, err = s.GetConnection(ctx, "salesforce", "oauth", "acme")
		wantErr(t, "GetConnection after delete", err, ErrNotFound)
	})
}

func TestInstalled(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		v1 := Installed{Name: "slack", Version: "1.0.0", Digest: "sha256:aa", Publisher: "acme",
			Manifest: []byte("name: slack\n"), Module: []byte("\x00asm1"), Status: InstalledActive}
		must(t, "put v1 active", s.PutInstalled(ctx, v1))
		_, err := s.GetInstalled(ctx, "slack", "9")
		wantErr(t, "GetInstalled missing", err, ErrNotFound)
		_, err = s.ActiveInstalled(ctx, "github")
		wantErr(t, "ActiveInstalled missing", err, ErrNotFound)
		wantErr(t, "Activate missing", s.Activate(ctx, "slack", "9"), ErrNotFound)
		if err := s.PutInstalled(ctx, Installed{Name: "slack", Version: "x", Status: "enabled"}); err == nil {
			t.Fatalf("PutInstalled with an unknown status succeeded")
		}

		c.Add(time.Hour)
		v2 := Installed{Name: "slack", Version: "2.0.0", Digest: "sha256:bb", Publisher: "acme",
			Manifest: []byte("name: slack\nversion: 2\n"), Module: []byte("\x00asm2"), Status: InstalledPending, Unsigned: true}
		must(t, "put v2 pending", s.PutInstalled(ctx, v2))
		act, err := s.ActiveInstalled(ctx, "slack")
		must(t, "ActiveInstalled", err)
		if act.Version != "1.0.0" || !bytes.Equal(act.Module, v1.Module) {
			t.Fatalf("a pending version became active: %+v", act)
		}

		must(t, "Activate v2", s.Activate(ctx, "slack", "2.0.0"))
		act, _ = s.ActiveInstalled(ctx, "slack")
		if act.Version != "2.0.0" || !act.Unsigned || act.Status != InstalledActive {
			t.Fatalf("after Activate the active version is %+v", act)
		}
		old, _ := s.GetInstalled(ctx, "slack", "1.0.0")
		if old.Status != InstalledRetired {
			t.Fatalf("after Activate v1 is %q, want retired", old.Status)
		}
		must(t, "Activate v2 again", s.Activate(ctx, "slack", "2.0.0"))

		// Putting v1 back as active retires v2 atomically.
		v1.Status = InstalledActive
		must(t, "put v1 active again", s.PutInstalled(ctx, v1))
		act, _ = s.ActiveInstalled(ctx, "slack")
		if act.Version != "1.0.0" {
			t.Fatalf("active = %s, want 1.0.0", act.Version)
		}

		// The same version with another module is refused, whatever its status, and changes
		// nothing: two installs racing with different modules cannot both succeed.
		swapped := v1
		swapped.Digest, swapped.Module = "sha256:ee", []byte("\x00evil")
		wantErr(t, "put v1 with another digest", s.PutInstalled(ctx, swapped), ErrConflict)
		got, err := s.GetInstalled(ctx, "slack", "1.0.0")
		must(t, "GetInstalled v1", err)
		if got.Digest != v1.Digest || !bytes.Equal(got.Module, v1.Module) || got.Status != InstalledActive {
			t.Fatalf("after a refused swap v1 is %+v", got)
		}
		act, _ = s.ActiveInstalled(ctx, "slack")
		if act.Version != "1.0.0" {
			t.Fatalf("a refused swap changed the active version to %s", act.Version)
		}

		// The database itself refuses a second active version, whoever writes it.
		if _, err := s.exec(ctx, `UPDATE installed SET status = 'active' WHERE name = 'slack' AND version = '2.0.0'`); err == nil {
			t.Fatalf("the database accepted two active versions of one connector")
		}

		must(t, "put other", s.PutInstalled(ctx, Installed{Name: "github", Version: "0.1.0", Status: InstalledPending, Module: []byte("m")}))
		list, err := s.ListInstalled(ctx)
		must(t, "ListInstalled", err)
		if len(list) != 3 || list[0].Name != "github" || list[1].Version != "1.0.0" || list[2].Version != "2.0.0" {
			t.Fatalf("ListInstalled = %+v", list)
		}
		for _, in := range list {
			if in.Module != nil {
				t.Fatalf("ListInstalled returned module bytes for %s", in.Name)
			}
			if len(in.Manifest) == 0 && in.Name == "slack" {
				t.Fatalf("ListInstalled dropped the manifest")
			}
		}
		if !list[2].InstalledAt.Equal(c.Now()) {
			t.Errorf("InstalledAt = %v, want the clock %v", list[2].InstalledAt, c.Now())
		}

		must(t, "DeleteInstalled", s.DeleteInstalled(ctx, "slack", "1.0.0"))
		wantErr(t, "DeleteInstalled twice", s.DeleteInstalled(ctx, "slack", "1.0.0"), ErrNotFound)
		_, err = s.ActiveInstalled(ctx, "slack")
		wantErr(t, "ActiveInstalled after deleting the active version", err, ErrNotFound)
	})
}

// Two admins activating different versions at once leave exactly one active version.
func TestActivateRace(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, _ *clock) {
		ctx := context.Background()
		for i := range 6 {
			must(t, "put", s.PutInstalled(ctx, Installed{Name: "x", Version: fmt.Sprint(i), Status: InstalledPending, Module: []byte("m")}))
		}
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				if err := s.Activate(ctx, "x", fmt.Sprint(i)); err != nil && !isConflict(err) {
					t.Errorf("Activate: %v", err)
				}
			})
		}
		wg.Wait()
		list, _ := s.ListInstalled(ctx)
		active := 0
		for _, in := range list {
			if in.Status == InstalledActive {
				active++
			}
		}
		if active != 1 {
			t.Fatalf("%d active versions after concurrent Activate, want 1", active)
		}
	})
}

func TestGrants(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		_, err := s.CurrentGrant(ctx, "slack")
		wantErr(t, "CurrentGrant never granted", err, ErrNotFound)
		// A connector only a configuration file grants is revoked in the store.
		if rv, err := s.RevokeGrant(ctx, "from-file", "alice", "INC-1"); err != nil || rv.Version != 1 || !rv.Revoked {
			t.Fatalf("RevokeGrant never granted = %+v, %v, want version 1, revoked", rv, err)
		}
		if _, err := s.PutGrant(ctx, "slack", []byte(`{"tools":`), "alice", ""); err == nil {
			t.Fatalf("PutGrant accepted invalid JSON")
		}

		g1, err := s.PutGrant(ctx, "slack", []byte(`{"tools":["a"]}`), "alice", "ticket 1")
		must(t, "PutGrant", err)
		c.Add(time.Minute)
		g2, err := s.PutGrant(ctx, "slack", []byte(`{"tools":["a","b"]}`), "bob", "ticket 2")
		must(t, "PutGrant 2", err)
		_, err = s.PutGrant(ctx, "github", []byte(`{}`), "alice", "")
		must(t, "PutGrant github", err)
		if g1.Version != 1 || g2.Version != 2 || g2.Admin != "bob" || !g2.Created.Equal(c.Now()) {
			t.Fatalf("versions = %+v, %+v", g1, g2)
		}
		cur, err := s.CurrentGrant(ctx, "slack")
		must(t, "CurrentGrant", err)
		if diff := cmp.Diff(g2, cur); diff != "" {
			t.Fatalf("CurrentGrant mismatch (-want +got):\n%s", diff)
		}

		c.Add(time.Minute)
		rv, err := s.RevokeGrant(ctx, "slack", "carol", "incident 7")
		must(t, "RevokeGrant", err)
		if rv.Version != 3 || !rv.Revoked || rv.Grant != nil || rv.Admin != "carol" {
			t.Fatalf("RevokeGrant = %+v", rv)
		}
		cur, _ = s.CurrentGrant(ctx, "slack")
		if !cur.Revoked || cur.Grant != nil {
			t.Fatalf("current grant after revoke = %+v, want revoked with no grant", cur)
		}
		hist, err := s.GrantHistory(ctx, "slack")
		must(t, "GrantHistory", err)
		if len(hist) != 3 || hist[0].Note != "ticket 1" || string(hist[1].Grant) != `{"tools":["a","b"]}` || !hist[2].Revoked {
			t.Fatalf("GrantHistory = %+v", hist)
		}
		all, err := s.ListGrants(ctx)
		must(t, "ListGrants", err)
		if len(all) != 3 || all[0].Connector != "from-file" || all[1].Connector != "github" || all[2].Connector != "slack" || !all[2].Revoked {
			t.Fatalf("ListGrants = %+v", all)
		}
		g4, err := s.PutGrant(ctx, "slack", []byte(`{"tools":["a"]}`), "alice", "restored")
		must(t, "PutGrant after revoke", err)
		if g4.Version != 4 || g4.Revoked {
			t.Fatalf("grant after revoke = %+v", g4)
		}
	})
}

func TestGrantVersionsConcurrent(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, _ *clock) {
		ctx := context.Background()
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				if _, err := s.PutGrant(ctx, "slack", fmt.Appendf(nil, `{"n":%d}`, i), "a", ""); err != nil {
					t.Errorf("PutGrant: %v", err)
				}
			})
		}
		wg.Wait()
		hist, _ := s.GrantHistory(ctx, "slack")
		if len(hist) != 10 {
			t.Fatalf("history has %d versions, want 10", len(hist))
		}
		for i, g := range hist {
			if g.Version != i+1 {
				t.Fatalf("history version %d is %d", i+1, g.Version)
			}
		}
	})
}

func TestTrustKeys(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		pub, _, _ := ed25519.GenerateKey(nil)
		pub2, _, _ := ed25519.GenerateKey(nil)
		if err := s.PutTrustKey(ctx, TrustKey{Name: "acme", PublicKey: pub[:31]}); err == nil {
			t.Fatalf("PutTrustKey accepted a 31-byte key")
		}
		if err := s.PutTrustKey(ctx, TrustKey{PublicKey: pub}); err == nil {
			t.Fatalf("PutTrustKey accepted a key without a name")
		}
		must(t, "put zeta", s.PutTrustKey(ctx, TrustKey{Name: "zeta", PublicKey: pub2, AddedBy: "bob"}))
		must(t, "put acme", s.PutTrustKey(ctx, TrustKey{Name: "acme", PublicKey: pub, AddedBy: "alice"}))
		keys, err := s.ListTrustKeys(ctx)
		must(t, "ListTrustKeys", err)
		want := []TrustKey{
			{Name: "acme", PublicKey: pub, Added: c.Now(), AddedBy: "alice"},
			{Name: "zeta", PublicKey: pub2, Added: c.Now(), AddedBy: "bob"},
		}
		if diff := cmp.Diff(want, keys); diff != "" {
			t.Fatalf("ListTrustKeys mismatch (-want +got):\n%s", diff)
		}
		must(t, "DeleteTrustKey", s.DeleteTrustKey(ctx, "acme"))
		wantErr(t, "DeleteTrustKey twice", s.DeleteTrustKey(ctx, "acme"), ErrNotFound)
		keys, _ = s.ListTrustKeys(ctx)
		if len(keys) != 1 || keys[0].Name != "zeta" {
			t.Fatalf("after delete ListTrustKeys = %+v", keys)
		}
	})
}
