// Package jobqueue keeps deferred tool calls on a durable queue (River, github.com/riverqueue/river)
// in the state store's own database: SQLite through riversqlite by default, PostgreSQL through
// riverpgxv5 when the store is shared. A job survives a restart of the host and runs on whichever
// replica picks it up; its tables are created by store.Open.
//
// Jobs are released in a fair order: each (connector, subject) has a virtual clock, and a job
// is stamped with max(service position, its flow's last stamp) + one quantum (start-time fair
// queueing). River hands out available jobs by that stamp (scheduled_at), so two subjects with 900
// and 100 queued jobs alternate instead of the second waiting behind the first. The stamps lie
// in the past, so a job is available at once; the pace of the upstream is the egress rate
// limiter's, and a rate-limited job is snoozed (Snooze), not failed.
//
//	q, err := jobqueue.New(jobqueue.Config{DB: qdb, Run: func(ctx context.Context, j jobqueue.Run) (any, error) {
//		return runTheCall(ctx, j.Call)
//	}})
//	q.Start(ctx)
//	id, err := q.Enqueue(ctx, jobqueue.Call{Tool: "slack.post_message", …}, "slack/tenant-a")
//
// A Queue is safe for concurrent use.
package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/airlock-dev/airlock/host/store"
)

// Kind is the River job kind of a deferred call.
const Kind = "airlock.call"

// queueName is the River queue deferred calls run on.
const queueName = "airlock_calls"

// Defaults for zero Config fields.
const (
	DefaultWorkers      = 8
	DefaultPollInterval = 200 * time.Millisecond
	DefaultMaxAttempts  = 10
	DefaultRescueAfter  = 3 * time.Minute
	// quantum is a job's share of its flow's virtual clock: the stamps' resolution (SQLite keeps
	// milliseconds).
	quantum = time.Millisecond
)

// Call is what a job keeps of the call it runs: everything the host needs to run it again as the
// caller who asked, and nothing secret (credentials are the grant's, read at run time).
type Call struct {
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments"`
	Agent     string          `json:"agent,omitempty"`
	Subject   string          `json:"subject"`
	// Caller is the subject of the caller's own identity when it acted for Subject (ActAs): at
	// run time the agent's profile must still allow that.
	Caller string `json:"caller,omitempty"`
	// Profile is the agent's profile at accept time (for the audit trail).
	Profile string `json:"profile,omitempty"`
	// Session, Conversation and User are the who-asked labels of the accepting call.
	Session      string `json:"session,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	User         string `json:"user,omitempty"`
	// IdempotencyKey is the caller's key, or one the host derived at accept time: a job that is
	// replayed (a retry, a restart) returns the first run's outcome instead of running again.
	IdempotencyKey string `json:"idempotency_key"`
	// GrantVersion is the state store's grant version of the connector at accept time (0: the
	// grant came from the configuration only).
	GrantVersion int `json:"grant_version"`
	// Confirmed: a human approved this exact call at accept time.
	Confirmed bool `json:"confirmed,omitempty"`
	// Accepted is the request ID of the call that accepted the job.
	Accepted string `json:"accepted"`
	// CallTimeout bounds the call itself (its tool's timeout); an attempt may take it plus the
	// paced waits before it is taken as stuck. 0: unknown (Config.JobTimeout).
	CallTimeout time.Duration `json:"call_timeout,omitempty"`
	// Stamp is the job's place in the fair order (set by Enqueue).
	Stamp time.Time `json:"stamp"`
}

// Kind implements river.JobArgs.
func (Call) Kind() string { return Kind }

// Run is one attempt of a job, handed to Config.Run.
type Run struct {
	ID      int64
	Attempt int
	Call    Call
}

// Config configures a Queue. Zero fields take the defaults documented on each.
type Config struct {
	// DB is the state store's queue database (store.Store.QueueDB). Required.
	DB store.QueueDB
	// Run runs a job. Its output (nil: none) is recorded with the job; an error made by Snooze
	// puts the job back for later without counting an attempt, one made by Cancel ends it, any
	// other is retried with River's backoff up to MaxAttempts.
	Run func(ctx context.Context, r Run) (output any, err error)
	// Workers is how many jobs run at once on this host (default 8; negative: none, the queue
	// only takes jobs in and reports them, for another process to run).
	Workers int
	// PollInterval is how often the queue looks for jobs when nothing notifies it (SQLite has no
	// notifications; default 200 ms).
	PollInterval time.Duration
	// MaxAttempts bounds the attempts of a job that keeps failing with errors other than
	// snoozes (default 10).
	MaxAttempts int
	// JobTimeout bounds one attempt of a job whose Call.CallTimeout is 0 (default 11 minutes:
	// longer than any call may run); with a CallTimeout, an attempt is bounded by it plus
	// attemptMargin.
	JobTimeout time.Duration
	// RescueAfter is how long after it started a job still marked running is taken as left by a
	// host that died, and made to run again (default 3 minutes; never before its attempt's
	// timeout). River looks for such jobs every 30 s. The rerun finds the call's idempotency
	// lease lapsed (a running host renews it) and either replays it or ends it outcome_unknown.
	RescueAfter time.Duration
	// Logger receives River's logs (default slog.Default()).
	Logger *slog.Logger
}

// Errors a Run may return, built by Snooze and Cancel.

// Snooze returns the error that puts a job back for d without counting an attempt.
func Snooze(d time.Duration) error { return river.JobSnooze(max(d, 0)) }

// Cancel returns the error that ends a job as cancelled; err says why.
func Cancel(err error) error { return river.JobCancel(err) }

// client is the part of river.Client a Queue uses, whatever the driver's transaction type.
type client interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobCancel(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
}

// Queue is the deferred-call queue of one host.
type Queue struct {
	c          client
	run        func(context.Context, Run) (any, error)
	insertOnly bool // Config.Workers < 0: Start and Stop do nothing

	mu    sync.Mutex
	now   time.Time            // the fair clock's service position: the stamp of the last job started
	flows map[string]time.Time // last stamp per flow
}

// New returns a Queue on cfg.DB; it runs no job until Start.
func New(cfg Config) (*Queue, error) {
	if cfg.Run == nil && cfg.Workers >= 0 {
		return nil, errors.New("jobqueue: Config.Run is required (or Workers < 0)")
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = DefaultRescueAfter
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = 11 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	q := &Queue{run: cfg.Run, flows: map[string]time.Time{}, insertOnly: cfg.Workers < 0,
		// Stamps start an hour in the past, so that every stamp is due at once.
		now: time.Now().Add(-time.Hour)}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &worker{q: q, timeout: cfg.JobTimeout}); err != nil {
		return nil, fmt.Errorf("jobqueue: %w", err)
	}
	rcfg := &river.Config{
		Queues:            map[string]river.QueueConfig{queueName: {MaxWorkers: max(cfg.Workers, 1)}},
		Workers:           workers,
		FetchPollInterval: cfg.PollInterval,
		FetchCooldown:     min(cfg.PollInterval, 50*time.Millisecond),
		MaxAttempts:       cfg.MaxAttempts,
		// The worker's Timeout decides per job; River wants this no longer than the rescue.
		JobTimeout:           cfg.RescueAfter,
		RescueStuckJobsAfter: cfg.RescueAfter,
		Logger:               cfg.Logger,
		Hooks:                []rivertype.Hook{&dueNow{}},
	}
	var err error
	switch {
	case cfg.DB.SQLite != nil:
		q.c, err = river.NewClient(riversqlite.New(cfg.DB.SQLite), rcfg)
	case cfg.DB.Postgres != nil:
		q.c, err = river.NewClient(riverpgxv5.New(cfg.DB.Postgres), rcfg)
	default:
		return nil, errors.New("jobqueue: Config.DB is empty")
	}
	if err != nil {
		return nil, fmt.Errorf("jobqueue: %w", err)
	}
	return q, nil
}

// Start starts running jobs, those left by an earlier run of the host included. The queue runs
// until Stop, whatever becomes of ctx (River would stop with it).
func (q *Queue) Start(ctx context.Context) error {
	if q.insertOnly {
		return nil
	}
	if err := q.c.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobqueue: %w", err)
	}
	return nil
}

// Stop stops taking jobs and waits for the running ones to finish; when ctx ends first, it
// cancels them (they run again, with their idempotency key, on the next start).
func (q *Queue) Stop(ctx context.Context) error {
	if q.insertOnly {
		return nil
	}
	err := q.c.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = q.c.StopAndCancel(cctx)
	}
	if err != nil {
		return fmt.Errorf("jobqueue: %w", err)
	}
	return nil
}

// Enqueue queues c in flow (jobs of one flow share its fair share: a connector and a subject)
// and returns the job's ID.
func (q *Queue) Enqueue(ctx context.Context, c Call, flow string) (int64, error) {
	c.Stamp = q.stamp(flow)
	res, err := q.c.Insert(ctx, c, &river.InsertOpts{Queue: queueName, ScheduledAt: c.Stamp})
	if err != nil {
		return 0, fmt.Errorf("jobqueue: %w", err)
	}
	return res.Job.ID, nil
}

// stamp returns the next stamp of flow: after the service position and after the flow's last
// job.
func (q *Queue) stamp(flow string) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.now
	if last := q.flows[flow]; last.After(t) {
		t = last
	}
	t = t.Add(quantum)
	q.flows[flow] = t
	return t
}

// served moves the service position to the stamp of a job that starts.
func (q *Queue) served(stamp time.Time) {
	q.mu.Lock()
	if stamp.After(q.now) {
		q.now = stamp
	}
	q.mu.Unlock()
}

// State is where a job is, in the words the agent sees.
type State string

const (
	Queued    State = "queued"    // waiting for its turn (or for the upstream's limits)
	Running   State = "running"   // an attempt is under way
	Done      State = "done"      // finished: the outcome is recorded
	Cancelled State = "cancelled" // ended before it ran to completion (a revoke, an admin)
	Failed    State = "failed"    // gave up after its attempts
)

func stateOf(s rivertype.JobState) State {
	switch s {
	case rivertype.JobStateRunning:
		return Running
	case rivertype.JobStateCompleted:
		return Done
	case rivertype.JobStateCancelled:
		return Cancelled
	case rivertype.JobStateDiscarded:
		return Failed
	default:
		return Queued
	}
}

// Job is what Get reports of a job.
type Job struct {
	ID       int64
	State    State
	Attempts int
	Call     Call
	// Output is what the last attempt recorded (nil: nothing yet).
	Output json.RawMessage
	// LastError is the last attempt's error, when it had one.
	LastError string
	Created   time.Time
	Finished  time.Time // zero until it finished
}

// ErrNotFound reports a job ID the queue does not hold.
var ErrNotFound = errors.New("no such job")

// Get returns job id.
func (q *Queue) Get(ctx context.Context, id int64) (*Job, error) {
	row, err := q.c.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("jobqueue: %w", err)
	}
	if row.Kind != Kind {
		return nil, ErrNotFound
	}
	return jobOf(row)
}

func jobOf(row *rivertype.JobRow) (*Job, error) {
	j := &Job{ID: row.ID, State: stateOf(row.State), Attempts: row.Attempt, Output: row.Output(), Created: row.CreatedAt}
	if row.FinalizedAt != nil {
		j.Finished = *row.FinalizedAt
	}
	if n := len(row.Errors); n > 0 {
		j.LastError = row.Errors[n-1].Error
	}
	if err := json.Unmarshal(row.EncodedArgs, &j.Call); err != nil {
		return nil, fmt.Errorf("jobqueue: job %d: %w", row.ID, err)
	}
	return j, nil
}

// unfinished are the states of a job that may still run.
var unfinished = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateScheduled,
	rivertype.JobStateRetryable, rivertype.JobStatePending, rivertype.JobStateRunning}

// CancelWhere cancels every job that may still run and whose call match accepts (a running one
// is told to stop), and returns the jobs cancelled.
func (q *Queue) CancelWhere(ctx context.Context, match func(Call) bool) ([]*Job, error) {
	var out []*Job
	params := river.NewJobListParams().Kinds(Kind).States(unfinished...).First(1000)
	for {
		res, err := q.c.JobList(ctx, params)
		if err != nil {
			return out, fmt.Errorf("jobqueue: %w", err)
		}
		for _, row := range res.Jobs {
			j, err := jobOf(row)
			if err != nil || !match(j.Call) {
				continue
			}
			if _, err := q.c.JobCancel(ctx, row.ID); err != nil && !errors.Is(err, river.ErrNotFound) {
				return out, fmt.Errorf("jobqueue: cancelling job %d: %w", row.ID, err)
			}
			out = append(out, j)
		}
		if len(res.Jobs) < 1000 || res.LastCursor == nil {
			return out, nil
		}
		params = params.After(res.LastCursor)
	}
}

// dueNow makes a job whose stamp is due available at once: River inserts every job given a
// ScheduledAt as scheduled, for its scheduler to release seconds later.
type dueNow struct{ river.HookDefaults }

func (*dueNow) InsertBegin(_ context.Context, p *rivertype.JobInsertParams) error {
	if p.Kind == Kind && p.State == rivertype.JobStateScheduled && p.ScheduledAt != nil && !p.ScheduledAt.After(time.Now()) {
		p.State = rivertype.JobStateAvailable
	}
	return nil
}

// worker runs jobs of Kind.
type worker struct {
	river.WorkerDefaults[Call]
	q       *Queue
	timeout time.Duration // Config.JobTimeout
}

// attemptMargin is what an attempt may take beyond its call's timeout: the paced waits in place
// (host: 5 × 5 s) and the bookkeeping.
const attemptMargin = 30 * time.Second

// Timeout bounds an attempt of job; River rescues a job running longer than this (and
// Config.RescueAfter), as left by a host that died.
func (w *worker) Timeout(job *river.Job[Call]) time.Duration {
	if job.Args.CallTimeout > 0 {
		return job.Args.CallTimeout + attemptMargin
	}
	return w.timeout
}

func (w *worker) Work(ctx context.Context, job *river.Job[Call]) error {
	w.q.served(job.Args.Stamp) // not ScheduledAt: a snoozed job's is its wake-up time
	out, err := w.q.run(ctx, Run{ID: job.ID, Attempt: job.Attempt, Call: job.Args})
	if cause := context.Cause(ctx); err == nil && errors.Is(cause, river.ErrJobCancelledRemotely) {
		err = river.JobCancel(cause) // cancelled while it ran (a revoke): whatever it answered
	}
	if out != nil {
		if rerr := river.RecordOutput(ctx, out); rerr != nil && err == nil {
			return rerr
		}
	}
	return err
}
