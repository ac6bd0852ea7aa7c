package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

func TestTokenRoleExpiryAndLastUse(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		t0 := c.Now()
		must(t, "adding an approver", s.AddToken(ctx, Token{Kind: TokenAdmin, Name: "bob", Role: "approver", SHA256: "b0"}))
		must(t, "adding an expiring agent", s.AddToken(ctx, Token{Kind: TokenAgent, Name: "bot", Subject: "acme", SHA256: "a0", Expires: t0.Add(time.Hour)}))

		tok, ok, err := s.LookupToken(ctx, TokenAdmin, "b0", t0)
		if !ok || err != nil || tok.Role != "approver" || tok.Name != "bob" {
			t.Fatalf("LookupToken(bob) = %+v, %v, %v; want bob the approver", tok, ok, err)
		}
		// An agent token is not an admin's, whatever its hash.
		if _, ok, err := s.LookupToken(ctx, TokenAdmin, "a0", t0); ok || err != nil {
			t.Errorf("the agent's hash as an admin's = %v, %v; want unknown", ok, err)
		}

		// Last use: stamped on first use, then at most once a minute.
		lastUsed := func(kind, name string) time.Time {
			t.Helper()
			list, err := s.ListTokens(ctx, kind)
			must(t, "listing tokens", err)
			for _, x := range list {
				if x.Name == name {
					return x.LastUsed
				}
			}
			t.Fatalf("%s %s not listed", kind, name)
			return time.Time{}
		}
		if got := lastUsed(TokenAdmin, "bob"); !got.Equal(t0.Truncate(time.Second)) {
			t.Errorf("last use after the first request = %v, want %v", got, t0)
		}
		s.LookupToken(ctx, TokenAdmin, "b0", t0.Add(30*time.Second))
		if got := lastUsed(TokenAdmin, "bob"); !got.Equal(t0.Truncate(time.Second)) {
			t.Errorf("last use 30s later = %v; want the store not written again within a minute", got)
		}
		s.LookupToken(ctx, TokenAdmin, "b0", t0.Add(61*time.Second))
		if got := lastUsed(TokenAdmin, "bob"); !got.Equal(t0.Add(61 * time.Second).Truncate(time.Second)) {
			t.Errorf("last use 61s later = %v; want it stamped again", got)
		}

		// Expiry: accepted before, refused at and after, saying so.
		if _, ok, err := s.LookupToken(ctx, TokenAgent, "a0", t0.Add(59*time.Minute)); !ok || err != nil {
			t.Errorf("the agent token before its expiry = %v, %v; want accepted", ok, err)
		}
		tok, ok, err = s.LookupToken(ctx, TokenAgent, "a0", t0.Add(time.Hour))
		if ok || !errors.Is(err, ErrExpired) || tok.Name != "bot" || !strings.Contains(err.Error(), "bot") {
			t.Errorf("the agent token at its expiry = %+v, %v, %v; want refused with ErrExpired naming bot", tok, ok, err)
		}

		// A role change applies to the next lookup; an unknown name is ErrNotFound.
		must(t, "changing bob's role", s.SetTokenRole(ctx, TokenAdmin, "bob", "viewer"))
		if tok, _, _ := s.LookupToken(ctx, TokenAdmin, "b0", t0); tok.Role != "viewer" {
			t.Errorf("role after SetTokenRole = %q, want viewer", tok.Role)
		}
		wantErr(t, "changing the role of nobody", s.SetTokenRole(ctx, TokenAdmin, "nobody", "owner"), ErrNotFound)
		wantErr(t, "changing the role of an agent through the admin kind", s.SetTokenRole(ctx, TokenAdmin, "bot", "owner"), ErrNotFound)
	})
}

// A store written before roles existed: its admin tokens could do everything, so they become
// owners; agent tokens get no role.
func TestTokenRoleMigration(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := openT(t, dsn, nil)
		// Roll the database back to the schema before the "admin roles" step.
		// ("idempotency leases" and "admin console sessions" come after it.)
		raw(t, s, `ALTER TABLE tokens DROP COLUMN role`)
		for _, col := range []string{"lease_owner", "lease_expires", "attempted"} {
			raw(t, s, `ALTER TABLE idempotency DROP COLUMN `+col)
		}
		raw(t, s, `DROP TABLE console_sessions`)
		raw(t, s, `DELETE FROM schema_migrations WHERE version >= ?`, stepVersion(t, "admin roles"))
		raw(t, s, `INSERT INTO tokens (kind, name, subject, sha256, created, last_used, expires) VALUES ('admin', 'root', '', 'r0', 1, 0, 0)`)
		raw(t, s, `INSERT INTO tokens (kind, name, subject, sha256, created, last_used, expires) VALUES ('agent', 'bot', 'acme', 'a0', 1, 0, 0)`)
		s.Close()

		s = openT(t, dsn, nil)
		admins, err := s.ListTokens(ctx, TokenAdmin)
		must(t, "listing admins", err)
		if len(admins) != 1 || admins[0].Role != "owner" {
			t.Errorf("admins after the migration = %+v; want root as owner", admins)
		}
		agents, err := s.ListTokens(ctx, TokenAgent)
		must(t, "listing agents", err)
		if len(agents) != 1 || agents[0].Role != "" || agents[0].Subject != "acme" {
			t.Errorf("agents after the migration = %+v; want bot (acme) with no role", agents)
		}
	})
}

// stepVersion is the version of the schema step named name.
func stepVersion(t *testing.T, name string) int {
	t.Helper()
	for i, m := range migrations {
		if m.name == name {
			return i + 1
		}
	}
	t.Fatalf("no schema step %q", name)
	return 0
}

// BenchmarkLookupToken is the cost every authenticated request pays: one indexed read, and a
// write at most once a minute per token ("stamped": once for the whole run). "written" moves the
// clock a minute per request, so every lookup also writes: what stamping each use would cost.
func BenchmarkLookupToken(b *testing.B) {
	for _, name := range []string{"sqlite/stamped", "sqlite/written", "postgres/stamped", "postgres/written"} {
		b.Run(name, func(b *testing.B) {
			dsn := "sqlite:" + b.TempDir() + "/state.db"
			if strings.HasPrefix(name, "postgres") {
				dsn = testenv.Postgres(b)
			}
			s, err := Open(context.Background(), dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if err := s.AddToken(ctx, Token{Kind: TokenAdmin, Name: "bob", Role: "viewer", SHA256: "b0"}); err != nil {
				b.Fatal(err)
			}
			now, step := time.Now(), time.Duration(0)
			if strings.HasSuffix(name, "written") {
				step = lastUsedEvery
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok, err := s.LookupToken(ctx, TokenAdmin, "b0", now.Add(time.Duration(i)*step)); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// A server keeps the tokens it looked up in memory (on an SQLite file), but another process's
// change reaches its next lookup: a revocation, a role change, a token added again under the
// same name; and an expiry is still checked on every lookup.
func TestTokenLookupSeesOtherProcessesAtOnce(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "state.db")
	server, cli := openT(t, dsn, nil), openT(t, dsn, nil)
	now := time.Now()
	must(t, "adding bob", cli.AddToken(ctx, Token{Kind: TokenAdmin, Name: "bob", Role: "owner", SHA256: "b0"}))
	must(t, "adding bot", cli.AddToken(ctx, Token{Kind: TokenAgent, Name: "bot", SHA256: "a0", Expires: now.Add(time.Hour)}))
	lookup := func(kind, hash string, at time.Time) (Token, bool, error) {
		t.Helper()
		var tok Token
		var ok bool
		var err error
		for range 3 { // the first reads the store, the others could be answered from memory
			tok, ok, err = server.LookupToken(ctx, kind, hash, at)
		}
		return tok, ok, err
	}
	if tok, ok, err := lookup(TokenAdmin, "b0", now); !ok || err != nil || tok.Role != "owner" {
		t.Fatalf("LookupToken(bob) = %+v, %v, %v; want bob the owner", tok, ok, err)
	}

	must(t, "demoting bob from the other process", cli.SetTokenRole(ctx, TokenAdmin, "bob", "viewer"))
	if tok, ok, err := lookup(TokenAdmin, "b0", now); !ok || err != nil || tok.Role != "viewer" {
		t.Errorf("bob after another process made him a viewer = %+v, %v, %v; want the viewer role at once", tok, ok, err)
	}
	must(t, "revoking bob from the other process", cli.RevokeToken(ctx, TokenAdmin, "bob"))
	if _, ok, err := server.LookupToken(ctx, TokenAdmin, "b0", now); ok || err != nil {
		t.Errorf("bob's token after another process revoked it = %v, %v; want refused at once", ok, err)
	}
	must(t, "adding bob again with a new token", cli.AddToken(ctx, Token{Kind: TokenAdmin, Name: "bob", Role: "viewer", SHA256: "b1"}))
	if _, ok, _ := lookup(TokenAdmin, "b0", now); ok {
		t.Error("bob's old token is accepted after bob was added again with a new one")
	}
	if _, ok, err := lookup(TokenAdmin, "b1", now); !ok || err != nil {
		t.Errorf("bob's new token = %v, %v; want accepted", ok, err)
	}

	if _, ok, err := lookup(TokenAgent, "a0", now.Add(59*time.Minute+30*time.Second)); !ok || err != nil {
		t.Fatalf("bot before its expiry = %v, %v; want accepted", ok, err)
	}
	if _, ok, err := server.LookupToken(ctx, TokenAgent, "a0", now.Add(time.Hour)); ok || !errors.Is(err, ErrExpired) {
		t.Errorf("bot at its expiry, 30s after it was last looked up = %v, %v; want refused with ErrExpired", ok, err)
	}
}

// A change the mark beside the database does not show (made by hand, or by an airlock from
// before the mark) is seen within a minute; with the mark deleted, nothing is kept in memory.
func TestTokenChangeWithoutMark(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	server, old := openT(t, "sqlite:"+path, nil), openT(t, "sqlite:"+path, nil)
	now := time.Now()
	must(t, "adding bot", old.AddToken(ctx, Token{Kind: TokenAgent, Name: "bot", SHA256: "a0"}))
	for _, at := range []time.Time{now, now.Add(time.Second)} {
		if _, ok, err := server.LookupToken(ctx, TokenAgent, "a0", at); !ok || err != nil {
			t.Fatalf("LookupToken(bot) = %v, %v", ok, err)
		}
	}
	raw(t, old, `DELETE FROM tokens WHERE name = 'bot'`)
	if _, ok, err := server.LookupToken(ctx, TokenAgent, "a0", now.Add(lastUsedEvery)); ok || err != nil {
		t.Errorf("bot a minute after it was deleted without the mark = %v, %v; want refused", ok, err)
	}

	must(t, "adding bot again", old.AddToken(ctx, Token{Kind: TokenAgent, Name: "bot", SHA256: "a0"}))
	server.LookupToken(ctx, TokenAgent, "a0", now)
	if err := os.Remove(path + tokenMarkSuffix); err != nil {
		t.Fatal(err)
	}
	raw(t, old, `DELETE FROM tokens WHERE name = 'bot'`)
	if _, ok, err := server.LookupToken(ctx, TokenAgent, "a0", now); ok || err != nil {
		t.Errorf("bot deleted by hand after the mark was deleted = %v, %v; want refused at once", ok, err)
	}
}

// A token looked up again is answered from memory: no read of the database, which is what a
// lookup cost every request before (44 allocations, and a read transaction on a WAL the audit
// keeps changing).
func TestTokenLookupFromMemory(t *testing.T) {
	ctx := context.Background()
	s := openT(t, "sqlite:"+filepath.Join(t.TempDir(), "state.db"), nil)
	must(t, "adding bot", s.AddToken(ctx, Token{Kind: TokenAgent, Name: "bot", SHA256: "a0"}))
	now := time.Now()
	if _, ok, err := s.LookupToken(ctx, TokenAgent, "a0", now); !ok || err != nil {
		t.Fatalf("LookupToken(bot) = %v, %v", ok, err)
	}
	allocs := testing.AllocsPerRun(100, func() { s.LookupToken(ctx, TokenAgent, "a0", now) })
	if allocs > 4 {
		t.Errorf("a repeated lookup allocates %.0f times; want at most 4 (a stat of the change mark, no database read)", allocs)
	}
}

// Hammer: lookups running all the time on one store while another process revokes the token;
// none that starts after the revocation returned accepts it.
func TestTokenRevokedDuringLookups(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "state.db")
	server, cli := openT(t, dsn, nil), openT(t, dsn, nil)
	for round := range 5 {
		name := fmt.Sprintf("bot%d", round)
		hash := fmt.Sprintf("%064x", round)
		must(t, "adding "+name, cli.AddToken(ctx, Token{Kind: TokenAgent, Name: name, SHA256: hash}))
		var revoked atomic.Bool
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var stale atomic.Int64
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					after := revoked.Load()
					if _, ok, _ := server.LookupToken(ctx, TokenAgent, hash, time.Now()); ok && after {
						stale.Add(1)
					}
				}
			})
		}
		time.Sleep(20 * time.Millisecond)
		must(t, "revoking "+name, cli.RevokeToken(ctx, TokenAgent, name))
		revoked.Store(true)
		time.Sleep(20 * time.Millisecond)
		close(stop)
		wg.Wait()
		if n := stale.Load(); n > 0 {
			t.Errorf("round %d: %d lookups that started after the revocation returned accepted the token", round, n)
		}
	}
}

// A change that cannot leave its mark (here a directory stands where the mark should be) is
// still made, and the admin is told that running servers may accept the old token for up to a
// minute and how to apply it now.
func TestTokenChangeMarkUnwritable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openT(t, "sqlite:"+path, nil)
	must(t, "adding bot", s.AddToken(ctx, Token{Kind: TokenAgent, Name: "bot", SHA256: "a0"}))
	if err := os.Remove(path + tokenMarkSuffix); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path+tokenMarkSuffix, 0o700); err != nil {
		t.Fatal(err)
	}
	err := s.RevokeToken(ctx, TokenAgent, "bot")
	if err == nil || !strings.Contains(err.Error(), "restart them") {
		t.Errorf("revoking without a writable mark = %v; want an error saying to restart running servers", err)
	}
	if _, ok, err := openT(t, "sqlite:"+path, nil).LookupToken(ctx, TokenAgent, "a0", time.Now()); ok || err != nil {
		t.Errorf("bot after a revocation whose mark failed = %v, %v; want revoked all the same", ok, err)
	}
}
