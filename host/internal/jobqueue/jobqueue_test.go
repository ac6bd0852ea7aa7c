package jobqueue_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host/internal/jobqueue"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestFairOrder queues 90 jobs of one subject, then 10 of another, on a queue with one worker:
// the second subject's jobs alternate with the first's instead of waiting behind all 90.
func TestFairOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + t.TempDir() + "/state.db" }},
		{"postgres", func(t *testing.T) string { return testenv.Postgres(t) }},
	} {
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
