package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestIdempotency(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		now := c.Now()
		const ttl = 10 * time.Minute
		if _, _, err := s.BeginIdempotent(ctx, "slack", "k1", "h1", "owner", now, 0, 0); err == nil {
			t.Fatalf("BeginIdempotent accepted a zero TTL")
		}
		if _, _, err := s.BeginIdempotent(ctx, "slack", "", "h1", "owner", now, ttl, 0); err == nil {
			t.Fatalf("BeginIdempotent accepted an empty key")
		}

		rec, started, err := s.BeginIdempotent(ctx, "slack", "k1", "h1", "owner", now, ttl, 0)
		must(t, "Begin", err)
		if !started || rec.State != IdemRunning || !rec.Expires.Equal(now.Add(ttl)) {
			t.Fatalf("first Begin = %+v, %v; want started and running", rec, started)
		}
		// A retry while it runs sees it running; a different call with the same key sees the
		// original arguments hash, so the caller can refuse it.
		rec, started, err = s.BeginIdempotent(ctx, "slack", "k1", "OTHER", "owner", now.Add(time.Second), ttl, 0)
		must(t, "Begin again", err)
		if started || rec.State != IdemRunning || rec.ArgsSHA256 != "h1" {
			t.Fatalf("second Begin = %+v, %v; want not started, running, args h1", rec, started)
		}
		// Scopes are separate.
		if _, started, _ := s.BeginIdempotent(ctx, "github", "k1", "h1", "owner", now, ttl, 0); !started {
			t.Fatalf("a key in another scope was not started")
		}

		must(t, "Complete", s.CompleteIdempotent(ctx, "slack", "k1", []byte(`{"ok":true}`)))
		wantErr(t, "Complete twice", s.CompleteIdempotent(ctx, "slack", "k1", []byte(`{"ok":false}`)), ErrConflict)
		wantErr(t, "Abandon a done record", s.AbandonIdempotent(ctx, "slack", "k1"), ErrConflict)
		wantErr(t, "Complete missing", s.CompleteIdempotent(ctx, "slack", "nope", nil), ErrNotFound)
		wantErr(t, "Abandon missing", s.AbandonIdempotent(ctx, "slack", "nope"), ErrNotFound)

		rec, started, err = s.BeginIdempotent(ctx, "slack", "k1", "h1", "owner", now.Add(time.Minute), ttl, 0)
		must(t, "Begin after done", err)
		if started || rec.State != IdemDone || string(rec.Outcome) != `{"ok":true}` {
			t.Fatalf("Begin after done = %+v, %v; want the recorded outcome", rec, started)
		}
		got, err := s.GetIdempotent(ctx, "slack", "k1")
		must(t, "GetIdempotent", err)
		if got.State != IdemDone || !got.Created.Equal(now) {
			t.Fatalf("GetIdempotent = %+v", got)
		}

		// One nanosecond before expiry it still holds; at expiry it is replaced as if absent.
		if _, started, _ := s.BeginIdempotent(ctx, "slack", "k1", "h2", "owner", now.Add(ttl-1), ttl, 0); started {
			t.Fatalf("a record was replaced before it expired")
		}
		rec, started, err = s.BeginIdempotent(ctx, "slack", "k1", "h2", "owner", now.Add(ttl), ttl, 0)
		must(t, "Begin at expiry", err)
		if !started || rec.ArgsSHA256 != "h2" || rec.Outcome != nil {
			t.Fatalf("Begin at expiry = %+v, %v; want a fresh claim", rec, started)
		}
		got, _ = s.GetIdempotent(ctx, "slack", "k1")
		if got.State != IdemRunning || got.Outcome != nil || got.ArgsSHA256 != "h2" {
			t.Fatalf("replaced record = %+v; want running, no old outcome", got)
		}

		// Abandon releases the key for the next caller.
		must(t, "Abandon", s.AbandonIdempotent(ctx, "slack", "k1"))
		if _, started, _ := s.BeginIdempotent(ctx, "slack", "k1", "h3", "owner", now.Add(ttl), ttl, 0); !started {
			t.Fatalf("Begin after Abandon did not start")
		}

		// PurgeExpired deletes exactly the expired records.
		n, err := s.PurgeExpired(ctx, now.Add(ttl)) // the github record expires exactly then
		must(t, "PurgeExpired", err)
		if n != 1 {
			t.Fatalf("PurgeExpired removed %d records, want 1", n)
		}
		_, err = s.GetIdempotent(ctx, "github", "k1")
		wantErr(t, "purged record", err, ErrNotFound)
		if _, err := s.GetIdempotent(ctx, "slack", "k1"); err != nil {
			t.Fatalf("PurgeExpired removed a live record: %v", err)
		}
	})
}

// Twenty callers with the same key at once: exactly one runs the call.
func TestBeginIdempotentRace(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		for round := range 3 {
			now := c.Now().Add(time.Duration(round) * time.Hour) // each round after the last expired
			var (
				wg      sync.WaitGroup
				started atomic.Int32
			)
			for range 20 {
				wg.Go(func() {
					_, ok, err := s.BeginIdempotent(ctx, "slack", "same", "h", "owner", now, time.Minute, 0)
					if err != nil {
						t.Errorf("BeginIdempotent: %v", err)
					}
					if ok {
						started.Add(1)
					}
				})
			}
			wg.Wait()
			if n := started.Load(); n != 1 {
				t.Fatalf("round %d: %d callers started the same call, want 1", round, n)
			}
		}
	})
}
