package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"golang.org/x/time/rate"

	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Errors of a [StoreSink], for callers that branch on them.
var (
	// ErrStoreUnavailable reports that the audit store is failing: a fail-closed StoreSink
	// refuses events (and so the calls that produce them) until it recovers.
	ErrStoreUnavailable = errors.New("the audit store is unavailable")
	// ErrSinkClosed reports a Write or Flush after Close.
	ErrSinkClosed = errors.New("the audit sink is closed")
)

// AuditAppender appends JSON events to a hash-chained audit log; *store.Store implements it.
type AuditAppender interface {
	AppendAudit(ctx context.Context, data ...[]byte) ([]store.AuditRecord, error)
}

// StoreSinkOptions tunes [NewStoreSink]. A nil *StoreSinkOptions, or a zero field, means the
// documented default.
type StoreSinkOptions struct {
	// Buffer is how many events may wait to be appended. When it is full, Write waits, for as
	// long as its context allows. Default: 1024.
	Buffer int
	// Batch is the most events appended in one transaction. Default: 256.
	Batch int
	// FailOpen makes Write drop events (counted by [StoreSink.Dropped], logged at error level)
	// instead of returning an error while the store is failing or the buffer stays full. The
	// default, false, fails closed: the host refuses calls it cannot audit.
	FailOpen bool
	// Queued makes Write return as soon as the event is queued, before it is committed: faster
	// by nothing measurable under concurrency (group commit), and a crash loses what was queued.
	// For benchmarks and embedders that accept that; airlock itself never sets it.
	Queued bool
	// Window is the longest a batch waits, yielding to the goroutines ready to run (callers
	// about to write), before it is committed, so that on a busy host a batch carries more calls
	// and the store makes fewer commits. A host with nothing else to run commits at once.
	// Default: 300µs; negative: no wait.
	Window time.Duration
	// AppendTimeout bounds one append. Default: 10s.
	AppendTimeout time.Duration
	// Logger receives the sink's own failures and recoveries. Default: slog.Default().
	Logger *slog.Logger

	// Trail, when set, gets a signed checkpoint of the log after every CheckpointEvery records
	// this sink appends, every CheckpointInterval while records were appended, and at Close.
	// Checkpoints are written by the sink's goroutine, never on a call's path.
	Trail *Trail
	// CheckpointEvery is the most records appended between two checkpoints. Default: 1000.
	CheckpointEvery int
	// CheckpointInterval is the longest time between an append and the checkpoint covering
	// it. Default: 10s.
	CheckpointInterval time.Duration

	// RefusedPerSecond bounds how many refused events (outcome "denied": calls that were not
	// granted or not allowed, refused authentications; and calls to tools that do not exist,
	// such as those of a revoked connector; never a call whose plugin ran) are recorded per
	// second, with bursts of RefusedBurst, so a flood cannot fill the disk. What is left out is counted, and the
	// count recorded as a KindDropped event once per CheckpointInterval. Defaults: 50 and 500.
	RefusedPerSecond float64
	RefusedBurst     int
}

// StoreSink is a [Sink] that keeps events in a hash-chained store (see package store). Write
// encodes the event and hands it to one background goroutine through a bounded buffer; that
// goroutine appends what has accumulated in batches, in order, one transaction per batch, and
// Write returns once its event's transaction has committed and is durable (PostgreSQL commits
// are; on an SQLite file the sink fsyncs the write-ahead log after the commit, from a second
// goroutine, outside the write lock — the fsync synchronous=FULL would make — so the next batch
// commits meanwhile: see [store.Store.AppendAuditDeferred]). This is group commit: while one
// batch commits, the events written meanwhile gather into the next, so concurrent calls share
// one transaction and fsync; an idle sink commits a lone event at once (StoreSinkOptions.Window
// only yields to goroutines ready to run).
//
// When an append fails, the writers waiting for that batch get the error, the sink marks the
// store failing and retries the batch with backoff (100ms doubling to 5s). While it is failing,
// Write returns an error wrapping [ErrStoreUnavailable] (fail closed), or, with FailOpen, drops
// the event and logs. The first successful append clears the state.
//
// A StoreSink is safe for concurrent use. Close flushes what is buffered.
type StoreSink struct {
	st   AuditAppender
	opts StoreSinkOptions
	log  *slog.Logger

	ch       chan item
	quit     chan struct{} // closed by Close: wakes writers waiting for room
	quitOnce sync.Once
	stop     chan struct{} // closed by Close once no writer can send: the loop drains and ends
	done     chan struct{} // closed when the loop has ended

	mu     sync.RWMutex // writers hold it shared while sending; Close exclusively
	closed bool

	enqueued atomic.Int64
	dropped  atomic.Int64

	refused        *rate.Limiter
	refusedDropped atomic.Int64 // refused events left out by the limit, not yet reported
	refusedTotal   atomic.Int64

	begunMu sync.Mutex
	begins  map[string]*begun // queued begin records by request ID, until taken or elided

	state    sync.Mutex
	settled  int64         // events the loop has finished with (appended or given up on)
	failErr  error         // non-nil while the store is failing
	changed  chan struct{} // closed and replaced whenever settled or failErr changes
	closeErr error
}

// NewStoreSink returns a sink appending to st, with opts (nil for the defaults), and starts
// its background goroutine; Close stops it.
func NewStoreSink(st AuditAppender, opts *StoreSinkOptions) *StoreSink {
	var o StoreSinkOptions
	if opts != nil {
		o = *opts
	}
	if o.Buffer <= 0 {
		o.Buffer = 1024
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.AppendTimeout <= 0 {
		o.AppendTimeout = 10 * time.Second
	}
	if o.Window == 0 {
		o.Window = 300 * time.Microsecond
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.Default()
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 1000
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 10 * time.Second
	}
	if o.RefusedPerSecond <= 0 {
		o.RefusedPerSecond = 50
	}
	if o.RefusedBurst <= 0 {
		o.RefusedBurst = 500
	}
	s := &StoreSink{
		st: st, opts: o, log: lg,
		ch:      make(chan item, o.Buffer),
		quit:    make(chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		begins:  map[string]*begun{},
		refused: rate.NewLimiter(rate.Limit(o.RefusedPerSecond), o.RefusedBurst),
	}
	if o.Trail != nil {
		o.Trail.sink = s
	}
	go s.run()
	return s
}

// Write appends e and returns once the transaction holding it has committed (see
// [StoreSink]), except for an event of kind request, which is only queued: it is committed no
// later than the next event Write waits for (the host writes a call's record after those of its
// requests). With StoreSinkOptions.Queued, every event is only queued.
//
// It returns an error wrapping [ErrStoreUnavailable] when the store is failing, the append of
// e's batch failed, or ctx ends before e is queued or committed (e stays queued: it is appended
// when the store recovers), unless the sink fails open (then the event is dropped and counted);
// and [ErrSinkClosed] after Close.
func (s *StoreSink) Write(ctx context.Context, e Event) error {
	// A call that began (its plugin ran: egress refused one of its requests) always gets its
	// record, or the next start would call its begin record's outcome unknown.
	if (e.Outcome == "denied" || e.Code == abi.CodeUnknownTool) && !e.Began && !s.refused.Allow() {
		s.refusedDropped.Add(1)
		s.refusedTotal.Add(1)
		return nil
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: encoding the event: %w", err)
	}
	s.elide(&e)
	it := item{data: data}
	if !s.opts.Queued && e.Kind != KindRequest {
		it.done = make(chan error, 1)
	}
	if queued, err := s.enqueue(ctx, it); !queued || it.done == nil {
		return err
	}
	return s.wait(ctx, it)
}

// wait returns once it's batch is committed, or why it was not.
func (s *StoreSink) wait(ctx context.Context, it item) error {
	select {
	case err := <-it.done:
		if err != nil {
			return s.refuse(fmt.Errorf("audit: %w: the audit record could not be committed: %w", ErrStoreUnavailable, err))
		}
		return nil
	case <-ctx.Done():
		return s.refuse(fmt.Errorf("audit: %w: the audit record was not committed before the call's deadline: %w", ErrStoreUnavailable, ctx.Err()))
	}
}

// item is one event on its way to the store; done, when set, gets the outcome of the append
// of its batch; begun is set on a begin record.
type item struct {
	data  []byte
	done  chan error
	begun *begun
}

// enqueue puts it in the buffer, or returns why not (nil when a fail-open sink dropped it).
func (s *StoreSink) enqueue(ctx context.Context, it item) (queued bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false, fmt.Errorf("audit: %w", ErrSinkClosed)
	}
	if err := s.failing(); err != nil {
		return false, s.refuse(fmt.Errorf("audit: %w, so this call is refused rather than run unaudited; check the state database: %w", ErrStoreUnavailable, err))
	}
	select {
	case s.ch <- it:
		s.enqueued.Add(1)
		return true, nil
	default:
	}
	select {
	case s.ch <- it:
		s.enqueued.Add(1)
		return true, nil
	case <-ctx.Done():
		return false, s.refuse(fmt.Errorf("audit: %w: the audit buffer stayed full until the call's deadline (%d events waiting): %w",
			ErrStoreUnavailable, s.opts.Buffer, ctx.Err()))
	case <-s.quit:
		return false, fmt.Errorf("audit: %w", ErrSinkClosed)
	}
}

// refuse returns err, or with FailOpen counts and logs a dropped event and returns nil.
func (s *StoreSink) refuse(err error) error {
	if !s.opts.FailOpen {
		return err
	}
	if n := s.dropped.Add(1); n == 1 || n%1000 == 0 {
		s.log.Error("audit: DROPPING audit events (fail open)", "dropped_total", n, "err", err)
	}
	return nil
}

// Dropped returns how many events a fail-open sink has dropped, and how many any sink gave up
// on at Close.
func (s *StoreSink) Dropped() int64 { return s.dropped.Load() }

// RefusedDropped returns how many refused events the rate limit has left out so far.
func (s *StoreSink) RefusedDropped() int64 { return s.refusedTotal.Load() }

func (s *StoreSink) failing() error {
	s.state.Lock()
	defer s.state.Unlock()
	return s.failErr
}

// Flush waits until every event queued before it has been appended. It returns the store's
// error at once while the store is failing, and ctx's error if ctx ends first.
func (s *StoreSink) Flush(ctx context.Context) error {
	target := s.enqueued.Load()
	for {
		s.state.Lock()
		settled, failErr, changed := s.settled, s.failErr, s.changed
		s.state.Unlock()
		if failErr != nil {
			return fmt.Errorf("audit: %w: %w", ErrStoreUnavailable, failErr)
		}
		if settled >= target {
			return nil
		}
		select {
		case <-changed:
		case <-s.done:
			s.state.Lock()
			settled = s.settled
			s.state.Unlock()
			if settled >= target {
				return nil
			}
			return fmt.Errorf("audit: %w", ErrSinkClosed)
		case <-ctx.Done():
			return fmt.Errorf("audit: waiting for the audit store: %w", ctx.Err())
		}
	}
}

// Close stops accepting events, appends what is buffered (one attempt), and stops the
// background goroutine. It returns an error if some events could not be appended.
func (s *StoreSink) Close() error {
	// Wake writers waiting for room first, so that they release the lock.
	s.quitOnce.Do(func() { close(s.quit) })
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	return s.closeErr
}

// settle counts n events the loop is done with without appending them, and wakes Flush.
func (s *StoreSink) settle(n int) {
	s.state.Lock()
	defer s.state.Unlock()
	s.settled += int64(n)
	close(s.changed)
	s.changed = make(chan struct{})
}

// update records the outcome of an append attempt and wakes Flush.
func (s *StoreSink) update(n int, err error) {
	s.state.Lock()
	defer s.state.Unlock()
	was := s.failErr
	s.settled += int64(n)
	s.failErr = err
	switch {
	case err != nil && was == nil:
		how := "calls are refused until it recovers (fail closed)"
		if s.opts.FailOpen {
			how = "events are dropped until it recovers (fail open)"
		}
		s.log.Error("audit: the audit store is failing; "+how, "err", err)
	case err == nil && was != nil:
		s.log.Warn("audit: the audit store recovered", "dropped_total", s.dropped.Load())
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// deferredAppender appends without waiting for durability; *store.Store implements it.
type deferredAppender interface {
	AppendAuditDeferred(ctx context.Context, data ...[]byte) ([]store.AuditRecord, func(context.Context) error, error)
}

// append appends batch in one transaction. When durable is not nil, the batch is committed but
// durable only once durable has returned nil.
func (s *StoreSink) append(batch []item) (durable func() error, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.AppendTimeout)
	data := make([][]byte, len(batch))
	for i, it := range batch {
		data[i] = it.data
	}
	d, ok := s.st.(deferredAppender)
	if !ok {
		defer cancel()
		_, err := s.st.AppendAudit(ctx, data...)
		return nil, err
	}
	_, sync, err := d.AppendAuditDeferred(ctx, data...)
	if err != nil || sync == nil {
		cancel()
		return nil, err
	}
	return func() error { defer cancel(); return sync(ctx) }, nil
}

// appendNow appends batch and returns once it is durable.
func (s *StoreSink) appendNow(batch []item) error {
	durable, err := s.append(batch)
	if err == nil && durable != nil {
		err = durable()
	}
	return err
}

// syncing is a committed batch being made durable by its own goroutine, which answers the
// batch's writers as soon as it is; the loop joins it to count it.
type syncing struct {
	n   int
	err chan error
}

func (s *StoreSink) startSync(batch []item, durable func() error) *syncing {
	batch = slices.Clone(batch)
	y := &syncing{n: len(batch), err: make(chan error, 1)}
	go func() {
		err := durable()
		answer(batch, err)
		y.err <- err
	}()
	return y
}

// join waits for y (nil: nothing is syncing) and records its outcome.
func (s *StoreSink) join(y *syncing) {
	if y != nil {
		s.update(y.n, <-y.err)
	}
}

// answer tells the writers waiting for batch the outcome of its append, once.
func answer(batch []item, err error) {
	for i := range batch {
		if batch[i].done != nil {
			batch[i].done <- err
			batch[i].done = nil
		}
	}
}

// checkpoint has the trail sign the log's head, logging a failure (the next one retries).
func (s *StoreSink) checkpoint() {
	if s.opts.Trail == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.AppendTimeout)
	defer cancel()
	if _, _, err := s.opts.Trail.Checkpoint(ctx); err != nil {
		s.log.Error("audit: writing a checkpoint failed", "err", err)
	}
}

// droppedRecord returns the KindDropped event for refused events left out since the last
// one, or nil.
func (s *StoreSink) droppedRecord() *item {
	n := s.refusedDropped.Swap(0)
	if n == 0 {
		return nil
	}
	s.log.Warn("audit: refused calls and authentications beyond the rate limit were counted, not recorded", "dropped", n)
	b, _ := json.Marshal(Event{Time: time.Now().UTC(), Kind: KindDropped, Outcome: "denied", Dropped: n})
	return &item{data: b}
}

// run is the sink's goroutine: it appends what the writers queued, in batches. While one
// batch is being made durable (an SQLite file's fsync), the next one is already committed: the
// write lock is not held across the fsync.
func (s *StoreSink) run() {
	defer close(s.done)
	var (
		pending  []item
		inflight *syncing // the last committed batch while it is being synced
		wait     = 100 * time.Millisecond
		unsigned int // records appended since the last checkpoint
		tick     = time.NewTicker(s.opts.CheckpointInterval)
		ticked   bool
	)
	defer tick.Stop()
	if _, err := s.recover(); err != nil {
		s.log.Error("audit: looking for calls interrupted by a crash failed; they stay without an outcome until the next start", "err", err)
	}
	for {
		if len(pending) == 0 {
			var synced chan error
			if inflight != nil {
				synced = inflight.err
			}
			select {
			case d := <-s.ch:
				if s.take(d) {
					pending = append(pending, d)
				}
			case err := <-synced:
				s.update(inflight.n, err)
				inflight = nil
				continue
			case <-tick.C:
				ticked = true
			case <-s.stop:
				s.join(inflight)
				if d := s.droppedRecord(); d != nil {
					pending = append(pending, *d)
				}
				s.final(pending)
				s.checkpoint()
				return
			}
		}
		if ticked {
			ticked = false
			if d := s.droppedRecord(); d != nil {
				pending = append(pending, *d)
			}
			if unsigned > 0 && len(pending) == 0 {
				s.checkpoint()
				unsigned = 0
			}
			if len(pending) == 0 {
				continue
			}
		}
	fill:
		for len(pending) < s.opts.Batch {
			select {
			case d := <-s.ch:
				if s.take(d) {
					pending = append(pending, d)
				}
			default:
				break fill
			}
		}
		s.gather(&pending)
		if len(pending) == 0 { // only elided begin records
			continue
		}
		durable, err := s.append(pending)
		s.join(inflight)
		inflight = nil
		if errors.Is(err, store.ErrRecordRefused) {
			n, rest, ierr := s.isolate(pending)
			unsigned += n
			pending, err = append(pending[:0], rest...), ierr
			if err == nil {
				wait = 100 * time.Millisecond
				continue
			}
		}
		if err != nil {
			// The waiting writers are answered (their calls report it); the batch is retried
			// without them.
			s.update(0, err)
			answer(pending, err)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.stop:
				t.Stop()
				s.final(pending)
				return
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		if durable != nil {
			inflight = s.startSync(pending, durable)
		} else {
			s.update(len(pending), nil)
			answer(pending, nil)
		}
		unsigned += len(pending)
		pending = pending[:0]
		wait = 100 * time.Millisecond
		if unsigned >= s.opts.CheckpointEvery {
			s.checkpoint()
			unsigned = 0
		}
	}
}

// isolate appends the records of a batch the database refused for its content one at a time,
// in order, so that one record it cannot take holds back neither the others nor, failing
// closed, every later call. A record refused on its own is replaced by a stand-in
// ([KindUnstorable]) that carries it byte for byte in base64: the call it records stays
// audited, in the chain, and nothing is lost. Its writer is answered as if it had been
// appended. isolate returns how many records it appended and, when the store itself fails
// (the stand-in refused too, or any other error), the records left and that error.
func (s *StoreSink) isolate(batch []item) (appended int, rest []item, err error) {
	for i := range batch {
		one := batch[i : i+1]
		err := s.appendNow(one)
		if errors.Is(err, store.ErrRecordRefused) {
			s.log.Error("audit: the audit database refused a record for its content; a stand-in carrying it in base64 is recorded instead",
				"err", err)
			err = s.appendNow([]item{{data: standIn(batch[i].data, err)}})
		}
		if err != nil {
			return i, batch[i:], err
		}
		s.update(1, nil)
		answer(one, nil)
	}
	return len(batch), nil, nil
}

// standIn is the KindUnstorable record that replaces data, which the database refused with err.
func standIn(data []byte, err error) []byte {
	var orig struct {
		RequestID string `json:"request_id"`
	}
	_ = json.Unmarshal(data, &orig)
	id := orig.RequestID
	if len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) }) {
		id = "" // host-made IDs are short hex; anything else may be what the database refused
	}
	b, _ := json.Marshal(Event{Time: time.Now().UTC(), Kind: KindUnstorable, RequestID: id, Outcome: "error",
		Message: "the audit database refused this record as written (" + err.Error() + "); the record, byte for byte, in base64: " +
			base64.StdEncoding.EncodeToString(data)})
	return b
}

// gather adds to pending the records that come while the sink yields to the goroutines ready to
// run (callers about to write), for at most the window: on a busy host a commit carries more
// calls, and a host with nothing else to run commits at once.
func (s *StoreSink) gather(pending *[]item) {
	if s.opts.Window < 0 {
		return
	}
	deadline := time.Now().Add(s.opts.Window)
	for len(*pending) < s.opts.Batch {
		runtime.Gosched()
		n := len(*pending)
	drain:
		for len(*pending) < s.opts.Batch {
			select {
			case d := <-s.ch:
				if s.take(d) {
					*pending = append(*pending, d)
				}
			default:
				break drain
			}
		}
		if len(*pending) == n || time.Now().After(deadline) {
			return
		}
	}
}

// final drains the buffer behind pending and makes one attempt to append it all.
func (s *StoreSink) final(pending []item) {
	for {
		select {
		case d := <-s.ch:
			if s.take(d) {
				pending = append(pending, d)
			}
			continue
		default:
		}
		break
	}
	for len(pending) > 0 {
		n := min(len(pending), s.opts.Batch)
		err := s.appendNow(pending[:n])
		if errors.Is(err, store.ErrRecordRefused) {
			var rest []item
			_, rest, err = s.isolate(pending[:n])
			pending = append(rest, pending[n:]...)
			if err == nil {
				continue
			}
		}
		if err != nil {
			s.dropped.Add(int64(len(pending)))
			s.log.Error("audit: events lost at close: the audit store is failing", "lost", len(pending), "err", err)
			s.closeErr = fmt.Errorf("audit: %d audit events could not be written at close: %w: %w", len(pending), ErrStoreUnavailable, err)
			s.update(len(pending), err)
			answer(pending, err)
			return
		}
		s.update(n, nil)
		answer(pending[:n], nil)
		pending = pending[n:]
	}
}

// DecodeRecord returns the event an audit record of the store holds.
func DecodeRecord(r store.AuditRecord) (Event, error) {
	var e Event
	if err := json.Unmarshal(r.Data, &e); err != nil {
		return Event{}, fmt.Errorf("audit: record %d is not an event: %w", r.Seq, err)
	}
	return e, nil
}
