package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host/store"
)

// refusingStore is a real store that refuses, as PostgreSQL refuses a NUL byte in a text column,
// every append holding a record with the marker: an audit record the database cannot take for
// its content, by a way no test knows yet.
type refusingStore struct {
	*store.Store
	marker []byte
}

func (r refusingStore) refuses(data [][]byte) error {
	for _, d := range data {
		if bytes.Contains(d, r.marker) {
			return fmt.Errorf("store: appending to the audit log: %w: ERROR: invalid byte sequence for encoding \"UTF8\": 0x00 (SQLSTATE 22021)", store.ErrRecordRefused)
		}
	}
	return nil
}

func (r refusingStore) AppendAudit(ctx context.Context, data ...[]byte) ([]store.AuditRecord, error) {
	if err := r.refuses(data); err != nil {
		return nil, err
	}
	return r.Store.AppendAudit(ctx, data...)
}

func (r refusingStore) AppendAuditDeferred(ctx context.Context, data ...[]byte) ([]store.AuditRecord, func(context.Context) error, error) {
	if err := r.refuses(data); err != nil {
		return nil, nil, err
	}
	return r.Store.AppendAuditDeferred(ctx, data...)
}

// One record the database refuses for its content holds back neither the other callers'
// records written with it nor any later call: it is recorded as a stand-in that carries it byte
// for byte, its own call stays audited, and the chain verifies. Before, the sink retried the
// batch holding it forever and, failing closed, refused every call of every agent.
func TestRefusedRecordDoesNotStopTheSink(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sink := NewStoreSink(refusingStore{st, []byte("POISON")}, &StoreSinkOptions{Logger: quiet})
	t.Cleanup(func() { sink.Close() })

	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() {
			e := ev(i)
			if i == 7 {
				e.Tool = "POISON"
			}
			errs[i] = sink.Write(ctx, e)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if err := sink.Write(ctx, ev(100)); err != nil {
		t.Fatalf("a write after the refused record: %v, want the sink serving", err)
	}
	if err := sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := st.QueryAudit(ctx, store.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 21 {
		t.Fatalf("%d records, want 21 (20 writes, one as a stand-in, and the one after)", len(recs))
	}
	var stand []Event
	for _, r := range recs {
		e, err := DecodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == KindUnstorable {
			stand = append(stand, e)
		}
		if e.Tool == "POISON" {
			t.Errorf("the refused record was stored as it was: %+v", e)
		}
	}
	if len(stand) != 1 || stand[0].RequestID != "r7" || !strings.Contains(stand[0].Message, "SQLSTATE 22021") {
		t.Fatalf("stand-ins = %+v, want one for r7 saying why", stand)
	}
	_, b64, _ := strings.Cut(stand[0].Message, "in base64: ")
	orig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || !bytes.Contains(orig, []byte(`"tool":"POISON"`)) || !bytes.Contains(orig, []byte(`"request_id":"r7"`)) {
		t.Errorf("the stand-in does not carry the record: %q (%v)", orig, err)
	}
	if n, err := st.VerifyAudit(ctx); err != nil || n != 21 {
		t.Errorf("VerifyAudit = %d, %v; want 21 records intact", n, err)
	}
}

// A store that is down is not mistaken for a refused record: the sink fails closed as before,
// and no stand-in is written for a record that was never refused.
func TestUnavailableStoreStillFailsClosed(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	sink := NewStoreSink(st, &StoreSinkOptions{Logger: quiet})
	st.Close()
	err := sink.Write(ctx, ev(1))
	if !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("write to a closed store = %v, want ErrStoreUnavailable", err)
	}
	sink.Close()
}
