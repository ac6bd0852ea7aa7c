// Package ratelimit keeps token buckets, one per key, that upstreams can pause: in process, or
// shared by every replica through a [Store] such as [Redis].
//
// A [Limiter] holds a bucket for each [Key] (a connector, an upstream host, the rule that set
// the limit, the credential slot and the subject the request is made for), sized by the [Limit]
// its limitFor function gives for the key. Besides the static rate, a bucket can be paused until a
// point in time: the egress client pauses it when an upstream says so (Retry-After, an exhausted
// GitHub or Salesforce quota, a Slack 429).
//
// Reserve never blocks: it says how long the caller must wait, or that the wait would be longer
// than the caller can afford, in which case nothing is consumed:
//
//	l := ratelimit.New(func(k ratelimit.Key) ratelimit.Limit { return ratelimit.Limit{PerSecond: 5, Burst: 10} })
//	r := l.Reserve(ctx, ratelimit.Key{Host: "api.github.com", Credential: "token"}, time.Now(), 2*time.Second)
//	if !r.OK {
//		// fail now: try again in r.Wait (r.Reason says why)
//	}
//	time.Sleep(r.Wait) // or a timer that also watches the context
//
// Holding a goroutine for the wait is the caller's choice; the limiter only does arithmetic.
//
// # Shared limits
//
// [NewShared] returns a Limiter whose buckets and pauses live in a [Store] shared by several
// replicas ([Redis]: GCRA in a Lua script). When the store fails, the Limiter keeps limiting with
// its in-process buckets at a conservative share of each limit (by default half: two replicas
// are assumed), and the store says so once in its log and counts it in [Snapshot]; it probes the
// store in the background and goes back to it when it answers:
//
//	store := ratelimit.NewRedis(rdb, ratelimit.RedisConfig{Prefix: "airlock:rl:"})
//	defer store.Close()
//	l := ratelimit.NewShared(limitFor, ratelimit.SharedConfig{Store: store, Connector: "slack"})
package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is the static rate of one bucket.
type Limit struct {
	// PerSecond is the sustained rate in requests per second. 0 (or negative) means no static
	// limit: only pauses apply.
	PerSecond float64
	// Burst is how many requests may go at once after an idle period. 0 means
	// max(1, ceil(PerSecond)).
	Burst int
}

// burst is Burst with its default applied.
func (l Limit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return max(1, int(math.Ceil(l.PerSecond)))
}

// scaled is l at share (0 < share ≤ 1) of its rate and burst, never below one request.
func (l Limit) scaled(share float64) Limit {
	if l.PerSecond <= 0 || share >= 1 {
		return l
	}
	return Limit{PerSecond: l.PerSecond * share, Burst: max(1, int(math.Floor(float64(l.burst())*share)))}
}

// Key names one bucket. Empty fields are a valid part of a key ("" is "none").
type Key struct {
	// Connector names the connector. A shared Limiter fills it from SharedConfig.Connector when
	// it is empty; in process, one Limiter serves one connector and it may stay empty.
	Connector string
	// Host is the upstream host name, lowercase.
	Host string
	// Rule names the rate rule that set the limit (its path prefix), so limits on different paths
	// of one host (Slack's per-method tiers) are separate buckets. "" for a host-wide limit.
	Rule string
	// Credential is the credential slot name, "" for none.
	Credential string
	// Subject is the tenant or user the request is made for (one connection of the connector),
	// "" when the call has none.
	Subject string
}

// Reservation is the answer of [Limiter.Reserve].
type Reservation struct {
	// OK reports whether a token was taken. The caller must wait Wait before sending.
	// When OK is false, nothing was taken and Wait is how long until a request could go.
	OK   bool
	Wait time.Duration
	// Paused reports that the wait (or part of it) comes from a pause, and Reason says who asked
	// for it ("GitHub reported its rate limit exhausted"). Both are empty for a static-rate wait.
	Paused bool
	Reason string
	// Local reports that a shared Limiter answered from its in-process buckets because its
	// store failed.
	Local bool

	cancel func(context.Context) // a store's undo
	local  *rate.Reservation     // or an in-process token, taken at at from l
	l      *Limiter
	at     time.Time
}

// Cancel gives back the token of an OK reservation the caller will not use (as far as the
// bucket allows: a token whose time has passed is not restored). It does nothing otherwise.
func (r Reservation) Cancel(ctx context.Context) {
	switch {
	case !r.OK:
	case r.cancel != nil:
		r.cancel(ctx)
	case r.local != nil:
		r.l.mu.Lock()
		defer r.l.mu.Unlock()
		r.local.CancelAt(r.at)
	}
}

// Interface is what a caller of a Limiter needs; *Limiter implements it, in process or shared.
type Interface interface {
	Reserve(ctx context.Context, k Key, now time.Time, maxWait time.Duration) Reservation
	Pause(ctx context.Context, k Key, now, until time.Time, reason string)
}

var _ Interface = (*Limiter)(nil)

// maxKeys bounds the number of in-process buckets; beyond it, idle buckets are dropped.
const maxKeys = 4096

// DefaultLocalShare is the share of each limit a shared Limiter keeps while its store is
// unreachable: 1/2, right for two replicas. Set SharedConfig.LocalShare to 1/replicas.
const DefaultLocalShare = 0.5

// SharedConfig configures [NewShared]. Zero fields mean the defaults.
type SharedConfig struct {
	// Store holds the shared buckets and pauses. Required.
	Store Store
	// Connector fills Key.Connector when a caller leaves it empty, so two connectors with the
	// same host and slot names do not share a bucket.
	Connector string
	// LocalShare is the fraction (0 < LocalShare ≤ 1) of each limit this replica allows itself
	// while the store is unreachable: 1/expected replicas. 0 means DefaultLocalShare (1/2).
	LocalShare float64
}

// Limiter is a set of token buckets, in process or shared. It is safe for concurrent use. Its
// zero value is not usable; call [New] or [NewShared].
type Limiter struct {
	limitFor  func(Key) Limit
	store     Store // nil: in process only
	connector string
	share     float64 // of the limit, for in-process buckets; 1 when not shared

	mu      sync.Mutex
	buckets map[Key]*bucket
}

type bucket struct {
	lim    *rate.Limiter // nil: no static limit
	seen   time.Time     // latest time lim was used at: concurrent callers' clocks arrive out of order
	until  time.Time     // paused until
	reason string
}

// New returns an in-process Limiter whose buckets take their rate from limitFor, called once
// per new key. A nil limitFor means no static limits.
func New(limitFor func(Key) Limit) *Limiter {
	if limitFor == nil {
		limitFor = func(Key) Limit { return Limit{} }
	}
	return &Limiter{limitFor: limitFor, share: 1, buckets: make(map[Key]*bucket)}
}

// NewShared returns a Limiter whose buckets live in cfg.Store, with in-process buckets at
// cfg.LocalShare of each limit for when the store fails. limitFor is called for every
// reservation, so it should be cheap. It panics if cfg.Store is nil (a programming error).
func NewShared(limitFor func(Key) Limit, cfg SharedConfig) *Limiter {
	if cfg.Store == nil {
		panic("ratelimit: NewShared needs a Store")
	}
	l := New(limitFor)
	l.store, l.connector = cfg.Store, cfg.Connector
	l.share = cfg.LocalShare
	if !(l.share > 0 && l.share <= 1) {
		l.share = DefaultLocalShare
	}
	return l
}

func (l *Limiter) bucket(k Key, now time.Time) *bucket {
	b, ok := l.buckets[k]
	if ok {
		return b
	}
	if len(l.buckets) >= maxKeys {
		l.sweep(now)
	}
	b = &bucket{}
	if lim := l.limitFor(k).scaled(l.share); lim.PerSecond > 0 {
		b.lim = rate.NewLimiter(rate.Limit(lim.PerSecond), lim.burst()) // full
	}
	l.buckets[k] = b
	return b
}

// sweep drops buckets that are neither paused nor partly drained: recreating them is exact.
func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if now.Before(b.until) {
			continue
		}
		if b.lim != nil && b.lim.TokensAt(now) < float64(b.lim.Burst()) {
			continue
		}
		delete(l.buckets, k)
	}
}

func (l *Limiter) key(k Key) Key {
	if k.Connector == "" {
		k.Connector = l.connector
	}
	return k
}

// Reserve takes a token for k at now if the caller would have to wait at most maxWait for it
// (the rest of a pause, or the next token). Otherwise it takes nothing and reports the wait.
//
// A shared Limiter asks its store (bounded by ctx and the store's own timeout); if the store
// fails it answers from its in-process buckets, with Local set.
func (l *Limiter) Reserve(ctx context.Context, k Key, now time.Time, maxWait time.Duration) Reservation {
	k = l.key(k)
	if l.store != nil {
		// A pause recorded here while the store was down still holds.
		lp, lreason := l.pausedFor(k, now)
		if lp > maxWait {
			count(&metrics.refusals)
			return Reservation{Wait: lp, Paused: true, Reason: lreason}
		}
		r, err := l.store.Reserve(ctx, k, l.limitFor(k), maxWait)
		if err == nil {
			if r.OK && lp > r.Wait {
				r.Wait, r.Paused, r.Reason = lp, true, lreason
			}
			tally(r)
			return r
		}
		count(&metrics.localFallbacks)
	}
	r := l.reserveLocal(k, now, maxWait)
	r.Local = l.store != nil
	tally(r)
	return r
}

func tally(r Reservation) {
	switch {
	case !r.OK:
		count(&metrics.refusals)
	case r.Wait > 0:
		count(&metrics.waits)
	}
}

func (l *Limiter) pausedFor(k Key, now time.Time) (time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[k]; ok && now.Before(b.until) {
		return b.until.Sub(now), b.reason
	}
	return 0, ""
}

func (l *Limiter) reserveLocal(k Key, now time.Time, maxWait time.Duration) Reservation {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(k, now)
	var res Reservation
	if now.Before(b.until) {
		res.Wait, res.Paused, res.Reason = b.until.Sub(now), true, b.reason
	}
	if res.Wait > maxWait {
		return res
	}
	if b.lim != nil {
		// rate.Limiter counts the time between calls as refill, so a caller whose now is older
		// than the previous caller's must not move its clock back (that would refill twice).
		at := now
		if at.Before(b.seen) {
			at = b.seen
		}
		b.seen = at
		r := b.lim.ReserveN(at, 1)
		if !r.OK() { // cannot happen with burst ≥ 1
			return Reservation{Wait: time.Second, Reason: "the rate limit admits no requests"}
		}
		if d := r.DelayFrom(now); d > res.Wait {
			// Tokens accrue during a pause, so the wait is the longer of the two.
			if d > maxWait {
				r.CancelAt(at)
				return Reservation{Wait: d}
			}
			res.Wait, res.Paused, res.Reason = d, false, ""
		}
		res.local, res.l, res.at = r, l, at
	}
	res.OK = true
	return res
}

// Pause stops k until until; a later pause already in force is kept, never shortened.
// reason is a short safe sentence fragment saying who asked for the pause. A shared Limiter
// records the pause in its store too (best effort: the in-process pause holds regardless).
func (l *Limiter) Pause(ctx context.Context, k Key, now, until time.Time, reason string) {
	k = l.key(k)
	l.mu.Lock()
	b := l.bucket(k, now)
	if until.After(b.until) {
		b.until, b.reason = until, reason
	}
	l.mu.Unlock()
	if l.store != nil && until.After(now) {
		_ = l.store.Pause(ctx, k, until.Sub(now), reason) // a failure is the store's to report
	}
}

// PausedUntil reports until when k is paused in this process (the zero time if it never was).
func (l *Limiter) PausedUntil(k Key) time.Time {
	k = l.key(k)
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[k]; ok {
		return b.until
	}
	return time.Time{}
}
