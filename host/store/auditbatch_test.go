package store

import (
	"context"
	"testing"
)

// A batch of any size lands as one chain, in order, whatever statements carry it: 85 records
// (more than one INSERT of each size), then 1, then 300, on both databases, deferred or not.
func TestAuditLargeBatchesChain(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		batch := func(from, n int) [][]byte {
			var out [][]byte
			for i := range n {
				out = append(out, event(c, from+i, "slack", "ok"))
			}
			return out
		}
		var all []AuditRecord
		recs, err := s.AppendAudit(ctx, batch(1, 85)...)
		must(t, "AppendAudit 85", err)
		all = append(all, recs...)
		recs, durable, err := s.AppendAuditDeferred(ctx, batch(86, 1)...)
		must(t, "AppendAuditDeferred 1", err)
		all = append(all, recs...)
		if durable != nil {
			must(t, "durable", durable(ctx))
		}
		recs, durable, err = s.AppendAuditDeferred(ctx, batch(87, 300)...)
		must(t, "AppendAuditDeferred 300", err)
		all = append(all, recs...)
		if durable != nil {
			must(t, "durable", durable(ctx))
		}
		if n, err := s.VerifyAudit(ctx); n != 386 || err != nil {
			t.Fatalf("VerifyAudit = %d, %v; want 386 records in a valid chain", n, err)
		}
		stored, err := s.QueryAudit(ctx, AuditFilter{Limit: 1000})
		must(t, "QueryAudit", err)
		if len(stored) != len(all) {
			t.Fatalf("%d records stored, %d returned by the appends", len(stored), len(all))
		}
		for i, r := range stored {
			if r.Seq != int64(i+1) || r.Hash != all[i].Hash || string(r.Data) != string(all[i].Data) {
				t.Fatalf("record %d stored as %+v, appended as %+v", i+1, r, all[i])
			}
		}
	})
}

// A deferred append on an SQLite file commits without its fsync, but only its own: the
// connection is back to synchronous=FULL for every other write, and the records are readable
// before durable is called (they are committed).
func TestAuditDeferredLeavesSynchronousFull(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := openT(t, dsn, nil)
		c := newClock()
		recs, durable, err := s.AppendAuditDeferred(ctx, event(c, 1, "slack", "ok"))
		must(t, "AppendAuditDeferred", err)
		if s.Driver() == "sqlite" && durable == nil {
			t.Fatal("an SQLite file's deferred append returned no durable func")
		}
		if n, err := s.VerifyAudit(ctx); n != 1 || err != nil || len(recs) != 1 {
			t.Fatalf("before durable: VerifyAudit = %d, %v; want the committed record", n, err)
		}
		if durable != nil {
			must(t, "durable", durable(ctx))
			must(t, "durable again", durable(ctx))
		}
		if s.Driver() != "sqlite" {
			return
		}
		var level int
		must(t, "PRAGMA synchronous", s.queryRow(ctx, `PRAGMA synchronous`).Scan(&level))
		if level != 2 {
			t.Fatalf("after a deferred append, PRAGMA synchronous = %d, want 2 (FULL)", level)
		}
	})
}

// The first append of a store whose context is already cancelled (a command ending, a request
// gone) fails with an error, not a crash, and the next append prepares its statements again.
func TestAuditFirstAppendWithCancelledContext(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		gone, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.AppendAudit(gone, event(c, 1, "slack", "ok")); err == nil {
			t.Fatal("AppendAudit with a cancelled context succeeded; want an error")
		}
		ctx := context.Background()
		_, err := s.AppendAudit(ctx, event(c, 2, "slack", "ok"))
		must(t, "AppendAudit after the cancelled one", err)
		if n, err := s.VerifyAudit(ctx); n != 1 || err != nil {
			t.Fatalf("VerifyAudit = %d, %v; want 1 record in a valid chain", n, err)
		}
	})
}
