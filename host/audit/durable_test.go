package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/store"
)

// Write returns only once the record is committed: while the store holds the append, Write
// waits; when it returns, the record is in the store.
func TestWriteReturnsOnceCommitted(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	g := &gate{st: st, entered: make(chan struct{}, 1), release: make(chan struct{})}
	sink := NewStoreSink(g, &StoreSinkOptions{Logger: quiet})
	defer sink.Close()
	done := make(chan error, 1)
	go func() { done <- sink.Write(ctx, ev(1)) }()
	<-g.entered
	select {
	case err := <-done:
		t.Fatalf("Write returned (%v) while its append was still held", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, err := st.VerifyAudit(ctx); n != 1 || err != nil {
		t.Fatalf("after Write returned, the store holds %d records (%v), want 1", n, err)
	}
}

// A call that began in a process that is gone, without a call record, is recorded as outcome
// unknown when a sink opens on the store; a call that finished, or one of a live process, is
// left alone; a second start adds nothing; the chain verifies.
func TestCrashedCallsRecordedUnknownAtOpen(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	host, _ := os.Hostname()
	host = strings.ReplaceAll(host, "/", "_")
	dead := fmt.Sprintf("%s/%d/1", host, 1<<30) // no such pid
	live := fmt.Sprintf("%s/%d/1", host, os.Getppid())
	begin := func(id, proc string) []byte {
		b, _ := json.Marshal(Event{Time: time.Now().UTC(), Kind: KindBegin, RequestID: id, Connector: "slack", Tool: "slack.post_message",
			Agent: "bot", Outcome: "begun", Process: proc})
		return b
	}
	finished, _ := json.Marshal(Event{Time: time.Now().UTC(), Kind: KindCall, RequestID: "finished", Outcome: "ok"})
	if _, err := st.AppendAudit(ctx, begin("interrupted", dead), begin("finished", dead), finished, begin("running", live)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second start finds nothing new
		sink := NewStoreSink(st, &StoreSinkOptions{Logger: quiet})
		if err := sink.Write(ctx, ev(1)); err != nil { // committed after the recovery
			t.Fatal(err)
		}
		sink.Close()
	}
	recs, err := st.QueryAudit(ctx, store.AuditFilter{Decision: OutcomeUnknown})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d records with outcome unknown, want 1 (the interrupted call only)", len(recs))
	}
	e, _ := DecodeRecord(recs[0])
	if e.RequestID != "interrupted" || e.Kind != KindCall || e.Code != CodeOutcomeUnknown || e.Agent != "bot" || e.Tool != "slack.post_message" ||
		!strings.Contains(e.Message, "unknown") {
		t.Fatalf("recovered record = %+v", e)
	}
	if _, err := st.VerifyAudit(ctx); err != nil {
		t.Fatalf("VerifyAudit after recovery: %v", err)
	}
}

// A call that sent no outbound request costs one record: its begin record, still queued when
// its call record is written, is left out. A call that made its begin record durable (before a
// request) keeps both, in order. Flush accounts for the record left out.
func TestNoIOCallRecordsOnlyItsOutcome(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	g := &gate{st: st, entered: make(chan struct{}, 8), release: make(chan struct{})}
	sink := NewStoreSink(g, &StoreSinkOptions{Logger: quiet, Window: -1})
	defer sink.Close()

	// Hold the store so that both calls' begin records stay queued behind a first write.
	first := make(chan error, 1)
	go func() { first <- sink.Write(ctx, ev(0)) }()
	<-g.entered

	noIO, withIO := ev(1), ev(2)
	if _, err := sink.Begin(ctx, noIO); err != nil {
		t.Fatal(err)
	}
	durable, err := sink.Begin(ctx, withIO)
	if err != nil {
		t.Fatal(err)
	}
	pinned := make(chan error, 1)
	go func() { pinned <- durable(ctx) }() // the call is about to send a request
	sink.begunMu.Lock()
	b := sink.begins[withIO.RequestID]
	sink.begunMu.Unlock()
	waitFor(t, func() bool { return b.state.Load() == begunPinned })
	wrote := make(chan error, 2)
	for _, e := range []Event{noIO, withIO} {
		e.Began = true
		go func() { wrote <- sink.Write(ctx, e) }()
	}
	waitFor(t, func() bool { return sink.Queued() == 4 }) // both begins, both call records
	close(g.release)
	for _, ch := range []chan error{first, pinned, wrote, wrote} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	recs, err := st.QueryAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		e, _ := DecodeRecord(r)
		got = append(got, e.Kind+" "+e.RequestID)
	}
	want := "[call r0 begin r2 call r1 call r2]"
	if alt := "[call r0 begin r2 call r2 call r1]"; fmt.Sprint(got) != want && fmt.Sprint(got) != alt {
		t.Fatalf("records = %v, want %s (no begin record for r1, which sent no request)", got, want)
	}
}

// waitFor polls cond until it holds, for at most 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
	}
}

// deferredGate commits at once but holds every batch's durability until released.
type deferredGate struct {
	st      *store.Store
	release chan struct{}
	synced  atomic.Int64 // records made durable
}

func (g *deferredGate) AppendAudit(ctx context.Context, data ...[]byte) ([]store.AuditRecord, error) {
	return g.st.AppendAudit(ctx, data...)
}

func (g *deferredGate) AppendAuditDeferred(ctx context.Context, data ...[]byte) ([]store.AuditRecord, func(context.Context) error, error) {
	recs, err := g.st.AppendAudit(ctx, data...)
	return recs, func(context.Context) error {
		<-g.release
		g.synced.Add(int64(len(data)))
		return nil
	}, err
}

// On a store whose commits are made durable after the fact (an SQLite file), Write returns only
// once its record is durable, not when it is committed; a request record queued before it is
// durable by then too.
func TestWriteWaitsForDurableNotCommit(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	g := &deferredGate{st: st, release: make(chan struct{})}
	sink := NewStoreSink(g, &StoreSinkOptions{Logger: quiet})
	defer sink.Close()
	req := ev(1)
	req.Kind = KindRequest
	if err := sink.Write(ctx, req); err != nil { // queued only
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sink.Write(ctx, ev(2)) }()
	waitFor(t, func() bool { n, _ := st.VerifyAudit(ctx); return n == 2 }) // both committed
	select {
	case err := <-done:
		t.Fatalf("Write returned (%v) once its record was committed, before it was durable", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := g.synced.Load(); n != 2 {
		t.Fatalf("when Write returned, %d records were durable, want 2 (the request's and the call's)", n)
	}
}

// A refused request inside a call that ran (egress denied it; the call's outcome is "denied")
// is not a flood the refusal limit may thin out: the call began, so its record is always
// written, and a restart finds no begin record without an outcome.
func TestBegunDeniedCallsAreNeverRateLimited(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sink := NewStoreSink(st, &StoreSinkOptions{RefusedPerSecond: 1, RefusedBurst: 1, Logger: quiet, Window: -1})
	const calls = 20
	for i := range calls {
		e := ev(i)
		durable, err := sink.Begin(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if err := durable(ctx); err != nil { // before the request egress refused
			t.Fatal(err)
		}
		e.Began, e.Outcome, e.Code = true, "denied", "egress_denied"
		if err := sink.Write(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := st.QueryAudit(ctx, store.AuditFilter{Kind: KindCall, Decision: "denied"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != calls {
		t.Fatalf("%d of %d begun, denied calls have a call record; the others would be reported as outcome unknown after a restart", len(recs), calls)
	}
}
