package host

// Deferred calls (README, "Deferred calls"): a call of a tool annotated deferrable that asks for
// it (CallRequest.Defer) is checked now — profile, grant, arguments, approval, quotas — and put
// on the durable queue (host/internal/jobqueue, River in the state store); the agent gets
// {"status":"accepted","job_id":…} and polls the host's own tool airlock_job_status. A job runs
// through Call again, as the caller who asked, with the idempotency key fixed at accept time, so
// a replayed job returns the first run's outcome instead of repeating the upstream side effect.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/internal/grant"
	"github.com/airlock-dev/airlock/host/internal/jobqueue"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
)

// JobStatusTool is the host's own tool that reports a deferred call: listed to an agent when one
// of the tools it may call is deferrable.
const JobStatusTool = "airlock_job_status"

// Accepted is the Data of a call accepted for later (CallRequest.Defer).
type Accepted struct {
	Status string `json:"status"` // "accepted"
	JobID  string `json:"job_id"`
	// Poll names the tool that reports the job: airlock_job_status with {"job_id": JobID}.
	Poll string `json:"poll"`
}

// JobStatus is the Data of an airlock_job_status call.
type JobStatus struct {
	JobID string `json:"job_id"`
	Tool  string `json:"tool"`
	// State is queued (waiting for its turn or for the upstream's limits), running, done,
	// cancelled (a revoke, or a grant narrowed under it), failed (it gave up after its attempts)
	// or outcome_unknown (the host running it stopped after it may have reached the upstream,
	// and its tool is not safe to repeat: check upstream before asking again).
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// Result is the call's own result ({ok, data, error, meta}) once it is done, cancelled or
	// failed.
	Result   json.RawMessage `json:"result,omitempty"`
	Accepted time.Time       `json:"accepted_at"`
	Finished *time.Time      `json:"finished_at,omitempty"`
}

// jobRun marks a CallRequest made by the queue running a job.
type jobRun struct{ id int64 }

// deferred is the host's queue, started with the first connector that has a deferrable tool.
type deferred struct {
	once    sync.Once
	q       *jobqueue.Queue
	err     error
	running atomic.Pointer[jobqueue.Queue] // q once started, for those that must not start it
	started time.Time
	stop    sync.Once
}

// queue returns the running queue, starting it on first use; nil without a state store.
func (h *Host) queue() (*jobqueue.Queue, error) {
	if h.store == nil {
		return nil, nil
	}
	h.jobs.once.Do(func() {
		h.jobs.started = time.Now() // before any job runs (runJob reads it)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := h.store.QueueDB(ctx)
		if err != nil {
			h.jobs.err = err
			return
		}
		q, err := jobqueue.New(jobqueue.Config{DB: db, Run: h.runJob, Workers: h.cfg.DeferredWorkers,
			RescueAfter: h.cfg.DeferredRescueAfter, Logger: h.logger})
		if err == nil {
			err = q.Start(ctx)
		}
		h.jobs.q, h.jobs.err = q, err
		if err == nil {
			h.jobs.running.Store(q)
		}
	})
	if h.jobs.err != nil {
		return nil, h.jobs.err
	}
	return h.jobs.q, nil
}

// stopQueue lets running jobs finish (they are cancelled, and run again on the next start, when
// ctx ends first).
func (h *Host) stopQueue(ctx context.Context) error {
	h.jobs.once.Do(func() {}) // no start after Close
	if h.jobs.q == nil || h.jobs.err != nil {
		return nil
	}
	var err error
	h.jobs.stop.Do(func() { err = h.jobs.q.Stop(ctx) })
	return err
}

// startQueueFor starts the queue when c has a deferrable tool, so jobs left by an earlier run of
// the host resume as soon as their connector is back.
func (h *Host) startQueueFor(c *connector) {
	for _, t := range c.policy.Tools {
		if t.Annotations.Deferrable {
			if _, err := h.queue(); err != nil {
				h.logger.Error("the deferred-call queue did not start", "err", err)
			}
			return
		}
	}
}

// accept puts a checked call on the queue (step 4½ of a call) and answers Accepted.
func (h *Host) accept(ctx context.Context, c *connector, tool *manifest.Tool, req CallRequest, caller string, args []byte, key string, res *Result, ev *audit.Event) *ResultError {
	if !tool.Annotations.Deferrable {
		return &ResultError{Code: abi.CodeInvalidArguments, Category: abi.Correctable, Message: fmt.Sprintf(
			"%s cannot be deferred: its manifest does not mark it deferrable; call it without defer", req.Tool)}
	}
	q, err := h.queue()
	if q == nil {
		if err != nil {
			h.logger.Error("deferred-call queue", "err", err)
		}
		return &ResultError{Code: abi.CodeUnavailable, Category: abi.Retryable, Message: "this host cannot queue calls right now " +
			"(deferred calls need its state store); call without defer, or try again later"}
	}
	if key == "" {
		key = "job-" + newRequestID() // a replayed job must not repeat the upstream side effect
	}
	ver, err := h.grantVersion(ctx, c.manifest.Name)
	if err != nil {
		h.logger.Error("grant version", "connector", c.manifest.Name, "err", err)
		return &ResultError{Code: abi.CodeUnavailable, Category: abi.Retryable, Message: "the call could not be queued because the state store is unavailable; try again later"}
	}
	if caller == req.Subject {
		caller = ""
	}
	id, err := q.Enqueue(ctx, jobqueue.Call{Tool: req.Tool, Arguments: args, Agent: req.Agent, Subject: req.Subject, Caller: caller,
		Profile: ev.Profile, Session: req.Session, Conversation: req.Conversation, User: req.User,
		IdempotencyKey: key, GrantVersion: ver, Confirmed: req.Confirmed, Accepted: res.Meta.RequestID,
		CallTimeout: time.Duration(c.policy.Limits.TimeoutMS) * time.Millisecond},
		c.manifest.Name+"\x00"+req.Subject)
	if err != nil {
		h.logger.Error("deferred-call queue", "err", err)
		return &ResultError{Code: abi.CodeUnavailable, Category: abi.Retryable, Message: "the call could not be queued because the state store is unavailable; try again later"}
	}
	jobID := strconv.FormatInt(id, 10)
	res.Meta.Untrusted = false // the answer is the host's, not the upstream's
	res.Data, _ = json.Marshal(Accepted{Status: "accepted", JobID: jobID, Poll: JobStatusTool})
	ev.Message = "accepted as deferred job " + jobID
	return nil
}

// grantVersion is the state store's current grant version of connector (0: none there).
func (h *Host) grantVersion(ctx context.Context, connector string) (int, error) {
	if h.store == nil {
		return 0, nil
	}
	rec, err := h.store.CurrentGrant(ctx, connector)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	return rec.Version, err
}

// widened says why a job accepted under grant version accepted may not run under the store's
// current grant: the current one allows something the accepted one did not. A job runs under
// the intersection of the two, which is the current grant exactly when it is no wider.
func (h *Host) widened(ctx context.Context, m *manifest.Manifest, accepted int) (string, error) {
	cur, err := h.grantVersion(ctx, m.Name)
	if err != nil || cur == accepted {
		return "", err
	}
	history, err := h.store.GrantHistory(ctx, m.Name)
	if err != nil {
		return "", err
	}
	var acc, now *manifest.Grant
	for _, r := range history {
		if r.Revoked || len(r.Grant) == 0 {
			continue
		}
		g := new(manifest.Grant)
		if err := json.Unmarshal(r.Grant, g); err != nil { // as the admin stored it
			return "", err
		}
		switch r.Version {
		case accepted:
			acc = g
		case cur:
			now = g
		}
	}
	if acc == nil || now == nil {
		return "", nil // no store grant at one end: Call checks the current decision
	}
	both, _ := grant.Merge(m, acc, now)
	same, _ := grant.Merge(m, now, now)
	a, _ := json.Marshal(both)
	b, _ := json.Marshal(same)
	if string(a) != string(b) {
		return fmt.Sprintf("the grant of %s changed since the call was accepted (version %d, now %d) and now allows more than it did", m.Name, accepted, cur), nil
	}
	return "", nil
}

// runJob runs one attempt of a job through Call and tells the queue what to do next.
func (h *Host) runJob(ctx context.Context, r jobqueue.Run) (any, error) {
	jc := r.Call
	conn, _, _ := strings.Cut(jc.Tool, ".")
	if h.manifestOf(jc.Tool) == nil && h.stoppedReason(conn) == "" && time.Since(h.jobs.started) < loadGrace {
		// The host is starting and has not loaded this job's connector yet: come back.
		return nil, jobqueue.Snooze(time.Second)
	}
	if m := h.manifestOf(jc.Tool); m != nil && jc.GrantVersion > 0 {
		why, err := h.widened(ctx, m, jc.GrantVersion)
		if err != nil {
			return nil, fmt.Errorf("reading the grant: %w", err) // retried
		}
		if why != "" {
			res := h.cancelled(ctx, r.ID, jc, why+"; call again to run it under the new grant")
			return res, jobqueue.Cancel(errors.New(why))
		}
	}
	req := CallRequest{Tool: jc.Tool, Arguments: jc.Arguments, Agent: jc.Agent, Subject: jc.Subject,
		Session: jc.Session, Conversation: jc.Conversation, User: jc.User, IdempotencyKey: jc.IdempotencyKey,
		Confirmed: jc.Confirmed, job: &jobRun{id: r.ID}}
	if jc.Caller != "" { // acting for another subject, which the profile must still allow
		req.Subject, req.ActAs = jc.Caller, jc.Subject
	}
	res := h.Call(ctx, req)
	// The upstream's (or a quota's) pace: a short wait is waited out in place, so the job keeps
	// its turn in the fair order; a longer one snoozes it, without counting an attempt.
	for waits := 0; paced(res.Error) && waits < maxPacedWaits; waits++ {
		d := max(time.Duration(res.Error.RetryAfter*float64(time.Second)), 100*time.Millisecond)
		if d > maxPacedWait {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(d):
		}
		res = h.Call(ctx, req)
	}
	switch e := res.Error; {
	case e == nil:
		return res, nil
	case e.Code == abi.CodeNotGranted:
		return res, jobqueue.Cancel(errors.New(e.Message))
	case paced(e):
		return res, jobqueue.Snooze(max(time.Duration(e.RetryAfter*float64(time.Second)), time.Second))
	case e.Category == abi.Retryable:
		return res, errors.New(e.Code) // River's backoff, up to its attempts
	default:
		return res, nil // done: the outcome is the call's error
	}
}

// loadGrace is how long after the queue starts a job of a connector not loaded yet waits for it
// (the host loads its connectors one by one), rather than failing as an unknown tool.
const loadGrace = 2 * time.Minute

// A job waits in place for the upstream's pace at most maxPacedWaits times maxPacedWait before
// it is snoozed.
const (
	maxPacedWaits = 5
	maxPacedWait  = 5 * time.Second
)

// paced says e asks the caller to come back later: a rate limit, an upstream pause, a quota.
func paced(e *ResultError) bool {
	return e != nil && (e.Code == abi.CodeRateLimited || e.Code == abi.CodeUnavailable && e.RetryAfter > 0)
}

// manifestOf is the manifest of the connector serving tool, or nil.
func (h *Host) manifestOf(tool string) *manifest.Manifest {
	name, _, _ := strings.Cut(tool, ".")
	h.mu.RLock()
	defer h.mu.RUnlock()
	if c := h.connectors[name]; c != nil {
		return c.manifest
	}
	return nil
}

// cancelled audits the cancellation of job id and returns the result the job records.
func (h *Host) cancelled(ctx context.Context, id int64, jc jobqueue.Call, why string) *Result {
	res := &Result{Meta: Meta{Tool: jc.Tool, RequestID: newRequestID()},
		Error: &ResultError{Code: abi.CodeNotGranted, Category: abi.Fatal, Message: "the deferred call was cancelled: " + why}}
	connector, _, _ := strings.Cut(jc.Tool, ".")
	ev := audit.Event{Time: h.now().UTC(), Kind: audit.KindCall, RequestID: res.Meta.RequestID, Agent: jc.Agent,
		Subject: jc.Subject, Profile: jc.Profile, Tool: jc.Tool, Connector: connector, Outcome: "denied",
		Code: res.Error.Code, Category: string(res.Error.Category),
		Message: fmt.Sprintf("deferred job %d (accepted in %s) cancelled: %s", id, jc.Accepted, why)}
	ev.ArgKeys, ev.ArgsSHA256 = summarize(jc.Arguments)
	if err := h.audit.Write(ctx, ev); err != nil {
		h.logger.Error("audit write failed", "request_id", ev.RequestID, "err", err)
	}
	return res
}

// cancelRevoked cancels at once the unfinished jobs of connector name's tools that are no longer
// granted (a revoke, a narrower grant), so none of them waits in the queue to be refused later;
// each cancellation is audited. A job running is told to stop.
func (h *Host) cancelRevoked(ctx context.Context, name string) {
	q := h.jobs.running.Load()
	if q == nil {
		return
	}
	h.mu.RLock()
	c := h.connectors[name]
	h.mu.RUnlock()
	prefix := name + "."
	jobs, err := q.CancelWhere(ctx, func(jc jobqueue.Call) bool {
		tool, ok := strings.CutPrefix(jc.Tool, prefix)
		if !ok {
			return false
		}
		if c == nil {
			return true
		}
		t, _ := c.policy.Callable(tool)
		return t == nil
	})
	for _, j := range jobs {
		h.cancelled(ctx, j.ID, j.Call, "its tool is no longer granted (revoked by an admin)")
	}
	if err != nil {
		h.logger.Error("cancelling the deferred calls of a revoked grant", "connector", name, "err", err)
	}
}

// jobStatus answers airlock_job_status: only to the agent that asked, for the same subject.
func (h *Host) jobStatus(ctx context.Context, req CallRequest, args []byte, res *Result, ev *audit.Event) *ResultError {
	var in struct {
		JobID string `json:"job_id"`
	}
	dec := json.NewDecoder(strings.NewReader(string(args)))
	dec.DisallowUnknownFields()
	id, perr := int64(0), dec.Decode(&in)
	if perr == nil {
		id, perr = strconv.ParseInt(in.JobID, 10, 64)
	}
	if perr != nil || id <= 0 {
		return &ResultError{Code: abi.CodeInvalidArguments, Category: abi.Correctable,
			Message: `airlock_job_status takes {"job_id": "…"}, the job_id of an accepted deferred call`}
	}
	notFound := &ResultError{Code: abi.CodeInvalidArguments, Category: abi.Correctable, Message: fmt.Sprintf(
		"there is no deferred call %s of yours: use the job_id of a call you made that was accepted (jobs of other agents or subjects are not shown)", in.JobID)}
	q, err := h.queue()
	if q == nil {
		if err != nil {
			h.logger.Error("deferred-call queue", "err", err)
		}
		return notFound
	}
	j, err := q.Get(ctx, id)
	if errors.Is(err, jobqueue.ErrNotFound) {
		return notFound
	}
	if err != nil {
		h.logger.Error("deferred-call queue", "err", err)
		return &ResultError{Code: abi.CodeUnavailable, Category: abi.Retryable, RetryAfter: 1,
			Message: "the job's state could not be read because the state store is unavailable; try again later"}
	}
	// The caller's subject, as a call of the job's tool would select it (its profile, ActAs).
	as := req
	as.Tool = j.Call.Tool
	if rerr := h.admitProfile(&as, ev); rerr != nil || j.Call.Agent != req.Agent || j.Call.Subject != as.Subject {
		return notFound
	}
	ev.Subject = as.Subject
	st := JobStatus{JobID: in.JobID, Tool: j.Call.Tool, State: string(j.State), Attempts: j.Attempts, Accepted: j.Created}
	if !j.Finished.IsZero() {
		st.Finished = &j.Finished
		st.Result = j.Output
		var out Result
		if json.Unmarshal(j.Output, &out) == nil {
			res.Meta.Untrusted = out.Meta.Untrusted // the upstream's data, inside
			if out.Error != nil && out.Error.Code == CodeOutcomeUnknown {
				st.State = CodeOutcomeUnknown // the host running it stopped; it is not run again
			}
		}
	}
	res.Data, _ = json.Marshal(st)
	return nil
}

// jobStatusTool is the listing of JobStatusTool.
var jobStatusTool = Tool{
	Name: JobStatusTool,
	Description: "Report a deferred call: its state (queued, running, done, cancelled, failed), its attempts, " +
		"and once it is done its result. Pass the job_id a deferrable tool answered with when it accepted a call.",
	InputSchema: []byte(`{"type":"object","properties":{"job_id":{"type":"string","description":"the job_id of the accepted call"}},` +
		`"required":["job_id"],"additionalProperties":false}`),
	Annotations: manifest.Annotations{ReadOnly: true, Idempotent: true},
}
