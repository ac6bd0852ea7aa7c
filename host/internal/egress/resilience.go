package egress

import (
	"context"
	"expvar"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/host/internal/breaker"
	"github.com/airlock-dev/airlock/host/internal/ratelimit"
	"github.com/airlock-dev/airlock/host/internal/retry"
	"github.com/airlock-dev/airlock/internal/abi"
)

// RateLimit is a static request rate for the upstream requests that match Host and PathPrefix.
// Each matching request goes to the bucket of the most specific entry (the longest PathPrefix;
// the first in the list on a tie), one bucket per (host, entry, credential slot, subject), so
// Slack's per-method tiers ("/api/chat.postMessage" at 1/s, "/api/" at 20/s) are separate
// buckets. Requests without a credential share one bucket per host and entry.
//
// An entry with Tighten set (a grant's override) may only lower a limit: for a request it
// matches, the rate and burst are the smaller of its own and those of the most specific entry
// without Tighten; where no such entry matches, it is the limit.
//
// Mapping from manifests (done by the host): each network rule's rate_limit becomes
// RateLimit{Host: rule host, PathPrefix: rule path prefix, PerSecond, Burst}; each grant
// rate_limits entry becomes the same with Tighten: true.
type RateLimit struct {
	// Host is an exact host name or IP literal, or "*.example.com" (every subdomain), as in Rule.
	Host string
	// PathPrefix limits the entry to paths under it, on segment boundaries, as in Rule.
	// Empty means "/" (the whole host).
	PathPrefix string
	// PerSecond is the sustained rate, in requests per second. It must be positive; 0.5 is one
	// request every two seconds.
	PerSecond float64
	// Burst is how many requests may go at once after an idle period. 0 means
	// max(1, ceil(PerSecond)).
	Burst int
	// Tighten marks an override that may only lower the limits it overlaps (see above).
	Tighten bool
}

// RetryPolicy says how failed attempts are retried; see [retry.Policy] for the fields and their
// defaults.
type RetryPolicy = retry.Policy

// BreakerPolicy configures the per-host circuit breakers; see [breaker.Config].
type BreakerPolicy = breaker.Config

const (
	// idempotencyHeader carries HTTPRequest.IdempotencyKey to the upstream unless the plugin
	// set it itself.
	idempotencyHeader = "Idempotency-Key"
	maxIdempotencyKey = 255
	// maxBreakers bounds the per-host breakers kept; beyond it, closed ones are dropped.
	maxBreakers = 4096
)

type rateRule struct {
	host    hostPattern
	prefix  string // "/" for the whole host
	tighten bool
	limit   ratelimit.Limit
}

func newRateRule(rl RateLimit) (rateRule, error) {
	hp, err := parseHostPattern(rl.Host)
	if err != nil {
		return rateRule{}, err
	}
	if !(rl.PerSecond > 0) || math.IsInf(rl.PerSecond, 0) {
		return rateRule{}, fmt.Errorf("per_second is %v; want a positive number", rl.PerSecond)
	}
	if rl.Burst < 0 {
		return rateRule{}, fmt.Errorf("burst is negative (%d)", rl.Burst)
	}
	prefix := rl.PathPrefix
	if prefix == "" {
		prefix = "/"
	}
	if !strings.HasPrefix(prefix, "/") || strings.ContainsAny(prefix, "?#") || hasDotSegment(prefix) {
		return rateRule{}, fmt.Errorf("path prefix %q must start with / and have no query, fragment or dot segments", rl.PathPrefix)
	}
	return rateRule{host: hp, prefix: prefix, tighten: rl.Tighten, limit: ratelimit.Limit{PerSecond: rl.PerSecond, Burst: rl.Burst}}, nil
}

// specificity orders path prefixes: a longer one is more specific.
func specificity(prefix string) int { return len(strings.TrimSuffix(prefix, "/")) }

// rateRuleFor returns the bucket name (the path prefix of the most specific matching entry) of a
// request to host and path, or "" when no entry matches.
func (c *Client) rateRuleFor(host, path string) string {
	best, found := "", false
	for _, r := range c.limits {
		if r.host.matchName(host) && matchPrefix(r.prefix, path) && (!found || specificity(r.prefix) > specificity(best)) {
			best, found = r.prefix, true
		}
	}
	return best
}

// limitFor is the static limit of a bucket: the entries that match k.Host and cover k.Rule (the
// most specific entry a request matched: every entry that matched the request covers it).
func (c *Client) limitFor(k ratelimit.Key) ratelimit.Limit {
	if k.Rule == "" {
		return ratelimit.Limit{}
	}
	var base, tight *rateRule
	for i := range c.limits {
		r := &c.limits[i]
		if !r.host.matchName(k.Host) || !matchPrefix(r.prefix, k.Rule) {
			continue
		}
		if !r.tighten {
			if base == nil || specificity(r.prefix) > specificity(base.prefix) {
				base = r
			}
			continue
		}
		if tight == nil {
			t := *r
			tight = &t
			continue
		}
		tight.limit = tighter(tight.limit, r.limit)
	}
	switch {
	case base == nil && tight == nil:
		return ratelimit.Limit{}
	case base == nil:
		return tight.limit
	case tight == nil:
		return base.limit
	}
	return tighter(base.limit, tight.limit)
}

// tighter is the smaller rate and the smaller burst of a and b (both positive rates).
func tighter(a, b ratelimit.Limit) ratelimit.Limit {
	burst := func(l ratelimit.Limit) int {
		if l.Burst > 0 {
			return l.Burst
		}
		return max(1, int(math.Ceil(l.PerSecond)))
	}
	return ratelimit.Limit{PerSecond: min(a.PerSecond, b.PerSecond), Burst: min(burst(a), burst(b))}
}

// limitKey is the rate-limit bucket of a request. Key.Connector is left empty: a shared
// Limiter fills it from its SharedConfig.Connector.
func (c *Client) limitKey(ctx context.Context, h *hop) ratelimit.Key {
	return ratelimit.Key{Host: h.t.host, Rule: c.rateRuleFor(h.t.host, h.t.u.EscapedPath()), Credential: h.credName,
		Subject: requestSubject(ctx)}
}

// requestSubject is the subject (tenant, connected account) a request is made for, which keys
// its rate-limit bucket. Plumbing point: the credential change carries the subject with the
// request; until then the host can set it with [WithSubject].
func requestSubject(ctx context.Context) string {
	s, _ := ctx.Value(subjectKey{}).(string)
	return s
}

type subjectKey struct{}

// WithSubject returns a context under which Do keys rate limits by subject as well (one bucket
// per connection of a connector).
func WithSubject(ctx context.Context, subject string) context.Context {
	return context.WithValue(ctx, subjectKey{}, subject)
}

func (p hostPattern) matchName(host string) bool {
	if p.wildcard {
		_, err := netip.ParseAddr(host)
		return err != nil && strings.HasSuffix(host, p.host)
	}
	return host == p.host
}

// notSentError marks a dial failure: no byte of the request reached the upstream, so replaying
// it is safe whatever the method.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

func (c *Client) breakerFor(host string) *breaker.Breaker {
	c.brMu.Lock()
	defer c.brMu.Unlock()
	b, ok := c.breakers[host]
	if !ok {
		if len(c.breakers) >= maxBreakers {
			now := time.Now()
			for h, old := range c.breakers {
				if old.State(now) == breaker.Closed {
					delete(c.breakers, h)
				}
			}
		}
		bc := c.breakerC
		if c.onOpen != nil {
			bc.OnOpen = func(coolDown time.Duration) { c.onOpen(host, coolDown) }
		}
		b = breaker.New(bc)
		c.breakers[host] = b
	}
	return b
}

// BreakerStates returns the state at now of each upstream host's circuit breaker (hosts the
// client has not called have none: they are closed).
func (c *Client) BreakerStates(now time.Time) map[string]breaker.State {
	c.brMu.Lock()
	defer c.brMu.Unlock()
	out := make(map[string]breaker.State, len(c.breakers))
	for h, b := range c.breakers {
		out[h] = b.State(now)
	}
	return out
}

// idempotent reports whether method may be replayed without an idempotency key (RFC 9110 §9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// run sends h with retries. For each attempt, in order: the circuit breaker of the upstream host
// (open: fail at once), the rate limiter of (host, credential) (a wait longer than MaxWait or the
// rest of the deadline: fail at once), send, then the classifier decides.
func (c *Client) run(ctx context.Context, h *hop) abi.HTTPResponse {
	p := c.retry
	key := c.limitKey(ctx, h)
	br := c.breakerFor(h.t.host)
	replayable := idempotent(h.method) || h.keyed

	var giveUp abi.HTTPResponse // what to answer if the next attempt cannot be made
	var waited time.Duration    // backoff slept before this attempt
	for attempt := 1; ; attempt++ {
		h.attempt, h.wait = attempt, waited
		now := time.Now()
		bd := br.Allow(now)
		if !bd.OK {
			metrics.breakerRefusals.Add(1)
			if attempt > 1 {
				return giveUp
			}
			return c.refuse(ctx, h, &failure{code: abi.CodeUnavailable, category: abi.Retryable, retryAfter: bd.RetryAfter,
				msg: fmt.Sprintf("requests to %s are paused for %s because its recent requests failed (network errors, timeouts or 5xx); try again after that",
					h.t.host, ratelimit.WaitText(bd.RetryAfter))})
		}
		res := c.limiter.Reserve(ctx, key, now, c.maxWait(ctx, now))
		if !res.OK {
			br.Done(now, bd, breaker.Ignore)
			metrics.rateRefusals.Add(1)
			if attempt > 1 {
				return giveUp
			}
			return c.refuse(ctx, h, c.rateLimited(h, key, res.Wait, res.Reason, res.Paused))
		}
		if res.Wait > 0 {
			if err := sleep(ctx, res.Wait); err != nil {
				br.Done(time.Now(), bd, breaker.Ignore)
				if attempt > 1 {
					return giveUp
				}
				return c.refuse(ctx, h, c.classify(ctx, err, h))
			}
			h.wait += res.Wait
		}

		actx, cancel := ctx, context.CancelFunc(func() {})
		if p.AttemptTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, p.AttemptTimeout)
		}
		start := time.Now()
		resp, f := c.send(actx, h)
		ran := time.Since(start)
		attemptTimedOut := actx.Err() == context.DeadlineExceeded && ctx.Err() == nil
		cancel()
		now = time.Now()

		var (
			retryable bool
			wait      time.Duration // the upstream's requested wait
		)
		if f != nil {
			outcome := breaker.Ignore
			switch {
			case f.transient && f.code == abi.CodeTimeout && !attemptTimedOut && ran < p.SlowTimeout:
				// The caller's short deadline cut it off: that says nothing about the upstream.
			case f.transient:
				outcome = breaker.Failure
			case f.answered:
				outcome = breaker.Success
			}
			br.Done(now, bd, outcome)
			if attemptTimedOut {
				f.msg = fmt.Sprintf("%s did not answer within %s", h.t.display(), ratelimit.WaitText(p.AttemptTimeout))
			}
			retryable = f.transient && (replayable || f.notSent)
			if attempt > 1 {
				f.msg += fmt.Sprintf(" (after %d attempts)", attempt)
			}
			giveUp = f.response(c.scrub)
		} else {
			v := retry.Classify(now, resp.Status, resp.Headers, resp.Body)
			outcome := breaker.Success
			if v.Class == retry.Transient {
				outcome = breaker.Failure
			}
			br.Done(now, bd, outcome)
			if !v.PauseUntil.IsZero() {
				c.limiter.Pause(ctx, key, now, v.PauseUntil, v.Reason)
			}
			if v.Quota {
				c.limiter.Pause(ctx, key, now, now.Add(p.QuotaPause), v.Reason)
			}
			wait = v.Wait
			switch v.Class {
			case retry.Final:
				return resp
			case retry.QuotaExhausted:
				return c.rateLimited(h, key, p.QuotaPause, v.Reason, true).response(c.scrub)
			case retry.RateLimited:
				giveUp = c.rateLimited(h, key, max(wait, time.Second), v.Reason, true).response(c.scrub)
			case retry.Transient:
				giveUp = resp // a 5xx goes to the plugin as a response, as without retries
			}
			retryable = replayable
		}

		if !retryable || attempt >= p.MaxAttempts || ctx.Err() != nil {
			return giveUp
		}
		delay := c.retry.Backoff(attempt, c.randN)
		if wait > p.MaxWait {
			return giveUp // the upstream asks for longer than a call may be held
		}
		if remaining, ok := remainingTime(ctx, now); ok && max(delay, wait) >= remaining {
			return giveUp // clamped: the wait would outlast the deadline
		}
		if err := sleep(ctx, delay); err != nil {
			return giveUp
		}
		waited = delay // the limiter adds the rest of an upstream-requested pause
		metrics.retries.Add(1)
	}
}

// Process-wide counters of the retry loop, published with expvar as "airlock_egress" and
// readable with [Snapshot].
var metrics struct {
	retries         atomic.Int64 // attempts after the first
	breakerRefusals atomic.Int64 // requests refused at once by an open breaker
	rateRefusals    atomic.Int64 // requests refused at once by a rate limit or pause
}

func init() {
	expvar.Publish("airlock_egress", expvar.Func(func() any { return Snapshot() }))
}

// Snapshot returns the counters of every Client in the process: "retries" (attempts after the
// first), "breaker_refusals" (requests an open circuit breaker refused) and "rate_refusals"
// (requests refused because their rate-limit wait was too long). The limiter's and breakers'
// own counters are in ratelimit.Snapshot and breaker.Snapshot.
func Snapshot() map[string]int64 {
	return map[string]int64{
		"retries":          metrics.retries.Load(),
		"breaker_refusals": metrics.breakerRefusals.Load(),
		"rate_refusals":    metrics.rateRefusals.Load(),
	}
}

// refuse records and returns a failure decided before sending anything.
func (c *Client) refuse(ctx context.Context, h *hop, f *failure) abi.HTTPResponse {
	rec := Record{Method: h.method, URL: h.t.display(), Host: h.t.host, Credential: h.credName,
		Decision: f.decision(), Reason: f.why(), Attempt: h.attempt, Wait: h.wait}
	c.emit(ctx, rec, f)
	return f.response(c.scrub)
}

// rateLimited is the failure for a request that must wait wait before it may be sent.
func (c *Client) rateLimited(h *hop, key ratelimit.Key, wait time.Duration, reason string, upstream bool) *failure {
	f := &failure{code: abi.CodeRateLimited, category: abi.Retryable, retryAfter: wait}
	switch {
	case reason != "":
		f.msg = fmt.Sprintf("%s is rate limiting this connector (%s); try again in %s", h.t.host, reason, ratelimit.WaitText(wait))
	case upstream:
		f.msg = fmt.Sprintf("%s is rate limiting this connector; try again in %s", h.t.host, ratelimit.WaitText(wait))
	default:
		lim := c.limitFor(key)
		f.msg = fmt.Sprintf("the connector has used up its request rate for %s (%s requests per second); try again in %s",
			h.t.host, strconv.FormatFloat(lim.PerSecond, 'g', 4, 64), ratelimit.WaitText(wait))
	}
	return f
}

// maxWait is how long a request may wait for the rate limiter at now: MaxWait, and less than
// the rest of the context's time.
func (c *Client) maxWait(ctx context.Context, now time.Time) time.Duration {
	w := c.retry.MaxWait
	if remaining, ok := remainingTime(ctx, now); ok && remaining <= w {
		w = max(0, remaining-time.Millisecond)
	}
	return w
}

func remainingTime(ctx context.Context, now time.Time) (time.Duration, bool) {
	d, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	return d.Sub(now), true
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
