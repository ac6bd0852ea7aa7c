package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func event(c *clock, i int, connector, outcome string) []byte {
	return fmt.Appendf(nil, `{"time":%q,"kind":"call","request_id":"r%d","agent":"bot","subject":"acme","connector":%q,"tool":"post","outcome":%q}`,
		c.Now().Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), i, connector, outcome)
}

// appendN appends n events, one per call, alternating connectors and outcomes.
func appendN(t *testing.T, s *Store, c *clock, n int) []AuditRecord {
	t.Helper()
	var out []AuditRecord
	for i := 1; i <= n; i++ {
		conn, outcome := "slack", "ok"
		if i%2 == 0 {
			conn, outcome = "github", "denied"
		}
		recs, err := s.AppendAudit(context.Background(), event(c, i, conn, outcome))
		must(t, "AppendAudit", err)
		out = append(out, recs...)
	}
	return out
}

func TestAuditAppendAndChain(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		if n, err := s.VerifyAudit(ctx); n != 0 || err != nil {
			t.Fatalf("VerifyAudit of an empty log = %d, %v", n, err)
		}
		if seq, hash, err := s.AuditHead(ctx); seq != 0 || hash != "" || err != nil {
			t.Fatalf("AuditHead of an empty log = %d, %q, %v", seq, hash, err)
		}
		for _, bad := range []string{`[1]`, `null`, `"x"`, `{"connector":5}`, `{`} {
			if _, err := s.AppendAudit(ctx, []byte(bad)); err == nil {
				t.Errorf("AppendAudit(%s) succeeded, want an error", bad)
			}
		}

		recs := appendN(t, s, c, 3)
		batch, err := s.AppendAudit(ctx, event(c, 4, "slack", "error"), []byte(`{"kind":"request","note":"no time"}`))
		must(t, "AppendAudit batch", err)
		recs = append(recs, batch...)
		prev := ""
		for i, r := range recs {
			if r.Seq != int64(i+1) || r.PrevHash != prev || r.Hash != AuditHash(prev, r.Seq, r.Data) {
				t.Fatalf("record %d = %+v, not chained to %q", i+1, r, prev)
			}
			prev = r.Hash
		}
		if !recs[0].Time.Equal(c.Now().Add(time.Second)) {
			t.Errorf("record 1 time = %v, want the event's time", recs[0].Time)
		}
		if !recs[4].Time.Equal(c.Now()) {
			t.Errorf("record without a time = %v, want the store clock %v", recs[4].Time, c.Now())
		}
		if n, err := s.VerifyAudit(ctx); n != 5 || err != nil {
			t.Fatalf("VerifyAudit = %d, %v; want 5, nil", n, err)
		}
		seq, hash, err := s.AuditHead(ctx)
		if seq != 5 || hash != recs[4].Hash || err != nil {
			t.Fatalf("AuditHead = %d, %q, %v", seq, hash, err)
		}
	})
}

func TestAuditHashFormula(t *testing.T) {
	t.Parallel()
	// printf 'prev\n7\n{"a":1}' | sha256sum
	const want = "400c3f8a59e91e44828915990bd8d1710704412356d4638af7ae773d6282aab7"
	if got := AuditHash("prev", 7, []byte(`{"a":1}`)); got != want {
		t.Fatalf("AuditHash = %s, want %s", got, want)
	}
}

// Attack (hostile agent, red team s9): an agent chooses the tool name of its call, and the
// connector name of a call its profile refuses, and both reach the audit table's columns. A NUL
// byte (PostgreSQL refuses it in text) or a connector name past a B-tree entry's 2704 bytes
// failed the INSERT, and with it the batch of other callers' records it was appended with. Now
// the batch appends, the data keeps every value as it was, the chain verifies, and the columns
// still find the record.
func TestAuditHostileColumnValues(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		var sb strings.Builder // 6,400 bytes that do not compress below 2,704
		for i := range 100 {
			sum := sha256.Sum256([]byte{byte(i)})
			sb.WriteString(hex.EncodeToString(sum[:]))
		}
		long := sb.String()
		hostile := [][]byte{
			[]byte(`{"kind":"call","connector":"x\u0000y","tool":"x\u0000y.z","agent":"evil","subject":"acme","outcome":"error","session":"s\u0000"}`),
			[]byte(`{"kind":"call","connector":"` + long + `","tool":"` + long + `.x","agent":"evil","subject":"acme","outcome":"denied"}`),
			[]byte(`{"kind":"call","connector":"\ud800\u00e9` + long + `","tool":"t","agent":"evil","subject":"acme","outcome":"denied"}`),
		}
		batch := [][]byte{event(c, 1, "slack", "ok"), hostile[0], hostile[1], hostile[2], event(c, 2, "slack", "ok")}
		recs, err := s.AppendAudit(ctx, batch...)
		if err != nil {
			t.Fatalf("a batch with hostile names: %v; every other record in it was lost", err)
		}
		for i, r := range recs {
			if string(r.Data) != string(batch[i]) {
				t.Errorf("record %d data = %s, want it as written", i+1, r.Data)
			}
		}
		if n, err := s.VerifyAudit(ctx); n != int64(len(batch)) || err != nil {
			t.Fatalf("VerifyAudit = %d, %v; want %d, nil", n, err, len(batch))
		}
		got, err := s.QueryAudit(ctx, AuditFilter{Agent: "evil"})
		if err != nil || len(got) != len(hostile) {
			t.Fatalf("QueryAudit(agent evil) = %d records, %v; want %d", len(got), err, len(hostile))
		}
		if got, err := s.QueryAudit(ctx, AuditFilter{Connector: "slack"}); err != nil || len(got) != 2 {
			t.Errorf("QueryAudit(connector slack) = %d records, %v; want the batch's 2", len(got), err)
		}
	})
}

func TestQueryAudit(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		appendN(t, s, c, 10) // odd seq: slack/ok, even: github/denied; time = base + seq seconds
		_, err := s.AppendAudit(ctx, []byte(`{"kind":"request","connector":"slack","tool":"post","agent":"other","subject":"globex","outcome":"ok"}`))
		must(t, "append request", err)
		base := c.Now()
		seqs := func(f AuditFilter) []int64 {
			t.Helper()
			recs, err := s.QueryAudit(ctx, f)
			must(t, "QueryAudit", err)
			var out []int64
			for _, r := range recs {
				out = append(out, r.Seq)
			}
			return out
		}
		for _, tc := range []struct {
			name string
			f    AuditFilter
			want []int64
		}{
			{"all", AuditFilter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
			{"connector", AuditFilter{Connector: "github"}, []int64{2, 4, 6, 8, 10}},
			{"decision", AuditFilter{Decision: "denied"}, []int64{2, 4, 6, 8, 10}},
			{"kind", AuditFilter{Kind: "request"}, []int64{11}},
			{"agent", AuditFilter{Agent: "other"}, []int64{11}},
			{"subject", AuditFilter{Subject: "acme", Connector: "slack"}, []int64{1, 3, 5, 7, 9}},
			{"tool none", AuditFilter{Tool: "delete"}, nil},
			{"since until", AuditFilter{Since: base.Add(3 * time.Second), Until: base.Add(6 * time.Second)}, []int64{3, 4, 5}},
			{"after seq limit", AuditFilter{AfterSeq: 4, Limit: 3}, []int64{5, 6, 7}},
			{"combined", AuditFilter{Connector: "slack", Decision: "ok", Kind: "call", AfterSeq: 5}, []int64{7, 9}},
			// A value that is SQL is only ever a value.
			{"injection", AuditFilter{Connector: "slack' OR '1'='1"}, nil},
		} {
			if got := seqs(tc.f); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("%s: QueryAudit = %v, want %v", tc.name, got, tc.want)
			}
		}
	})
}

// Tampering with the stored log, as someone with database access would, is detected at the
// first bad record.
func TestVerifyAuditDetectsTampering(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, s *Store)
		wantSeq int64
	}{
		{"changed field", func(t *testing.T, s *Store) {
			var data []byte
			must(t, "read", s.queryRow(context.Background(), `SELECT data FROM audit WHERE seq = 5`).Scan(&data))
			raw(t, s, `UPDATE audit SET data = ? WHERE seq = 5`, []byte(strings.Replace(string(data), `"outcome":"ok"`, `"outcome":"denied"`, 1)))
		}, 5},
		{"changed field with its hash recomputed", func(t *testing.T, s *Store) {
			var (
				data []byte
				prev string
			)
			must(t, "read", s.queryRow(context.Background(), `SELECT data, prev_hash FROM audit WHERE seq = 5`).Scan(&data, &prev))
			data = []byte(strings.Replace(string(data), `"outcome":"ok"`, `"outcome":"error"`, 1))
			// A thorough forger fixes the hash and the search column too; the next record's
			// prev_hash still gives it away.
			raw(t, s, `UPDATE audit SET data = ?, hash = ?, outcome = 'error' WHERE seq = 5`, data, AuditHash(prev, 5, data))
		}, 6},
		{"changed search column", func(t *testing.T, s *Store) {
			raw(t, s, `UPDATE audit SET connector = 'hidden' WHERE seq = 4`)
		}, 4},
		{"changed time column", func(t *testing.T, s *Store) {
			raw(t, s, `UPDATE audit SET ts = ts + 1000000000000 WHERE seq = 3`)
		}, 3},
		{"deleted record", func(t *testing.T, s *Store) {
			raw(t, s, `DELETE FROM audit WHERE seq = 4`)
		}, 4},
		{"deleted first records", func(t *testing.T, s *Store) {
			raw(t, s, `DELETE FROM audit WHERE seq <= 2`)
		}, 1},
		{"deleted and renumbered", func(t *testing.T, s *Store) {
			raw(t, s, `DELETE FROM audit WHERE seq = 4`)
			raw(t, s, `UPDATE audit SET seq = seq - 1 WHERE seq > 4`) // close the gap
		}, 4},
		{"swapped pair", func(t *testing.T, s *Store) {
			raw(t, s, `UPDATE audit SET seq = -1 WHERE seq = 6`)
			raw(t, s, `UPDATE audit SET seq = 6 WHERE seq = 7`)
			raw(t, s, `UPDATE audit SET seq = 7 WHERE seq = -1`)
		}, 6},
		{"swapped data", func(t *testing.T, s *Store) {
			var d6, d7 []byte
			must(t, "read", s.queryRow(context.Background(), `SELECT data FROM audit WHERE seq = 6`).Scan(&d6))
			must(t, "read", s.queryRow(context.Background(), `SELECT data FROM audit WHERE seq = 7`).Scan(&d7))
			raw(t, s, `UPDATE audit SET data = ? WHERE seq = 6`, d7)
			raw(t, s, `UPDATE audit SET data = ? WHERE seq = 7`, d6)
		}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			forEachStore(t, func(t *testing.T, s *Store, c *clock) {
				appendN(t, s, c, 10)
				tc.tamper(t, s)
				n, err := s.VerifyAudit(context.Background())
				var br *AuditBreak
				if !errors.As(err, &br) {
					t.Fatalf("VerifyAudit after tampering = %d, %v; want an *AuditBreak", n, err)
				}
				if br.Seq != tc.wantSeq || n != tc.wantSeq-1 {
					t.Fatalf("VerifyAudit = %d, %v; want the break at record %d after %d good ones", n, br, tc.wantSeq, tc.wantSeq-1)
				}
				if br.Reason == "" {
					t.Fatalf("AuditBreak has no reason")
				}
			})
		})
	}
}

// Two handles on one database (two replicas, or a CLI next to a server) appending at once
// still write one valid chain with no lost or duplicated record.
func TestAuditConcurrentAppenders(t *testing.T) {
	t.Parallel()
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		c := newClock()
		handles := []*Store{openT(t, dsn, nil), openT(t, dsn, nil)}
		const writers, each = 8, 15
		var wg sync.WaitGroup
		for w := range writers {
			s := handles[w%2]
			wg.Go(func() {
				for i := range each {
					data := [][]byte{event(c, w*1000+i, "slack", "ok")}
					if i%5 == 0 { // some batches
						data = append(data, event(c, w*1000+i, "github", "ok"))
					}
					if _, err := s.AppendAudit(ctx, data...); err != nil {
						t.Errorf("AppendAudit: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		want := int64(writers * (each + each/5))
		n, err := handles[0].VerifyAudit(ctx)
		if err != nil || n != want {
			t.Fatalf("VerifyAudit = %d, %v; want %d records in one valid chain", n, err, want)
		}
		recs, err := handles[1].QueryAudit(ctx, AuditFilter{Limit: int(want) + 10})
		must(t, "QueryAudit", err)
		if int64(len(recs)) != want {
			t.Fatalf("QueryAudit returned %d records, want %d", len(recs), want)
		}
	})
}

// VerifyAudit pages through a long log.
func TestVerifyAuditLong(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		var batch [][]byte
		for i := range 3*verifyPage + 7 {
			batch = append(batch, event(c, i, "slack", "ok"))
		}
		_, err := s.AppendAudit(ctx, batch...)
		must(t, "AppendAudit", err)
		if n, err := s.VerifyAudit(ctx); err != nil || n != int64(len(batch)) {
			t.Fatalf("VerifyAudit = %d, %v; want %d", n, err, len(batch))
		}
		raw(t, s, `UPDATE audit SET data = ? WHERE seq = ?`, event(c, 0, "evil", "ok"), 2*verifyPage+3)
		_, err = s.VerifyAudit(ctx)
		var br *AuditBreak
		if !errors.As(err, &br) || br.Seq != 2*verifyPage+3 {
			t.Fatalf("VerifyAudit = %v, want a break at %d", err, 2*verifyPage+3)
		}
	})
}
