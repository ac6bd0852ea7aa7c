// Package breaker is a circuit breaker for one upstream host.
//
// A [Breaker] is closed (requests flow) until Failures consecutive transient failures; it is
// then open for CoolDown, and answers every request at once. After the cool-down it is
// half-open: exactly one request (the probe) goes through. A success closes it, a transient
// failure opens it again for another cool-down:
//
//	b := breaker.New(breaker.Config{})
//	d := b.Allow(time.Now())
//	if !d.OK {
//		// fail fast: retry after d.RetryAfter
//	}
//	… send …
//	b.Done(time.Now(), d, breaker.Failure) // or breaker.Success, or breaker.Ignore
//
// What counts as a failure is the caller's decision: egress reports network errors, 5xx and
// upstream timeouts as failures, any other response as a success, and caller cancellations and
// local refusals as Ignore.
package breaker

import (
	"expvar"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultFailures = 5
	DefaultCoolDown = 30 * time.Second
)

// Config configures a Breaker. Zero fields mean the defaults.
type Config struct {
	// Failures is how many consecutive transient failures open the breaker. 0 means 5; a
	// negative value disables the breaker (it never opens).
	Failures int
	// CoolDown is how long the breaker stays open before it lets one probe through. 0 means 30 s.
	CoolDown time.Duration
	// OnOpen, if set, is called each time the breaker opens (after the threshold, or a failed
	// probe), with the cool-down, outside the breaker's lock; it must return at once.
	OnOpen func(coolDown time.Duration)
}

// State is a breaker state.
type State int

// The states.
const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// Outcome is what became of an allowed request.
type Outcome int

// The outcomes.
const (
	Success Outcome = iota // the upstream answered (any status the caller does not count)
	Failure                // a transient failure: network error, 5xx, upstream timeout
	Ignore                 // says nothing about the upstream: cancelled, refused locally
)

// Decision is the answer of [Breaker.Allow].
type Decision struct {
	OK bool
	// RetryAfter is the rest of the cool-down when OK is false.
	RetryAfter time.Duration
	probe      bool
}

// Breaker is safe for concurrent use. Its zero value is a closed breaker with the defaults.
type Breaker struct {
	cfg Config

	mu       sync.Mutex
	state    State
	failures int       // consecutive, while closed
	until    time.Time // end of the cool-down, while open
	probing  bool      // a half-open probe is in flight
}

// New returns a closed Breaker.
func New(cfg Config) *Breaker {
	return &Breaker{cfg: cfg}
}

func (b *Breaker) threshold() int {
	if b.cfg.Failures == 0 {
		return DefaultFailures
	}
	return b.cfg.Failures
}

func (b *Breaker) coolDown() time.Duration {
	if b.cfg.CoolDown <= 0 {
		return DefaultCoolDown
	}
	return b.cfg.CoolDown
}

// Allow asks whether a request may go at now. An allowed request must be reported with Done.
func (b *Breaker) Allow(now time.Time) Decision {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open && !now.Before(b.until) {
		b.state = HalfOpen
	}
	switch b.state {
	case Open:
		metrics.refusals.Add(1)
		return Decision{RetryAfter: b.until.Sub(now)}
	case HalfOpen:
		if b.probing {
			// The probe will tell soon; until then, behave as open.
			metrics.refusals.Add(1)
			return Decision{RetryAfter: min(time.Second, b.coolDown())}
		}
		b.probing = true
		metrics.probes.Add(1)
		return Decision{OK: true, probe: true}
	}
	return Decision{OK: true}
}

// Done reports the outcome of a request Allow let through.
func (b *Breaker) Done(now time.Time, d Decision, o Outcome) {
	if !d.OK {
		return
	}
	b.mu.Lock()
	opened := b.done(now, d, o)
	b.mu.Unlock()
	if opened && b.cfg.OnOpen != nil {
		b.cfg.OnOpen(b.coolDown())
	}
}

// done records the outcome under b.mu and reports whether the breaker opened.
func (b *Breaker) done(now time.Time, d Decision, o Outcome) (opened bool) {
	if d.probe {
		b.probing = false
		switch o {
		case Success:
			b.state, b.failures = Closed, 0
			metrics.closes.Add(1)
		case Failure:
			b.state, b.until = Open, now.Add(b.coolDown())
			metrics.opens.Add(1)
			return true
		}
		return false
	}
	if b.state != Closed {
		return false // a request from before the breaker opened: the probe decides
	}
	switch o {
	case Success:
		b.failures = 0
	case Failure:
		b.failures++
		if t := b.threshold(); t > 0 && b.failures >= t {
			b.state, b.until, b.failures = Open, now.Add(b.coolDown()), 0
			metrics.opens.Add(1)
			return true
		}
	}
	return false
}

// State reports the state at now.
func (b *Breaker) State(now time.Time) State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == Open && !now.Before(b.until) {
		return HalfOpen
	}
	return b.state
}

// Process-wide counters, published with expvar as "airlock_breaker" and readable with [Snapshot].
var metrics struct {
	opens, closes, probes, refusals atomic.Int64
}

func init() {
	expvar.Publish("airlock_breaker", expvar.Func(func() any { return Snapshot() }))
}

// Snapshot returns the counters of every Breaker in the process: "opens" (a breaker opened,
// including after a failed probe), "closes" (a probe succeeded), "probes" (half-open probes let
// through) and "refusals" (requests refused while open or while a probe was in flight).
func Snapshot() map[string]int64 {
	return map[string]int64{
		"opens":    metrics.opens.Load(),
		"closes":   metrics.closes.Load(),
		"probes":   metrics.probes.Load(),
		"refusals": metrics.refusals.Load(),
	}
}
