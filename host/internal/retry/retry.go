// Package retry decides whether an upstream answer is worth another attempt, and when.
//
// [Classify] reads a buffered HTTP response the way a careful client of each provider would:
// status codes first (429 and 5xx except 501 are transient; 400, 401, 403, 404 and the other
// 4xx are final), then the provider signals that turn a final-looking answer into a rate limit
// or an exhausted quota, and the headers that say how long to wait:
//
//   - Retry-After, in delay-seconds or as an HTTP date, on any status;
//   - GitHub: x-ratelimit-remaining: 0 with x-ratelimit-reset (epoch seconds) — a 403 or 429
//     is then a rate limit, and even a 200 pauses the bucket until the reset; a 403 or 429
//     whose body mentions a "secondary rate limit" is a rate limit (wait at least a minute,
//     as GitHub asks, when no header says otherwise);
//   - Salesforce: a 403 REQUEST_LIMIT_EXCEEDED is an exhausted daily quota (not retried, the
//     host pauses), unless its message names the concurrent long-running request limit
//     (ConcurrentPerOrgLongTxn), which clears within seconds: a short rate limit. Its usage is
//     read from Sforce-Limit-Info ("api-usage=N/M; per-app-api-usage=…", items separated by
//     ";") for the message. A successful answer never pauses, whatever its api-usage: Salesforce
//     lets an org go over its allocation for a while, and only a refusal says it is used up;
//   - Slack: a 429 (with Retry-After), or HTTP 200 with {"ok":false,"error":"ratelimited"}.
//
// Signals are recognised by their shape, not by host name, so a provider that copies GitHub's
// headers is understood too.
//
// [Policy.Backoff] is capped exponential backoff with full jitter (AWS Architecture Blog,
// "Exponential Backoff And Jitter"): attempt n waits a uniformly random time in
// [0, min(MaxDelay, BaseDelay·2ⁿ⁻¹)].
package retry

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Defaults for zero Policy fields.
const (
	DefaultMaxAttempts = 3
	DefaultBaseDelay   = 200 * time.Millisecond
	DefaultMaxDelay    = 5 * time.Second
	DefaultMaxWait     = 10 * time.Second
	DefaultQuotaPause  = 5 * time.Minute
	DefaultSlowTimeout = 5 * time.Second
	// SalesforceConcurrencyWait is the wait after Salesforce refuses a request because too many
	// long-running requests (20 s or more) run at once in the org (REQUEST_LIMIT_EXCEEDED,
	// "ConcurrentPerOrgLongTxn Limit exceeded."), when it names none: long enough for some of
	// them to finish, short enough to retry within a call.
	SalesforceConcurrencyWait = 5 * time.Second
)

// Policy says how often and how patiently to retry. Zero fields mean the defaults.
type Policy struct {
	// MaxAttempts is the number of attempts including the first. 0 means 3; 1 disables retries.
	MaxAttempts int
	// BaseDelay is the backoff ceiling of the first retry; it doubles per retry. 0 means 200 ms.
	BaseDelay time.Duration
	// MaxDelay caps the backoff ceiling. 0 means 5 s.
	MaxDelay time.Duration
	// MaxWait is the longest a request is held for a server-requested wait (Retry-After, a
	// rate-limit reset) or a paused or drained bucket. A longer wait fails the request at once
	// with rate_limited and the time to retry. 0 means 10 s.
	MaxWait time.Duration
	// AttemptTimeout bounds each attempt, so a hung upstream leaves time for a retry. 0 means
	// none: an attempt may use the rest of the request's time.
	AttemptTimeout time.Duration
	// QuotaPause is how long requests to a host are paused after it refuses a request because a
	// quota is exhausted without saying when it resets (Salesforce's daily TotalRequests). 0
	// means 5 minutes.
	QuotaPause time.Duration
	// SlowTimeout: a request cut off by its caller's deadline (not by AttemptTimeout) counts as
	// an upstream failure for the circuit breaker only if it ran at least this long; a caller
	// that allows 50 ms says nothing about the upstream. 0 means 5 s.
	SlowTimeout time.Duration
}

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.MaxWait <= 0 {
		p.MaxWait = DefaultMaxWait
	}
	if p.QuotaPause <= 0 {
		p.QuotaPause = DefaultQuotaPause
	}
	if p.SlowTimeout <= 0 {
		p.SlowTimeout = DefaultSlowTimeout
	}
	return p
}

// Backoff is the wait before retry number retry (1 for the first retry): a uniformly random
// duration in [0, min(MaxDelay, BaseDelay·2^(retry-1))], drawn with randN, which returns a value
// in [0, n) like math/rand/v2.Int64N. p must have its defaults applied.
func (p Policy) Backoff(retry int, randN func(n int64) int64) time.Duration {
	ceil := p.MaxDelay
	if retry < 1 {
		retry = 1
	}
	if retry <= 30 {
		if d := p.BaseDelay << (retry - 1); d > 0 && d < ceil {
			ceil = d
		}
	}
	return time.Duration(randN(int64(ceil) + 1))
}

// Class is what an answer means for retrying.
type Class int

// The classes.
const (
	// Final: deliver the answer (success, or a client error the caller must fix).
	Final Class = iota
	// Transient: a server-side failure; another attempt may succeed. Counts against the breaker.
	Transient
	// RateLimited: the upstream refused because of the request rate; retry after Wait.
	RateLimited
	// QuotaExhausted: a long-term quota is used up; do not retry, pause the host.
	QuotaExhausted
)

func (c Class) String() string {
	switch c {
	case Final:
		return "final"
	case Transient:
		return "transient"
	case RateLimited:
		return "rate limited"
	case QuotaExhausted:
		return "quota exhausted"
	}
	return "unknown"
}

// Verdict is the classification of one response.
type Verdict struct {
	Class Class
	// Wait is the upstream's wait (Retry-After, a reset time), 0 when it named none.
	Wait time.Duration
	// PauseUntil, if not zero, is when the host's bucket may send again: set for rate limits and
	// quotas with a known end, including on successful responses that report an exhausted
	// quota (GitHub x-ratelimit-remaining: 0). QuotaExhausted with no known end leaves it zero:
	// the caller picks the pause.
	PauseUntil time.Time
	// Quota reports that the response refused the request because a long-term quota is used up,
	// without saying when it resets (Salesforce): the caller pauses the host for its
	// Policy.QuotaPause. Only a refusal (QuotaExhausted) sets it.
	Quota bool
	// Reason is a short, safe description for messages and logs ("HTTP 429", "GitHub secondary
	// rate limit").
	Reason string
}

// Header names, canonical.
var (
	hRetryAfter = textproto.CanonicalMIMEHeaderKey("Retry-After")
	hRemaining  = textproto.CanonicalMIMEHeaderKey("X-RateLimit-Remaining")
	hReset      = textproto.CanonicalMIMEHeaderKey("X-RateLimit-Reset")
	hSforce     = textproto.CanonicalMIMEHeaderKey("Sforce-Limit-Info")
)

// maxSignalWait bounds a wait read from a header, so a bogus date cannot overflow anything.
const maxSignalWait = 48 * time.Hour

// Classify classifies a complete response received at now. header must have canonical keys
// (as net/http produces); body is the buffered body.
func Classify(now time.Time, status int, header map[string][]string, body []byte) Verdict {
	var v Verdict
	wait := RetryAfter(now, first(header, hRetryAfter))

	// GitHub-style headers: an exhausted primary limit pauses until the reset on any status.
	var resetAt time.Time
	if strings.TrimSpace(first(header, hRemaining)) == "0" {
		if t, ok := epoch(first(header, hReset)); ok && t.After(now) {
			resetAt = t
		}
	}
	switch {
	case status == http.StatusTooManyRequests:
		v.Class, v.Reason = RateLimited, "HTTP 429 Too Many Requests"
		if !resetAt.IsZero() && wait == 0 {
			wait, v.Reason = resetAt.Sub(now), "the API rate limit is exhausted (x-ratelimit-remaining: 0)"
		}
		if bytes.Contains(bytes.ToLower(body), []byte("secondary rate limit")) {
			v.Reason = "GitHub secondary rate limit"
			if wait == 0 {
				wait = time.Minute
			}
		}
	case status == http.StatusForbidden && bytes.Contains(body, []byte("REQUEST_LIMIT_EXCEEDED")) &&
		bytes.Contains(body, []byte("ConcurrentPerOrgLongTxn")):
		v.Class, v.Reason = RateLimited, "Salesforce ConcurrentPerOrgLongTxn: too many long-running requests at once in the org"
		if wait == 0 {
			wait = SalesforceConcurrencyWait
		}
	case status == http.StatusForbidden && bytes.Contains(body, []byte("REQUEST_LIMIT_EXCEEDED")):
		v.Class, v.Reason = QuotaExhausted, "Salesforce REQUEST_LIMIT_EXCEEDED: the org's API request quota is used up"
		if used, limit, ok := SforceUsage(first(header, hSforce)); ok {
			v.Reason += " (api-usage=" + strconv.FormatInt(used, 10) + "/" + strconv.FormatInt(limit, 10) + ")"
		}
	case status == http.StatusForbidden && !resetAt.IsZero():
		v.Class, v.Reason = RateLimited, "the API rate limit is exhausted (x-ratelimit-remaining: 0)"
		if wait == 0 {
			wait = resetAt.Sub(now)
		}
	case status == http.StatusForbidden && bytes.Contains(bytes.ToLower(body), []byte("secondary rate limit")):
		v.Class, v.Reason = RateLimited, "GitHub secondary rate limit"
		if wait == 0 {
			wait = time.Minute // GitHub: "wait for at least one minute before retrying"
		}
	case status >= 500 && status != http.StatusNotImplemented && status <= 599:
		v.Class, v.Reason = Transient, "HTTP "+strconv.Itoa(status)
	case status == http.StatusOK && slackRateLimited(header, body):
		v.Class, v.Reason = RateLimited, `Slack error "ratelimited"`
	}
	v.Wait = wait

	switch {
	case v.Class == RateLimited && wait > 0:
		v.PauseUntil = now.Add(wait)
	case v.Class == Transient && wait > 0 && status == http.StatusServiceUnavailable:
		v.PauseUntil = now.Add(wait) // the server said when it will be back
	case v.Class == Final && !resetAt.IsZero():
		// This answer is good, the next ones would not be.
		v.PauseUntil, v.Reason = resetAt, "the API rate limit is exhausted (x-ratelimit-remaining: 0)"
	}
	v.Quota = v.Class == QuotaExhausted
	return v
}

// RetryAfter parses a Retry-After value (delay-seconds or an HTTP date) relative to now.
// It returns 0 for an absent, unreadable or past value.
func RetryAfter(now time.Time, v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return min(time.Duration(min(secs, int64(maxSignalWait/time.Second)))*time.Second, maxSignalWait)
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxSignalWait)
		}
	}
	return 0
}

func epoch(v string) (time.Time, bool) {
	secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || secs <= 0 || secs > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(secs, 0), true
}

// SforceUsage reads the org-wide "api-usage=N/M" item of a Sforce-Limit-Info header value.
// Salesforce separates items with ";" ("api-usage=10018/100000; api-bursts=1/750" or
// "api-usage=18/5000; per-app-api-usage=17/250(appName=sample-app)"); other items, including
// per-app-api-usage, are skipped. ok is false when there is no readable api-usage item.
func SforceUsage(v string) (used, limit int64, ok bool) {
	for item := range strings.SplitSeq(v, ";") {
		usage, found := strings.CutPrefix(strings.TrimSpace(item), "api-usage=")
		if !found {
			continue
		}
		ns, ms, slash := strings.Cut(usage, "/")
		n, err1 := strconv.ParseInt(strings.TrimSpace(ns), 10, 64)
		m, err2 := strconv.ParseInt(strings.TrimSpace(ms), 10, 64)
		if slash && err1 == nil && err2 == nil && n >= 0 && m > 0 {
			return n, m, true
		}
		return 0, 0, false
	}
	return 0, 0, false
}

// slackRateLimited recognises Slack's HTTP 200 {"ok":false,"error":"ratelimited"}.
func slackRateLimited(header map[string][]string, body []byte) bool {
	if len(body) > 64<<10 || !bytes.Contains(body, []byte("ratelimited")) {
		return false
	}
	if ct := first(header, "Content-Type"); ct != "" && !strings.Contains(ct, "json") {
		return false
	}
	var env struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil {
		return false
	}
	return env.OK != nil && !*env.OK && env.Error == "ratelimited"
}

func first(h map[string][]string, k string) string {
	if vs := h[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}
