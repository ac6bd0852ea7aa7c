package audit

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

func attachT(t *testing.T, st *store.Store) *Trail {
	t.Helper()
	key, _ := secret.NewMasterKey()
	ss, err := secret.OpenStore(context.Background(), &secret.MemoryBackend{}, key)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Attach(context.Background(), st, ss, &TrailOptions{Anchor: filepath.Join(t.TempDir(), "anchor.jsonl"), Replica: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// A sink with a Trail checkpoints as it goes and at Close, so a clean shutdown leaves every
// record covered by a signature, in the store and the anchor.
func TestStoreSinkCheckpoints(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	tr := attachT(t, st)
	sink := NewStoreSink(st, &StoreSinkOptions{Trail: tr, CheckpointEvery: 10, Batch: 4, Logger: quiet})
	for i := 1; i <= 25; i++ {
		if err := sink.Write(ctx, ev(i)); err != nil {
			t.Fatal(err)
		}
		if i == 12 {
			if err := sink.Flush(ctx); err != nil { // 12 appended: past CheckpointEvery
				t.Fatal(err)
			}
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	cps, err := st.AuditCheckpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) < 2 || cps[0].Seq < 10 || cps[len(cps)-1].Seq != 25 {
		t.Fatalf("checkpoints = %+v; want one after the first 10 or more records and one at Close covering record 25", cps)
	}
	rep, err := tr.Verify(ctx, tr.opts.Anchor)
	if err != nil || rep.Covered != 25 || rep.Anchored != len(cps) {
		t.Errorf("Verify = %+v, %v; want all 25 covered and every checkpoint in the anchor", rep, err)
	}
}

// A flood of refused events is rate-limited, and what is left out is counted in the trail:
// recorded refusals plus the dropped count add up to what was written.
func TestStoreSinkRateLimitsRefusals(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sink := NewStoreSink(st, &StoreSinkOptions{RefusedPerSecond: 1, RefusedBurst: 5, Logger: quiet})
	const flood = 200
	for i := 1; i <= flood; i++ {
		e := ev(i)
		e.Kind, e.Outcome, e.Realm = KindAuth, "denied", "mcp"
		if err := sink.Write(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		sink.Write(ctx, ev(1000+i)) // calls that ran are never limited
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := st.QueryAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var refused, ok, dropped int64
	for _, r := range recs {
		e, _ := DecodeRecord(r)
		switch {
		case e.Kind == KindDropped:
			dropped += e.Dropped
		case e.Kind == KindAuth:
			refused++
		case e.Outcome == "ok":
			ok++
		}
	}
	if ok != 3 || refused > 10 || refused+dropped != flood || sink.RefusedDropped() != dropped {
		t.Errorf("recorded %d ok, %d refused, %d counted as dropped (sink says %d); want 3 ok, at most ~5 refused, and refused+dropped = %d",
			ok, refused, dropped, sink.RefusedDropped(), flood)
	}
}

// BenchmarkAppend measures what the keyed chain adds per record to an append of a batch of
// 256 (the sink's batch): the same events with and without keys, on SQLite.
func BenchmarkAppend(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		name := "plain"
		if keyed {
			name = "keyed"
		}
		b.Run(name, func(b *testing.B) {
			st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "state.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if keyed {
				key, _ := secret.NewMasterKey()
				ss, _ := secret.OpenStore(context.Background(), &secret.MemoryBackend{}, key)
				if _, err := Attach(context.Background(), st, ss, nil); err != nil {
					b.Fatal(err)
				}
			}
			batch := make([][]byte, 256)
			for i := range batch {
				batch[i], _ = json.Marshal(ev(i))
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.AppendAudit(context.Background(), batch...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/record")
		})
	}
}
