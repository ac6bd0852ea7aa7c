package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestConsoleSessionsAcrossReplicas: two processes (two Stores) on one database see the same
// console sessions: one's sign-in, touch and sign-out are the other's at once, and the sweep
// removes only sessions idle since before its cutoff.
func TestConsoleSessionsAcrossReplicas(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b := openT(t, dsn, nil), openT(t, dsn, nil)
		t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		must(t, "adding on A", a.AddConsoleSession(ctx, ConsoleSession{IDSHA256: "id1", TokenSHA256: "tok1", Created: t0, LastSeen: t0}))
		if err := b.AddConsoleSession(ctx, ConsoleSession{IDSHA256: "id1", TokenSHA256: "other", Created: t0, LastSeen: t0}); !errors.Is(err, ErrConflict) {
			t.Errorf("adding a session ID already recorded, on B: %v; want ErrConflict", err)
		}
		got, err := b.GetConsoleSession(ctx, "id1")
		must(t, "reading on B", err)
		if got.TokenSHA256 != "tok1" || !got.Created.Equal(t0) || !got.LastSeen.Equal(t0) {
			t.Errorf("B reads %+v; want A's session", got)
		}

		// Two replicas touch the session they both read: one write wins, the other is a no-op.
		t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
		must(t, "touching on B", b.TouchConsoleSession(ctx, "id1", t0, t1))
		must(t, "touching on A from a stale read", a.TouchConsoleSession(ctx, "id1", t0, t2))
		if got, err := a.GetConsoleSession(ctx, "id1"); err != nil || !got.LastSeen.Equal(t1) {
			t.Errorf("A reads %+v, %v; want last seen %v (B's touch)", got, err, t1)
		}

		must(t, "adding a second session", a.AddConsoleSession(ctx, ConsoleSession{IDSHA256: "id2", TokenSHA256: "tok1", Created: t0, LastSeen: t0}))
		n, err := b.PurgeConsoleSessions(ctx, t0.Add(30*time.Second))
		must(t, "purging", err)
		if n != 1 {
			t.Errorf("purge deleted %d sessions; want 1 (id2, idle since %v)", n, t0)
		}
		if _, err := a.GetConsoleSession(ctx, "id2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the purged session on A: %v; want ErrNotFound", err)
		}

		must(t, "signing out on B", b.DeleteConsoleSession(ctx, "id1"))
		if _, err := a.GetConsoleSession(ctx, "id1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after a sign-out on B, A reads the session: %v; want ErrNotFound", err)
		}
		must(t, "signing out twice", a.DeleteConsoleSession(ctx, "id1"))
		must(t, "touching a session gone", a.TouchConsoleSession(ctx, "id1", t1, t2))
		if _, err := b.GetConsoleSession(ctx, "id1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a touch brought a signed-out session back: %v", err)
		}
	})
}

// TestConsoleSessionStoreDown: a store that cannot be read gives an error, never a session.
func TestConsoleSessionStoreDown(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		must(t, "adding", s.AddConsoleSession(ctx, ConsoleSession{IDSHA256: "id1", TokenSHA256: "tok1"}))
		s.Close()
		got, err := s.GetConsoleSession(ctx, "id1")
		if err == nil || errors.Is(err, ErrNotFound) || got.TokenSHA256 != "" {
			t.Errorf("reading from a closed store = %+v, %v; want an error other than ErrNotFound", got, err)
		}
	})
}

// BenchmarkConsoleSession is what a signed-in console page view costs the store: one indexed
// read ("read"), and once a minute per session a touch ("touched": a read and a write).
func BenchmarkConsoleSession(b *testing.B) {
	for _, name := range []string{"sqlite/read", "sqlite/touched", "postgres/read", "postgres/touched"} {
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
			seen := time.Now()
			if err := s.AddConsoleSession(ctx, ConsoleSession{IDSHA256: "s0", TokenSHA256: "t0", LastSeen: seen}); err != nil {
				b.Fatal(err)
			}
			touch := strings.HasSuffix(name, "touched")
			b.ResetTimer()
			for range b.N {
				cs, err := s.GetConsoleSession(ctx, "s0")
				if err != nil {
					b.Fatal(err)
				}
				if touch {
					if err := s.TouchConsoleSession(ctx, "s0", cs.LastSeen, cs.LastSeen.Add(time.Minute)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
