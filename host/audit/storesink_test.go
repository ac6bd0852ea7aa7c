package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/airlock-dev/airlock/host/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func ev(i int) Event {
	return Event{Time: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC), Kind: KindCall, RequestID: fmt.Sprintf("r%d", i),
		Agent: "bot", Connector: "slack", Tool: "post", Outcome: "ok"}
}

func TestStoreSinkConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sink := NewStoreSink(st, &StoreSinkOptions{Buffer: 16, Batch: 8, Logger: quiet})
	const writers, each = 20, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := sink.Write(ctx, ev(w*each+i)); err != nil {
					t.Errorf("Write: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if err := sink.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	n, err := st.VerifyAudit(ctx)
	if err != nil || n != writers*each {
		t.Fatalf("VerifyAudit = %d, %v; want %d records in a valid chain", n, err, writers*each)
	}
	recs, err := st.QueryAudit(ctx, store.AuditFilter{Connector: "slack", Limit: 10 * writers * each})
	if err != nil {
		t.Fatalf("QueryAudit: %v", err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		e, err := DecodeRecord(r)
		if err != nil {
			t.Fatalf("DecodeRecord: %v", err)
		}
		seen[e.RequestID] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct events stored, want %d", len(seen), writers*each)
	}
	if sink.Dropped() != 0 {
		t.Fatalf("Dropped() = %d, want 0", sink.Dropped())
	}
}

// Close appends what is still buffered.
func TestStoreSinkCloseFlushes(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sink := NewStoreSink(st, &StoreSinkOptions{Logger: quiet})
	for i := range 50 {
		if err := sink.Write(ctx, ev(i)); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, err := st.VerifyAudit(ctx); n != 50 || err != nil {
		t.Fatalf("after Close VerifyAudit = %d, %v; want 50", n, err)
	}
	if err := sink.Write(ctx, ev(99)); !errors.Is(err, ErrSinkClosed) {
		t.Fatalf("Write after Close = %v, want ErrSinkClosed", err)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStoreSinkFailsClosed(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sink := NewStoreSink(st, &StoreSinkOptions{Logger: quiet})
	st.Close() // the database goes away
	if err := sink.Write(ctx, ev(1)); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("first Write (its append fails) = %v, want ErrStoreUnavailable: it returns once the record is committed", err)
	}
	if err := sink.Flush(ctx); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Flush = %v, want ErrStoreUnavailable", err)
	}
	err := sink.Write(ctx, ev(2))
	if !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Write while the store fails = %v, want ErrStoreUnavailable (fail closed)", err)
	}
	if sink.Dropped() != 0 {
		t.Fatalf("a fail-closed sink dropped %d events silently", sink.Dropped())
	}
	if err := sink.Close(); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Close with an unwritten event = %v, want ErrStoreUnavailable", err)
	}
}

func TestStoreSinkFailOpen(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sink := NewStoreSink(st, &StoreSinkOptions{FailOpen: true, Logger: quiet})
	st.Close()
	if err := sink.Write(ctx, ev(1)); err != nil {
		t.Fatalf("Write = %v", err)
	}
	if got := sink.Dropped(); got != 1 {
		t.Fatalf("Dropped() = %d after a failed append, want 1", got)
	}
	if err := sink.Flush(ctx); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("Flush = %v, want ErrStoreUnavailable", err)
	}
	if err := sink.Write(ctx, ev(2)); err != nil {
		t.Fatalf("fail-open Write while the store fails = %v, want nil", err)
	}
	if got := sink.Dropped(); got != 2 {
		t.Fatalf("Dropped() = %d, want 2", got)
	}
	sink.Close()
	if got := sink.Dropped(); got != 3 {
		t.Fatalf("after Close Dropped() = %d, want 2 (the event that never reached the store counts)", got)
	}
}

// gate wraps a real store and holds appends until released.
type gate struct {
	st      *store.Store
	entered chan struct{}
	release chan struct{}
}

func (g *gate) AppendAudit(ctx context.Context, data ...[]byte) ([]store.AuditRecord, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return g.st.AppendAudit(ctx, data...)
}

// A full buffer makes Write wait no longer than its context; then it fails closed, or drops
// when the sink fails open.
func TestStoreSinkFullBuffer(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		t.Run(fmt.Sprintf("failOpen=%v", failOpen), func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t)
			g := &gate{st: st, entered: make(chan struct{}, 1), release: make(chan struct{})}
			sink := NewStoreSink(g, &StoreSinkOptions{Buffer: 1, Batch: 1, Queued: true, FailOpen: failOpen, Logger: quiet})
			if err := sink.Write(ctx, ev(1)); err != nil {
				t.Fatal(err)
			}
			<-g.entered // the loop holds event 1 in an append
			if err := sink.Write(ctx, ev(2)); err != nil {
				t.Fatal(err) // fills the buffer
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			err := sink.Write(cctx, ev(3))
			switch {
			case !failOpen && !errors.Is(err, context.Canceled):
				t.Fatalf("Write into a full buffer = %v, want the context's error", err)
			case !failOpen && !errors.Is(err, ErrStoreUnavailable):
				t.Fatalf("Write into a full buffer = %v, want ErrStoreUnavailable", err)
			case failOpen && (err != nil || sink.Dropped() != 1):
				t.Fatalf("fail-open Write into a full buffer = %v, dropped %d; want nil, 1", err, sink.Dropped())
			}
			close(g.release)
			if err := sink.Flush(ctx); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			if err := sink.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if n, err := st.VerifyAudit(ctx); n != 2 || err != nil {
				t.Fatalf("VerifyAudit = %d, %v; want 2", n, err)
			}
		})
	}
}

// Close does not hang on a writer waiting for room while the store is stuck.
func TestStoreSinkCloseWakesWriters(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	g := &gate{st: st, entered: make(chan struct{}, 1), release: make(chan struct{})}
	sink := NewStoreSink(g, &StoreSinkOptions{Buffer: 1, Batch: 1, Queued: true, Logger: quiet})
	sink.Write(ctx, ev(1))
	<-g.entered
	sink.Write(ctx, ev(2))
	blocked := make(chan error)
	go func() { blocked <- sink.Write(ctx, ev(3)) }() // waits for room, with no deadline
	closed := make(chan error)
	go func() { closed <- sink.Close() }()
	if err := <-blocked; !errors.Is(err, ErrSinkClosed) && err != nil {
		t.Fatalf("blocked Write = %v, want ErrSinkClosed (or nil if it got in first)", err)
	}
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// memAppender is an in-memory chain whose failure the test switches.
type memAppender struct {
	mu   sync.Mutex
	fail bool
	data [][]byte
}

func (m *memAppender) AppendAudit(_ context.Context, data ...[]byte) ([]store.AuditRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errors.New("database is down")
	}
	m.data = append(m.data, data...)
	return nil, nil
}

func (m *memAppender) set(fail bool) {
	m.mu.Lock()
	m.fail = fail
	m.mu.Unlock()
}

// The sink retries the failed batch with backoff and recovers when the store does, without
// losing the event it held.
func TestStoreSinkRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m := &memAppender{fail: true}
		sink := NewStoreSink(m, &StoreSinkOptions{Queued: true, Logger: quiet})
		defer sink.Close()
		if err := sink.Write(ctx, ev(1)); err != nil {
			t.Fatal(err)
		}
		if err := sink.Flush(ctx); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("Flush = %v, want ErrStoreUnavailable", err)
		}
		if err := sink.Write(ctx, ev(2)); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("Write while failing = %v, want ErrStoreUnavailable", err)
		}
		time.Sleep(time.Minute) // several retries, all failing
		synctest.Wait()
		m.set(false)
		time.Sleep(10 * time.Second) // past the longest backoff
		synctest.Wait()
		if err := sink.Write(ctx, ev(3)); err != nil {
			t.Fatalf("Write after recovery = %v", err)
		}
		if err := sink.Flush(ctx); err != nil {
			t.Fatalf("Flush after recovery = %v", err)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if len(m.data) != 2 {
			t.Fatalf("store holds %d events, want 2 (the held one, then the new one)", len(m.data))
		}
		for i, want := range []string{"r1", "r3"} {
			var e Event
			if err := json.Unmarshal(m.data[i], &e); err != nil || e.RequestID != want {
				t.Fatalf("event %d = %s, want request %s", i, m.data[i], want)
			}
		}
	})
}
