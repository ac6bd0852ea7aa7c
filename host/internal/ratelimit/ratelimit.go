// Package ratelimit keeps in-process token buckets, one per key, that upstreams can pause.
//
// A [Limiter] holds a bucket for each [Key] (an upstream host and the credential slot used on
// it), sized by the [Limit] its host is configured with. Besides the static rate, a bucket can be
// paused until a point in time: the egress client pauses it when an upstream says so
// (Retry-After, an exhausted GitHub or Salesforce quota, a Slack 429).
//
// Reserve never blocks: it says how long the caller must wait, or that the wait would be longer
// than the caller can afford, in which case nothing is consumed:
//
//	l := ratelimit.New(func(host string) ratelimit.Limit { return ratelimit.Limit{PerSecond: 5, Burst: 10} })
//	r := l.Reserve(ratelimit.Key{Host: "api.github.com", Credential: "token"}, time.Now(), 2*time.Second)
//	if !r.OK {
//		// fail now: try again in r.Wait (r.Reason says why)
//	}
//	time.Sleep(r.Wait) // or a timer that also watches the context
//
// Holding a goroutine for the wait is the caller's choice; the limiter only does arithmetic.
package ratelimit

import (
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

// Key names one bucket.
type Key struct {
	Host       string // upstream host name, lowercase
	Credential string // credential slot name, "" for none
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
}

// maxKeys bounds the number of buckets; beyond it, idle buckets are dropped.
const maxKeys = 4096

// Limiter is a set of token buckets. It is safe for concurrent use. Its zero value is not
// usable; call [New].
type Limiter struct {
	limitFor func(host string) Limit

	mu      sync.Mutex
	buckets map[Key]*bucket
}

type bucket struct {
	lim    *rate.Limiter // nil: no static limit
	until  time.Time     // paused until
	reason string
}

// New returns a Limiter whose buckets take their rate from limitFor, called once per new key.
// A nil limitFor means no static limits.
func New(limitFor func(host string) Limit) *Limiter {
	if limitFor == nil {
		limitFor = func(string) Limit { return Limit{} }
	}
	return &Limiter{limitFor: limitFor, buckets: make(map[Key]*bucket)}
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
	if lim := l.limitFor(k.Host); lim.PerSecond > 0 {
		burst := lim.Burst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(lim.PerSecond)))
		}
		b.lim = rate.NewLimiter(rate.Limit(lim.PerSecond), burst) // full
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

// Reserve takes a token for k at now if the caller would have to wait at most maxWait for it
// (the rest of a pause, or the next token). Otherwise it takes nothing and reports the wait.
func (l *Limiter) Reserve(k Key, now time.Time, maxWait time.Duration) Reservation {
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
		r := b.lim.ReserveN(now, 1)
		if !r.OK() { // cannot happen with burst ≥ 1
			return Reservation{Wait: time.Second, Reason: "the rate limit admits no requests"}
		}
		if d := r.DelayFrom(now); d > res.Wait {
			// Tokens accrue during a pause, so the wait is the longer of the two.
			if d > maxWait {
				r.CancelAt(now)
				return Reservation{Wait: d}
			}
			res.Wait, res.Paused, res.Reason = d, false, ""
		}
	}
	res.OK = true
	return res
}

// Pause stops k until until; a later pause already in force is kept, never shortened.
// reason is a short safe sentence fragment saying who asked for the pause.
func (l *Limiter) Pause(k Key, now, until time.Time, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(k, now)
	if until.After(b.until) {
		b.until, b.reason = until, reason
	}
}

// PausedUntil reports until when k is paused (the zero time if it never was).
func (l *Limiter) PausedUntil(k Key) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[k]; ok {
		return b.until
	}
	return time.Time{}
}
