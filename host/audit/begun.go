package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/host/store"
)

// Kinds and outcomes of the records that make a crash visible in the trail.
const (
	// KindBegin records that a call is about to run its plugin: written, and committed, before
	// anything the call does can reach an upstream. Its call record (kind call, same request
	// ID) follows; after a crash, [StoreSink] writes one with outcome "unknown" instead.
	KindBegin = "begin"
	// KindRecovery records that a host looked for calls that began without an outcome, when
	// its StoreSink opened: Detail says from which record the next one must look again.
	KindRecovery = "recovery"
	// OutcomeUnknown is the outcome of a call whose host stopped (crash, kill, power loss)
	// while it ran: it may or may not have taken effect upstream.
	OutcomeUnknown = "unknown"
	// CodeOutcomeUnknown is the code of such a call record.
	CodeOutcomeUnknown = "outcome_unknown"
)

// Beginner is a [Sink] that records that a call begins before the plugin runs, so that a call
// interrupted by a crash is recorded as "unknown" when the host opens again. The host calls
// Begin when its sink implements it (StoreSink does), and calls durable before the call's
// first outbound request: a call that reaches no upstream changes nothing outside the host, so
// its begin record need not be on disk before it runs (and is, with its call record, when the
// call returns).
type Beginner interface {
	Begin(ctx context.Context, e Event) (durable func(context.Context) error, err error)
}

// process names this process in begin records: host name, pid and a random start nonce.
var process = func() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%d", strings.ReplaceAll(h, "/", "_"), os.Getpid(), time.Now().UnixNano())
}()

// Begin queues e as a begin record (kind begin, outcome "begun", naming this process); durable
// returns once it is committed, as Write does (nil when a fail-open sink dropped it).
//
// A begin record that durable was never called for (the call sent no outbound request) and that
// is still queued when the call's record is written is left out: the call record, committed in
// its stead, says all it would have, and a crash before that commit loses only a call that
// changed nothing outside the host and whose result nobody received. A no-I/O call so costs one
// record, not two.
func (s *StoreSink) Begin(ctx context.Context, e Event) (durable func(context.Context) error, err error) {
	e.Kind, e.Outcome, e.Process = KindBegin, "begun", process
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("audit: encoding the event: %w", err)
	}
	b := &begun{id: e.RequestID}
	it := item{data: data, done: make(chan error, 1), begun: b}
	if e.RequestID != "" {
		s.begunMu.Lock()
		s.begins[e.RequestID] = b
		s.begunMu.Unlock()
	}
	if queued, err := s.enqueue(ctx, it); !queued {
		s.forget(b)
		return nil, err
	}
	return func(ctx context.Context) error {
		if !b.state.CompareAndSwap(begunQueued, begunPinned) && b.state.Load() == begunElided {
			// Only the call's own record elides it, and that comes after every request.
			return fmt.Errorf("audit: %w: the begin record of call %s was left out after its call record was written", ErrStoreUnavailable, b.id)
		}
		return s.wait(ctx, it)
	}, nil
}

// begun is the state of a queued begin record: queued, pinned (durable was called: it must be
// committed), taken (in a batch) or elided (its call record came first).
type begun struct {
	id    string
	state atomic.Int32
}

const (
	begunQueued int32 = iota
	begunPinned
	begunTaken
	begunElided
)

// elide leaves out the queued begin record of the call whose record e is, if durable was never
// called for it and the loop has not taken it yet.
func (s *StoreSink) elide(e *Event) {
	if e.Kind != KindCall || e.RequestID == "" {
		return
	}
	s.begunMu.Lock()
	b := s.begins[e.RequestID]
	delete(s.begins, e.RequestID)
	s.begunMu.Unlock()
	if b != nil {
		b.state.CompareAndSwap(begunQueued, begunElided)
	}
}

// forget drops b from the begin records a call record may elide.
func (s *StoreSink) forget(b *begun) {
	s.begunMu.Lock()
	if s.begins[b.id] == b {
		delete(s.begins, b.id)
	}
	s.begunMu.Unlock()
}

// take reports whether the loop appends it: false for an elided begin record (which is then
// settled, as appended).
func (s *StoreSink) take(it item) bool {
	b := it.begun
	if b == nil {
		return true
	}
	if b.state.CompareAndSwap(begunQueued, begunTaken) || b.state.Load() == begunPinned {
		s.forget(b)
		return true
	}
	it.done <- nil
	s.settle(1)
	return false
}

// auditQuerier is what recovery needs of the store beyond appending; *store.Store has it.
type auditQuerier interface {
	QueryAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
}

// recoveryDetail is the Detail of a KindRecovery record.
type recoveryDetail struct {
	Host     string `json:"host"`      // the host name whose begin records were looked at
	From     int64  `json:"from"`      // the next recovery of this host looks at records after this one
	Unknown  int    `json:"unknown"`   // calls recorded as outcome unknown
	Running  int    `json:"running"`   // calls of live processes left open
	Scanned  int64  `json:"scanned"`   // begin records looked at
	LastSeen int64  `json:"last_seen"` // the last record looked at
}

// recover finds the calls that began on this host (its host name) in a process that is gone
// (crashed, killed) and have no call record, and appends one with outcome "unknown" for each,
// then a KindRecovery record. It runs when the sink opens, before any event of this process is
// appended. Begin records of live processes (another airlock on this host) are left open.
func (s *StoreSink) recover() (int, error) {
	q, ok := s.st.(auditQuerier)
	if !ok {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.opts.AppendTimeout)
	defer cancel()
	host := strings.SplitN(process, "/", 2)[0]

	// Where the last recovery of this host said to look from.
	var from int64
	err := scan(ctx, q, store.AuditFilter{Kind: KindRecovery}, 0, func(r store.AuditRecord, e Event) {
		var d recoveryDetail
		if json.Unmarshal(e.Detail, &d) == nil && d.Host == host {
			from = d.From
		}
	})
	if err != nil {
		return 0, err
	}
	type open struct {
		seq int64
		e   Event
	}
	var (
		opened  = map[string]open{}
		first   int64
		last    int64
		scanned int64
	)
	err = scan(ctx, q, store.AuditFilter{Kind: KindBegin}, from, func(r store.AuditRecord, e Event) {
		last = r.Seq
		if h, _, _ := strings.Cut(e.Process, "/"); h != host {
			return
		}
		scanned++
		if first == 0 {
			first = r.Seq
		}
		opened[e.RequestID] = open{r.Seq, e}
	})
	if err != nil || len(opened) == 0 {
		return 0, err
	}
	err = scan(ctx, q, store.AuditFilter{Kind: KindCall}, first, func(_ store.AuditRecord, e Event) {
		delete(opened, e.RequestID)
	})
	if err != nil {
		return 0, err
	}
	var (
		data    [][]byte
		running int
		next    = last
	)
	for _, o := range opened {
		if processAlive(o.e.Process) {
			running++
			next = min(next, o.seq-1)
			continue
		}
		e := o.e
		e.Time, e.Kind, e.Process = time.Now().UTC(), KindCall, ""
		e.Outcome, e.Code, e.Category = OutcomeUnknown, CodeOutcomeUnknown, "fatal"
		e.Message = "the host stopped (a crash, a kill or a power loss) while this call ran, so whether it took effect upstream is unknown; " +
			"check the upstream before repeating it"
		e.DurationMS = 0
		b, err := json.Marshal(e)
		if err != nil {
			return 0, err
		}
		data = append(data, b)
	}
	unknown := len(data)
	detail, _ := json.Marshal(recoveryDetail{Host: host, From: next, Unknown: unknown, Running: running, Scanned: scanned, LastSeen: last})
	b, _ := json.Marshal(Event{Time: time.Now().UTC(), Kind: KindRecovery, Outcome: "ok", Detail: detail})
	data = append(data, b)
	if _, err := s.st.AppendAudit(ctx, data...); err != nil {
		return 0, err
	}
	if unknown > 0 {
		s.log.Warn("audit: calls that were running when the host stopped are recorded with outcome unknown; see `airlock audit search --decision unknown`",
			"calls", unknown)
	}
	return unknown, nil
}

// scan calls fn with every record matching f after record after, in order.
func scan(ctx context.Context, q auditQuerier, f store.AuditFilter, after int64, fn func(store.AuditRecord, Event)) error {
	f.AfterSeq, f.Limit = after, 1000
	for {
		recs, err := q.QueryAudit(ctx, f)
		if err != nil {
			return err
		}
		for _, r := range recs {
			e, err := DecodeRecord(r)
			if err != nil {
				return err
			}
			fn(r, e)
		}
		if len(recs) < f.Limit {
			return nil
		}
		f.AfterSeq = recs[len(recs)-1].Seq
	}
}

// processAlive reports whether the process a begin record names (host/pid/nonce, on this host)
// may still be running: it is not this one, and its pid is alive.
func processAlive(p string) bool {
	if p == process {
		return true
	}
	parts := strings.Split(p, "/")
	if len(parts) != 3 {
		return false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = proc.Signal(syscall.Signal(0))
	return !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH)
}
