package idempotency

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// forEachBackend runs fn on the in-memory backend and on real SQLite and PostgreSQL stores.
func forEachBackend(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Run("memory", func(t *testing.T) { fn(t, NewMemory()) })
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "state.db")
			if name == "postgres" {
				dsn = testenv.Postgres(t)
			}
			st, err := store.Open(context.Background(), dsn)
			if err != nil {
				t.Fatalf("store.Open: %v", err)
			}
			t.Cleanup(func() { st.Close() })
			fn(t, st)
		})
	}
}

// died leaves key running as a host killed in the middle of the call would: its lease, 1 ms
// long, lapses and nobody completes it; attempted says it had sent a request.
func died(t *testing.T, b Backend, key string, attempted bool) {
	t.Helper()
	ctx := context.Background()
	if _, started, err := b.BeginIdempotent(ctx, "slack.post/agent", key, "h", "dead-host", time.Now(), time.Hour, time.Millisecond); err != nil || !started {
		t.Fatalf("Begin = %v, %v", started, err)
	}
	if attempted {
		if err := b.MarkIdempotentAttempted(ctx, "slack.post/agent", key, "dead-host"); err != nil {
			t.Fatalf("MarkIdempotentAttempted: %v", err)
		}
	}
	time.Sleep(5 * time.Millisecond)
}

// TestLeaseAfterCrash: a key left running by a dead host is taken over at once, not after its
// 24 h time to live: run again when no request had left or when the call is safe to repeat,
// recorded as outcome unknown (and never run) otherwise.
func TestLeaseAfterCrash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		d := New(b, Config{Logger: quiet, Lease: time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		unknown := func() []byte { return []byte("unknown") }
		for _, c := range []struct {
			name            string
			attempted       bool
			unknown         func() []byte
			want            string
			runs, wantMarks int64
		}{
			{"nothing sent, not repeatable", false, unknown, "ran", 1, 1},
			{"sent, repeatable", true, nil, "ran", 1, 1},
			{"sent, not repeatable", true, unknown, "unknown", 0, 0},
		} {
			key := "k-" + c.name
			died(t, b, key, c.attempted)
			var runs atomic.Int64
			var marks int64
			fn := func(ctx context.Context) ([]byte, bool) {
				runs.Add(1)
				if err := Attempting(ctx); err != nil {
					t.Errorf("%s: Attempting = %v", c.name, err)
				} else {
					marks++
				}
				return []byte("ran"), true
			}
			out, replayed, err := d.DoOr(ctx, "slack.post/agent", key, "h", c.unknown, fn)
			if err != nil || replayed || string(out) != c.want || runs.Load() != c.runs || marks != c.wantMarks {
				t.Fatalf("%s: DoOr = %q, %v, %v after %d runs; want %q after %d", c.name, out, replayed, err, runs.Load(), c.want, c.runs)
			}
			// The key is settled: a repeat gets the same outcome and runs nothing.
			out, replayed, err = d.DoOr(ctx, "slack.post/agent", key, "h", c.unknown, fn)
			if err != nil || !replayed || string(out) != c.want || runs.Load() != c.runs {
				t.Fatalf("%s: repeat = %q, %v, %v after %d runs; want %q replayed", c.name, out, replayed, err, runs.Load(), c.want)
			}
		}
	})
}

// TestLeaseRenewedWhileRunning: a call that runs several leases long on a live host keeps its
// key (its lease is renewed), so a duplicate waits for its outcome instead of taking it over.
func TestLeaseRenewedWhileRunning(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		a := New(b, Config{Logger: quiet, Lease: 150 * time.Millisecond})
		other := New(b, Config{Logger: quiet, Lease: 150 * time.Millisecond, PollMin: 10 * time.Millisecond, PollMax: 50 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var runs atomic.Int64
		started, release := make(chan struct{}), make(chan struct{})
		first := make(chan error, 1)
		go func() {
			_, _, err := a.DoOr(ctx, "s", "k", "h", func() []byte { return []byte("unknown") }, func(ctx context.Context) ([]byte, bool) {
				runs.Add(1)
				err := Attempting(ctx)
				close(started)
				<-release
				return []byte("paid"), err == nil
			})
			first <- err
		}()
		<-started
		time.Sleep(600 * time.Millisecond) // four leases
		dup := make(chan string, 1)
		go func() {
			out, _, err := other.DoOr(ctx, "s", "k", "h", func() []byte { return []byte("unknown") }, func(context.Context) ([]byte, bool) {
				runs.Add(1)
				return []byte("again"), true
			})
			if err != nil {
				t.Errorf("duplicate: %v", err)
			}
			dup <- string(out)
		}()
		time.Sleep(300 * time.Millisecond)
		close(release)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if out := <-dup; out != "paid" || runs.Load() != 1 {
			t.Fatalf("duplicate = %q after %d runs; want the first call's outcome, run once", out, runs.Load())
		}
	})
}

// TestTakenOverRefusesToSend: a host that lost its lease (it stalled past it and another took
// the call over) is refused the attempt mark, so it sends nothing.
func TestTakenOverRefusesToSend(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		died(t, b, "k", false)
		if _, taken, err := b.TakeOverIdempotent(ctx, "slack.post/agent", "k", "new-host", time.Now(), time.Minute); err != nil || !taken {
			t.Fatalf("TakeOver = %v, %v", taken, err)
		}
		if _, taken, _ := b.TakeOverIdempotent(ctx, "slack.post/agent", "k", "third", time.Now(), time.Minute); taken {
			t.Fatal("a live lease was taken over")
		}
		if err := b.MarkIdempotentAttempted(ctx, "slack.post/agent", "k", "dead-host"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("the old owner's attempt mark = %v, want ErrConflict", err)
		}
		if err := b.RenewIdempotent(ctx, "slack.post/agent", "k", "dead-host", time.Now().Add(time.Minute)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("the old owner's renewal = %v, want ErrConflict", err)
		}
	})
}
