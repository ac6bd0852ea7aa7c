package jobqueue_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/internal/jobqueue"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// stores are the state stores the queue runs on: SQLite, and PostgreSQL (skipped where none is
// configured).
var stores = []struct {
	name string
	dsn  func(tb testing.TB) string
}{
	{"sqlite", func(tb testing.TB) string { return "sqlite:" + tb.TempDir() + "/state.db" }},
	{"postgres", testenv.Postgres},
}

// TestFairOrder queues 90 jobs of one subject, then 10 of another, on a queue with one worker:
// the second subject's jobs alternate with the first's instead of waiting behind all 90.
func TestFairOrder(t *testing.T) {
	for _, tc := range stores {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st, err := store.Open(ctx, tc.dsn(t))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			db, err := st.QueueDB(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var order []string
			done := make(chan struct{})
			q, err := jobqueue.New(jobqueue.Config{DB: db, Workers: 1, Run: func(_ context.Context, r jobqueue.Run) (any, error) {
				mu.Lock()
				defer mu.Unlock()
				if order = append(order, r.Call.Subject); len(order) == 100 {
					close(done)
				}
				return nil, nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				subject := "big"
				if i >= 90 {
					subject = "small"
				}
				if _, err := q.Enqueue(ctx, jobqueue.Call{Tool: "c.t", Subject: subject}, "c\x00"+subject); err != nil {
					t.Fatal(err)
				}
			}
			if err := q.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer q.Stop(ctx)
			<-done
			last := slices.Index(order, "small") // first
			for i, s := range order {
				if s == "small" {
					last = i
				}
			}
			if last > 25 {
				t.Errorf("the small subject's last job ran #%d of 100, want within the first 20 or so: %v", last, order)
			}
		})
	}
}

// BenchmarkQueue measures the queue's own cost per job on each store: enqueue (one insert,
// committed), and run (fetch, a no-op Run, completion, with 8 workers, all jobs queued first).
// RATIONALE.md quotes them.
func BenchmarkQueue(b *testing.B) {
	for _, tc := range stores {
		open := func(b *testing.B, run func(context.Context, jobqueue.Run) (any, error)) *jobqueue.Queue {
			ctx := context.Background()
			st, err := store.Open(ctx, tc.dsn(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			db, err := st.QueueDB(ctx)
			if err != nil {
				b.Fatal(err)
			}
			cfg := jobqueue.Config{DB: db, PollInterval: 20 * time.Millisecond, Run: run, Logger: slog.New(slog.DiscardHandler)}
			if run == nil {
				cfg.Workers = -1
			}
			q, err := jobqueue.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			return q
		}
		enqueue := func(b *testing.B, q *jobqueue.Queue, n int) {
			for i := 0; i < n; i++ {
				if _, err := q.Enqueue(context.Background(), jobqueue.Call{Tool: "c.t", Subject: "s"}, "c\x00s"); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(tc.name+"/enqueue", func(b *testing.B) {
			q := open(b, nil)
			b.ResetTimer()
			enqueue(b, q, b.N)
		})
		b.Run(tc.name+"/run", func(b *testing.B) {
			var ran atomic.Int64
			done := make(chan struct{})
			n := int64(b.N)
			q := open(b, func(context.Context, jobqueue.Run) (any, error) {
				if ran.Add(1) == n {
					close(done)
				}
				return nil, nil
			})
			enqueue(b, q, b.N)
			b.ResetTimer()
			if err := q.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			<-done
			b.StopTimer()
			q.Stop(context.Background())
		})
	}
}
