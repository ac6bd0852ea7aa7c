package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// Several replicas appending to one PostgreSQL store keep one chain that verifies, with each
// replica's checkpoints, whatever the interleaving.
func TestReplicasShareOneChainPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	key, _ := secret.NewMasterKey()
	backend := &secret.MemoryBackend{} // the secret store's keyring is shared, as through the state store
	var trails []*Trail
	for i := range 3 {
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ss, err := secret.OpenStore(ctx, backend, key)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := Attach(ctx, st, ss, &TrailOptions{Replica: fmt.Sprintf("replica-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		trails = append(trails, tr)
	}
	var wg sync.WaitGroup
	for i, tr := range trails {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sink := NewStoreSink(tr.st, &StoreSinkOptions{Trail: tr, CheckpointEvery: 20, Batch: 8, Logger: quiet})
			for j := range 100 {
				e := ev(j)
				e.Agent = fmt.Sprintf("replica-%d", i)
				if err := sink.Write(ctx, e); err != nil {
					t.Error(err)
				}
			}
			if err := sink.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, tr := range trails {
		rep, err := tr.Verify(ctx, "")
		if err != nil || rep.Records != 300 || rep.Covered != 300 {
			t.Errorf("replica verify = %+v, %v; want 300 records, all covered", rep, err)
		}
	}
	cps, _ := trails[0].st.AuditCheckpoints(ctx)
	by := map[string]int{}
	for _, c := range cps {
		by[c.Replica]++
	}
	if len(by) != 3 {
		t.Errorf("checkpoints by replica = %v, want each replica to have signed some", by)
	}
}

// BenchmarkReplicasPostgres measures appends to one chain serialised in PostgreSQL (an advisory
// lock per append transaction) by 1, 2 and 4 replicas at once, each appending batches the way a
// StoreSink does (batch 1: every call on its own, the worst case; 64: a busy replica).
func BenchmarkReplicasPostgres(b *testing.B) {
	dsn := testenv.Postgres(b)
	ctx := context.Background()
	key, _ := secret.NewMasterKey()
	backend := &secret.MemoryBackend{}
	var stores []*store.Store
	for range 4 {
		st, err := store.Open(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		ss, _ := secret.OpenStore(ctx, backend, key)
		if _, err := Attach(ctx, st, ss, nil); err != nil {
			b.Fatal(err)
		}
		stores = append(stores, st)
	}
	for _, batch := range []int{1, 64} {
		for _, replicas := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("batch=%d/replicas=%d", batch, replicas), func(b *testing.B) {
				data := make([][]byte, batch)
				for i := range data {
					data[i], _ = json.Marshal(ev(i))
				}
				start := time.Now()
				var n int64
				var mu sync.Mutex
				var wg sync.WaitGroup
				per := max(1, b.N/replicas)
				for r := range replicas {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range per {
							if _, err := stores[r].AppendAudit(ctx, data...); err != nil {
								b.Error(err)
								return
							}
						}
						mu.Lock()
						n += int64(per * batch)
						mu.Unlock()
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
			})
		}
	}
}
