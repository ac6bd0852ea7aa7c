package egress

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/host/internal/breaker"
	"github.com/airlock-dev/airlock/host/internal/ratelimit"
	"github.com/airlock-dev/airlock/host/internal/retry"
	"github.com/airlock-dev/airlock/internal/abi"
)

// step is one scripted upstream answer.
type step struct {
	status int
	header map[string]string // values may use {now+N}: epoch seconds, {date+N}: an HTTP date
	body   string
	reset  bool // close the connection without answering
	hang   bool // never answer
}

func (s step) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.reset:
		reset(w)
		return
	case s.hang:
		hang(r)
		return
	}
	for k, v := range s.header {
		w.Header().Set(k, expand(v))
	}
	w.WriteHeader(s.status)
	fmt.Fprint(w, s.body)
}

// expand replaces {now+N} with the epoch second N seconds from now and {date+N} with that time
// as an HTTP date.
func expand(v string) string {
	for _, kind := range []string{"now", "date"} {
		i := strings.Index(v, "{"+kind+"+")
		if i < 0 {
			continue
		}
		j := strings.Index(v[i:], "}")
		n, _ := strconv.Atoi(v[i+len(kind)+2 : i+j])
		t := time.Now().Add(time.Duration(n) * time.Second)
		s := strconv.FormatInt(t.Unix(), 10)
		if kind == "date" {
			s = t.UTC().Format(http.TimeFormat)
		}
		v = v[:i] + s + v[i+j+1:]
	}
	return v
}

func script(steps ...step) stepFunc {
	return func(n int, w http.ResponseWriter, r *http.Request) {
		steps[min(n, len(steps))-1].serve(w, r)
	}
}

var (
	ok200   = step{status: 200, body: `{"ok":true}`}
	s503    = step{status: 503}
	sReset  = step{reset: true}
	sHang   = step{hang: true}
	slackRL = step{status: 200, header: map[string]string{"Content-Type": "application/json"}, body: `{"ok":false,"error":"ratelimited"}`}
	github0 = map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "{now+5}"}
	sfLimit = step{status: 403, body: `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`}
	// sfConcurrent: too many long-running requests at once in the org, not the daily quota.
	sfConcurrent = step{status: 403, body: `[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`}
	ms           = time.Millisecond
	sec          = time.Second
)

// TestRetrySequences runs scripted upstream answers in a synctest bubble, with the jitter fixed
// at its ceiling (200 ms before the first retry, 400 ms before the second), and checks the
// exact number of requests the upstream saw, when they arrived, and what the plugin got.
func TestRetrySequences(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		key      string            // idempotency key
		header   map[string]string // plugin headers
		steps    []step
		refuse   int           // dials refused first
		retry    RetryPolicy   // config
		deadline time.Duration // ctx deadline; 0 none

		wantAt     []time.Duration // arrival of each upstream request
		wantStatus int
		wantCode   string
		wantAfter  time.Duration // RetryAfterMS
		wantTook   time.Duration // how long Do took
	}{
		{name: "503 503 200", steps: []step{s503, s503, ok200},
			wantAt: []time.Duration{0, 200 * ms, 600 * ms}, wantStatus: 200, wantTook: 600 * ms},
		{name: "503 exhausted", steps: []step{s503},
			wantAt: []time.Duration{0, 200 * ms, 600 * ms}, wantStatus: 503, wantTook: 600 * ms},
		{name: "500 502 504 retried", steps: []step{{status: 500}, {status: 502}, {status: 504}, ok200},
			wantAt: []time.Duration{0, 200 * ms, 600 * ms}, wantStatus: 504, wantTook: 600 * ms},
		{name: "max attempts 5", retry: RetryPolicy{MaxAttempts: 5}, steps: []step{s503},
			wantAt: []time.Duration{0, 200 * ms, 600 * ms, 1400 * ms, 3000 * ms}, wantStatus: 503, wantTook: 3000 * ms},
		{name: "backoff cap", retry: RetryPolicy{MaxAttempts: 4, BaseDelay: sec, MaxDelay: 1500 * ms}, steps: []step{s503},
			wantAt: []time.Duration{0, sec, 2500 * ms, 4000 * ms}, wantStatus: 503, wantTook: 4000 * ms},
		{name: "retries disabled", retry: RetryPolicy{MaxAttempts: 1}, steps: []step{s503},
			wantAt: []time.Duration{0}, wantStatus: 503},
		{name: "429 Retry-After seconds", steps: []step{{status: 429, header: map[string]string{"Retry-After": "2"}}, ok200},
			wantAt: []time.Duration{0, 2 * sec}, wantStatus: 200, wantTook: 2 * sec},
		{name: "429 Retry-After date", steps: []step{{status: 429, header: map[string]string{"Retry-After": "{date+3}"}}, ok200},
			wantAt: []time.Duration{0, 3 * sec}, wantStatus: 200, wantTook: 3 * sec},
		{name: "429 Retry-After shorter than backoff", steps: []step{{status: 429, header: map[string]string{"Retry-After": "0"}}, ok200},
			wantAt: []time.Duration{0, 200 * ms}, wantStatus: 200, wantTook: 200 * ms},
		{name: "429 twice", steps: []step{{status: 429, header: map[string]string{"Retry-After": "1"}}},
			wantAt: []time.Duration{0, sec, 2 * sec}, wantCode: abi.CodeRateLimited, wantAfter: sec, wantTook: 2 * sec},
		{name: "429 Retry-After an hour", steps: []step{{status: 429, header: map[string]string{"Retry-After": "3600"}}},
			wantAt: []time.Duration{0}, wantCode: abi.CodeRateLimited, wantAfter: time.Hour},
		{name: "503 Retry-After", steps: []step{{status: 503, header: map[string]string{"Retry-After": "1"}}, ok200},
			wantAt: []time.Duration{0, sec}, wantStatus: 200, wantTook: sec},
		{name: "connection reset", steps: []step{sReset, sReset, ok200},
			wantAt: []time.Duration{0, 200 * ms, 600 * ms}, wantStatus: 200, wantTook: 600 * ms},
		{name: "connection reset exhausted", steps: []step{sReset},
			wantAt: []time.Duration{0, 200 * ms, 600 * ms}, wantCode: abi.CodeUpstreamError, wantTook: 600 * ms},
		{name: "attempt timeout", retry: RetryPolicy{AttemptTimeout: sec}, steps: []step{sHang, ok200},
			wantAt: []time.Duration{0, 1200 * ms}, wantStatus: 200, wantTook: 1200 * ms},
		{name: "timeout by the deadline is not retried", steps: []step{sHang}, deadline: 2 * sec,
			wantAt: []time.Duration{0}, wantCode: abi.CodeTimeout, wantTook: 2 * sec},
		{name: "connection refused", refuse: 2, steps: []step{ok200},
			wantAt: []time.Duration{600 * ms}, wantStatus: 200, wantTook: 600 * ms},

		// Not retried.
		{name: "400", steps: []step{{status: 400}, ok200}, wantAt: []time.Duration{0}, wantStatus: 400},
		{name: "401", steps: []step{{status: 401}, ok200}, wantAt: []time.Duration{0}, wantStatus: 401},
		{name: "403", steps: []step{{status: 403}, ok200}, wantAt: []time.Duration{0}, wantStatus: 403},
		{name: "404", steps: []step{{status: 404}, ok200}, wantAt: []time.Duration{0}, wantStatus: 404},
		{name: "501", steps: []step{{status: 501}, ok200}, wantAt: []time.Duration{0}, wantStatus: 501},
		{name: "403 with remaining 1", steps: []step{{status: 403, header: map[string]string{"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "{now+5}"}}, ok200},
			wantAt: []time.Duration{0}, wantStatus: 403},

		// The documented exceptions.
		{name: "GitHub 403 remaining 0", steps: []step{{status: 403, header: github0}, ok200},
			wantAt: []time.Duration{0, 5 * sec}, wantStatus: 200, wantTook: 5 * sec},
		{name: "GitHub 429 remaining 0", steps: []step{{status: 429, header: github0}, ok200},
			wantAt: []time.Duration{0, 5 * sec}, wantStatus: 200, wantTook: 5 * sec},
		{name: "GitHub 403 secondary rate limit", steps: []step{{status: 403, body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`}, ok200},
			wantAt: []time.Duration{0}, wantCode: abi.CodeRateLimited, wantAfter: time.Minute},
		{name: "GitHub secondary rate limit with Retry-After", steps: []step{{status: 403, header: map[string]string{"Retry-After": "3"}, body: `secondary rate limit`}, ok200},
			wantAt: []time.Duration{0, 3 * sec}, wantStatus: 200, wantTook: 3 * sec},
		{name: "Salesforce REQUEST_LIMIT_EXCEEDED", steps: []step{sfLimit, ok200},
			wantAt: []time.Duration{0}, wantCode: abi.CodeRateLimited, wantAfter: retry.DefaultQuotaPause},
		{name: "Salesforce ConcurrentPerOrgLongTxn is short", steps: []step{sfConcurrent, ok200},
			wantAt: []time.Duration{0, retry.SalesforceConcurrencyWait}, wantStatus: 200, wantTook: retry.SalesforceConcurrencyWait},
		{name: "Slack ratelimited body", steps: []step{slackRL, slackRL, ok200},
			wantAt: []time.Duration{0, 200 * ms, 600 * ms}, wantStatus: 200, wantTook: 600 * ms},
		{name: "Slack ratelimited body exhausted", steps: []step{slackRL},
			wantAt: []time.Duration{0, 200 * ms, 600 * ms}, wantCode: abi.CodeRateLimited, wantAfter: sec, wantTook: 600 * ms},
		{name: "Slack 429", steps: []step{{status: 429, header: map[string]string{"Retry-After": "1"}}, ok200},
			wantAt: []time.Duration{0, sec}, wantStatus: 200, wantTook: sec},

		// Non-idempotent methods.
		{name: "POST 503 without key", method: "POST", steps: []step{s503, ok200}, wantAt: []time.Duration{0}, wantStatus: 503},
		{name: "PATCH reset without key", method: "PATCH", steps: []step{sReset, ok200}, wantAt: []time.Duration{0}, wantCode: abi.CodeUpstreamError},
		{name: "POST 429 without key", method: "POST", steps: []step{{status: 429, header: map[string]string{"Retry-After": "1"}}, ok200},
			wantAt: []time.Duration{0}, wantCode: abi.CodeRateLimited, wantAfter: sec},
		{name: "POST 503 with key", method: "POST", key: "k-123", steps: []step{s503, ok200},
			wantAt: []time.Duration{0, 200 * ms}, wantStatus: 200, wantTook: 200 * ms},
		{name: "POST reset with key", method: "POST", key: "k-123", steps: []step{sReset, ok200},
			wantAt: []time.Duration{0, 200 * ms}, wantStatus: 200, wantTook: 200 * ms},
		{name: "POST refused without key", method: "POST", refuse: 1, steps: []step{ok200},
			wantAt: []time.Duration{200 * ms}, wantStatus: 200, wantTook: 200 * ms},
		{name: "PUT and DELETE are idempotent", method: "DELETE", steps: []step{s503, ok200},
			wantAt: []time.Duration{0, 200 * ms}, wantStatus: 200, wantTook: 200 * ms},

		// Deadline clamping.
		{name: "backoff clamped by deadline", deadline: 500 * ms, steps: []step{s503},
			wantAt: []time.Duration{0, 200 * ms}, wantStatus: 503, wantTook: 200 * ms},
		{name: "Retry-After beyond deadline", deadline: sec, steps: []step{{status: 429, header: map[string]string{"Retry-After": "2"}}, ok200},
			wantAt: []time.Duration{0}, wantCode: abi.CodeRateLimited, wantAfter: 2 * sec},
		{name: "Retry-After beyond MaxWait", retry: RetryPolicy{MaxWait: sec}, steps: []step{{status: 429, header: map[string]string{"Retry-After": "2"}}, ok200},
			wantAt: []time.Duration{0}, wantCode: abi.CodeRateLimited, wantAfter: 2 * sec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPipe(t, Config{Retry: tt.retry}, script(tt.steps...))
				defer p.close()
				p.refuse = tt.refuse
				ctx := context.Background()
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				method := tt.method
				if method == "" {
					method = "GET"
				}
				hdr := map[string][]string{}
				for k, v := range tt.header {
					hdr[k] = []string{v}
				}
				start := time.Now()
				resp := p.c.Do(ctx, abi.HTTPRequest{Method: method, URL: "http://api.example.test/x", Credential: "bearer",
					Body: []byte("{}"), Headers: hdr, IdempotencyKey: tt.key})
				took := time.Since(start)

				if diff := cmp.Diff(tt.wantAt, p.arrivals()); diff != "" {
					t.Errorf("upstream request times mismatch (-want +got):\n%s", diff)
				}
				if took != tt.wantTook {
					t.Errorf("Do took %v, want %v", took, tt.wantTook)
				}
				if tt.wantCode != "" {
					wantError(t, resp, tt.wantCode)
					if resp.Error.Category != abi.Retryable {
						t.Errorf("category = %s, want retryable", resp.Error.Category)
					}
					if got := time.Duration(resp.Error.RetryAfterMS) * ms; got != tt.wantAfter {
						t.Errorf("RetryAfterMS = %v, want %v (%s)", got, tt.wantAfter, resp.Error.Message)
					}
					return
				}
				wantStatus(t, resp, tt.wantStatus)
				for i, r := range p.requests() {
					if got := r.Header.Get("Idempotency-Key"); got != tt.key {
						t.Errorf("request %d: Idempotency-Key = %q, want %q", i+1, got, tt.key)
					}
				}
			})
		})
	}
}

// TestIdempotencyKeyHeader: the key goes upstream unless the plugin set its own header.
func TestIdempotencyKeyHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipe(t, Config{}, script(s503, ok200))
		defer p.close()
		resp := p.c.Do(context.Background(), abi.HTTPRequest{Method: "POST", URL: "http://api.example.test/x",
			Headers: map[string][]string{"idempotency-key": {"plugin-own"}}, IdempotencyKey: "host-key"})
		wantStatus(t, resp, 200)
		reqs := p.requests()
		if len(reqs) != 2 {
			t.Fatalf("upstream saw %d requests, want 2", len(reqs))
		}
		for _, r := range reqs {
			if got := r.Header.Values("Idempotency-Key"); len(got) != 1 || got[0] != "plugin-own" {
				t.Errorf("Idempotency-Key = %q, want the plugin's own", got)
			}
		}
		for _, bad := range []string{"a\nb", " pad", strings.Repeat("k", 256)} {
			resp := p.c.Do(context.Background(), abi.HTTPRequest{Method: "POST", URL: "http://api.example.test/x", IdempotencyKey: bad})
			wantError(t, resp, abi.CodeBadRequest)
		}
	})
}

// TestRetryRecords: one record per attempt, numbered, with the wait before it.
func TestRetryRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipe(t, Config{}, script(s503, sReset, ok200))
		defer p.close()
		wantStatus(t, p.c.Do(context.Background(), abi.HTTPRequest{URL: "http://api.example.test/x", Credential: "bearer"}), 200)
		type rec struct {
			Attempt  int
			Wait     time.Duration
			Status   int
			Decision string
		}
		var got []rec
		for _, r := range p.recs() {
			got = append(got, rec{r.Attempt, r.Wait, r.Status, r.Decision})
		}
		want := []rec{{1, 0, 503, DecisionAllowed}, {2, 200 * ms, 0, DecisionError}, {3, 400 * ms, 200, DecisionAllowed}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("records mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestRateLimitPause: each provider's signal pauses the (host, credential) bucket; a request
// that cannot wait fails at once with rate_limited and the time to retry.
func TestRateLimitPause(t *testing.T) {
	tests := []struct {
		name      string
		first     step
		firstWant int // status of the first Do, or 0 for an error
		pause     time.Duration
		reason    string // in the refusal message
	}{
		{"GitHub remaining 0 on a 200", step{status: 200, header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "{now+30}"}}, 200,
			30 * sec, "x-ratelimit-remaining: 0"},
		{"Salesforce REQUEST_LIMIT_EXCEEDED", sfLimit, 0, retry.DefaultQuotaPause, "REQUEST_LIMIT_EXCEEDED"},
		{"Retry-After seconds", step{status: 429, header: map[string]string{"Retry-After": "20"}}, 0, 20 * sec, "429"},
		{"Retry-After date", step{status: 429, header: map[string]string{"Retry-After": "{date+40}"}}, 0, 40 * sec, "429"},
		{"Slack 429", step{status: 429, header: map[string]string{"Retry-After": "30"}}, 0, 30 * sec, "429"},
		{"Slack ratelimited body with Retry-After", step{status: 200, header: map[string]string{"Content-Type": "application/json", "Retry-After": "15"}, body: `{"ok":false,"error":"ratelimited"}`}, 0,
			15 * sec, "ratelimited"},
		{"GitHub secondary rate limit", step{status: 403, body: "You have exceeded a secondary rate limit"}, 0, time.Minute, "secondary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPipe(t, Config{}, script(tt.first, ok200))
				defer p.close()
				ctx := context.Background()
				get := func(cred string) abi.HTTPResponse {
					return p.c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/x", Credential: cred})
				}
				resp := get("bearer")
				if tt.firstWant != 0 {
					wantStatus(t, resp, tt.firstWant)
				} else {
					wantError(t, resp, abi.CodeRateLimited)
				}
				if n := p.count(); n != 1 {
					t.Fatalf("upstream saw %d requests, want 1", n)
				}

				// Paused longer than MaxWait: fail at once, say when.
				start := time.Now()
				resp = get("bearer")
				wantError(t, resp, abi.CodeRateLimited)
				if time.Since(start) != 0 || p.count() != 1 {
					t.Errorf("a paused request waited %v / reached the upstream", time.Since(start))
				}
				if got := time.Duration(resp.Error.RetryAfterMS) * ms; got != tt.pause {
					t.Errorf("RetryAfterMS = %v, want %v", got, tt.pause)
				}
				if resp.Error.Category != abi.Retryable || !strings.Contains(resp.Error.Message, tt.reason) ||
					!strings.Contains(resp.Error.Message, "try again in") {
					t.Errorf("refusal = %+v", resp.Error)
				}

				// Another credential slot has its own bucket.
				wantStatus(t, get("wide"), 200)

				// Within MaxWait of the end of the pause, the request waits and goes.
				time.Sleep(tt.pause - 5*sec)
				start = time.Now()
				wantStatus(t, get("bearer"), 200)
				if took := time.Since(start); took != 5*sec {
					t.Errorf("request after the pause waited %v, want 5s", took)
				}
			})
		})
	}
}

// TestSforceUsageOverLimitDoesNotPause: Salesforce lets an org go over its daily allocation for a
// while and says so in Sforce-Limit-Info on successful answers; only a refusal pauses the bucket.
func TestSforceUsageOverLimitDoesNotPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		atLimit := step{status: 200, header: map[string]string{"Sforce-Limit-Info": "api-usage=15000/15000"}, body: `{}`}
		over := step{status: 200, header: map[string]string{"Sforce-Limit-Info": "api-usage=100018/100000; api-bursts=1/750"}, body: `{}`}
		p := newPipe(t, Config{}, script(atLimit, over, over))
		defer p.close()
		for i := range 3 {
			start := time.Now()
			resp := p.c.Do(context.Background(), abi.HTTPRequest{URL: "http://api.example.test/x", Credential: "bearer"})
			wantStatus(t, resp, 200)
			if took := time.Since(start); took != 0 {
				t.Errorf("request %d waited %v after a successful over-limit answer", i+1, took)
			}
		}
		if n := p.count(); n != 3 {
			t.Errorf("upstream saw %d requests, want 3", n)
		}
	})
}

// TestRateLimitDeadline: a request that would wait past its deadline fails at once.
func TestRateLimitDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipe(t, Config{}, script(step{status: 429, header: map[string]string{"Retry-After": "5"}}, ok200))
		defer p.close()
		resp := p.c.Do(context.Background(), abi.HTTPRequest{Method: "POST", URL: "http://api.example.test/x"})
		wantError(t, resp, abi.CodeRateLimited) // POST without key: not replayed

		ctx, cancel := context.WithTimeout(context.Background(), 2*sec)
		defer cancel()
		start := time.Now()
		resp = p.c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/x"})
		wantError(t, resp, abi.CodeRateLimited)
		if time.Since(start) != 0 || resp.Error.RetryAfterMS != 5000 {
			t.Errorf("took %v, RetryAfterMS %d; want at once, 5000", time.Since(start), resp.Error.RetryAfterMS)
		}
		// Without a deadline, the 5 s pause is waited out.
		start = time.Now()
		wantStatus(t, p.c.Do(context.Background(), abi.HTTPRequest{URL: "http://api.example.test/x"}), 200)
		if took := time.Since(start); took != 5*sec {
			t.Errorf("took %v, want 5s", took)
		}
	})
}

// TestStaticRateLimit: the configured token bucket spaces requests, per credential slot.
func TestStaticRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipe(t, Config{RateLimits: []RateLimit{{Host: "*.example.test", PerSecond: 2}}}, script(ok200))
		defer p.close()
		for range 3 {
			wantStatus(t, p.c.Do(context.Background(), abi.HTTPRequest{URL: "http://api.example.test/x", Credential: "bearer"}), 200)
		}
		// Burst 2 (ceil of 2/s), then one every 500 ms.
		if diff := cmp.Diff([]time.Duration{0, 0, 500 * ms}, p.arrivals()); diff != "" {
			t.Errorf("arrivals mismatch (-want +got):\n%s", diff)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*ms)
		defer cancel()
		resp := p.c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/x", Credential: "bearer"})
		wantError(t, resp, abi.CodeRateLimited)
		if resp.Error.RetryAfterMS != 500 || !strings.Contains(resp.Error.Message, "2 requests per second") {
			t.Errorf("refusal = %+v", resp.Error)
		}
		// Other slot: own bucket.
		wantStatus(t, p.c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/x", Credential: "wide"}), 200)
	})
}

// TestBreaker walks the breaker closed → open → half-open → open → half-open → closed.
func TestBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var status atomic.Int64
		status.Store(503)
		release := make(chan struct{})
		var block atomic.Bool
		p := newPipe(t, Config{Retry: RetryPolicy{MaxAttempts: 1}, Breaker: BreakerPolicy{Failures: 3, CoolDown: 10 * sec}},
			func(n int, w http.ResponseWriter, r *http.Request) {
				if block.Load() {
					<-release
				}
				w.WriteHeader(int(status.Load()))
			})
		defer p.close()
		ctx := context.Background()
		get := func() abi.HTTPResponse { return p.c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/x"}) }
		state := func() breaker.State { return p.c.breakerFor("api.example.test").State(time.Now()) }

		// 4xx and cancellations do not count.
		status.Store(404)
		for range 5 {
			wantStatus(t, get(), 404)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		for range 5 {
			p.c.Do(cctx, abi.HTTPRequest{URL: "http://api.example.test/x"})
		}
		if s := state(); s != breaker.Closed {
			t.Fatalf("after 4xx and cancellations: %v, want closed", s)
		}

		status.Store(503)
		for range 3 {
			wantStatus(t, get(), 503)
		}
		if s := state(); s != breaker.Open {
			t.Fatalf("after 3 failures: %v, want open", s)
		}
		n := p.count()
		time.Sleep(4 * sec)
		resp := get()
		wantError(t, resp, abi.CodeUnavailable)
		if resp.Error.Category != abi.Retryable || resp.Error.RetryAfterMS != 6000 || p.count() != n {
			t.Errorf("open breaker answered %+v after %d new upstream requests; want retryable, 6000 ms, none", resp.Error, p.count()-n)
		}

		// Half-open: one probe, which fails → open again for a full cool-down.
		time.Sleep(6 * sec)
		if s := state(); s != breaker.HalfOpen {
			t.Fatalf("after the cool-down: %v, want half-open", s)
		}
		wantStatus(t, get(), 503)
		if s := state(); s != breaker.Open {
			t.Fatalf("after a failed probe: %v, want open", s)
		}
		if resp := get(); resp.Error == nil || resp.Error.RetryAfterMS != 10000 {
			t.Fatalf("after a failed probe: %+v, want unavailable for 10 s", resp.Error)
		}

		// Half-open again: while the probe is in flight, others are refused; its success closes.
		time.Sleep(10 * sec)
		status.Store(200)
		block.Store(true)
		done := make(chan abi.HTTPResponse)
		go func() { done <- get() }()
		synctest.Wait()
		wantError(t, get(), abi.CodeUnavailable)
		block.Store(false)
		close(release)
		wantStatus(t, <-done, 200)
		if s := state(); s != breaker.Closed {
			t.Fatalf("after a good probe: %v, want closed", s)
		}
		wantStatus(t, get(), 200)
	})
}

// TestBreakerTimeouts: attempt timeouts count; a caller's short deadline does not.
func TestBreakerTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipe(t, Config{Retry: RetryPolicy{MaxAttempts: 1, AttemptTimeout: sec}, Breaker: BreakerPolicy{Failures: 2}},
			script(sHang))
		defer p.close()
		state := func() breaker.State { return p.c.breakerFor("api.example.test").State(time.Now()) }
		for range 3 {
			resp := p.c.Do(context.Background(), abi.HTTPRequest{URL: "http://api.example.test/x", TimeoutMS: 50})
			wantError(t, resp, abi.CodeTimeout)
		}
		if s := state(); s != breaker.Closed {
			t.Fatalf("after caller timeouts: %v, want closed", s)
		}
		for range 2 {
			resp := p.c.Do(context.Background(), abi.HTTPRequest{URL: "http://api.example.test/x"})
			wantError(t, resp, abi.CodeTimeout)
			if !strings.Contains(resp.Error.Message, "did not answer within 1 second") {
				t.Errorf("message = %q", resp.Error.Message)
			}
		}
		if s := state(); s != breaker.Open {
			t.Fatalf("after attempt timeouts: %v, want open", s)
		}
	})
}

// TestResilienceHammer drives one Client from many goroutines against a flaky upstream on a
// real socket, with a shared rate limit (run with -race). The upstream must never see more
// than the bucket allows.
func TestResilienceHammer(t *testing.T) {
	const perSecond, burst = 400.0, 20
	h := newHarness(t)
	var (
		mu    sync.Mutex
		times []time.Time
		n     atomic.Int64
	)
	h.serve("api.example.test", apiIP, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		switch n.Add(1) % 7 {
		case 0:
			w.WriteHeader(503)
		case 3:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
		default:
			w.WriteHeader(200)
		}
	})
	c := h.client(Config{Rules: apiRules(), Slots: testSlots(),
		RateLimits: []RateLimit{{Host: "api.example.test", PerSecond: perSecond, Burst: burst}},
		Retry:      RetryPolicy{BaseDelay: ms, MaxDelay: 5 * ms}, Breaker: BreakerPolicy{Failures: -1}})
	start := time.Now()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 15 {
				method, key := "GET", ""
				if i%3 == 0 {
					method, key = "POST", fmt.Sprintf("k-%d-%d", g, i)
				}
				resp := c.Do(context.Background(), abi.HTTPRequest{Method: method, URL: fmt.Sprintf("http://api.example.test/api/%d", i),
					Credential: "bearer", IdempotencyKey: key})
				switch {
				case resp.Error != nil && resp.Error.Code == abi.CodeRateLimited:
				case resp.Error != nil:
					t.Errorf("Do: %v", resp.Error)
				case resp.Status != 200 && resp.Status != 503:
					t.Errorf("status %d", resp.Status)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if max := burst + int(perSecond*elapsed.Seconds()) + 1; len(times) > max {
		t.Errorf("upstream saw %d requests in %v; the bucket allows at most %d", len(times), elapsed, max)
	}
	if len(times) < 16*15 {
		t.Errorf("upstream saw %d requests, want at least one per Do (%d)", len(times), 16*15)
	}
}

// BenchmarkOverhead measures what the resilience layer adds to one request, without the
// network: breaker, limiter reservation, classification of the answer, breaker outcome.
func BenchmarkOverhead(b *testing.B) {
	c, err := New(Config{RateLimits: []RateLimit{{Host: "*.example.test", PerSecond: 1e9, Burst: 1 << 20}}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchOverhead(b, c)
}

func benchOverhead(b *testing.B, c *Client) {
	header := map[string][]string{"Content-Type": {"application/json"}, "X-Ratelimit-Remaining": {"4999"},
		"X-Ratelimit-Reset": {"1700000000"}, "Sforce-Limit-Info": {"api-usage=25/15000"}}
	body := []byte(`{"ok":true,"channel":"C123","ts":"1700000000.000100","message":{"text":"hello"}}`)
	key := ratelimit.Key{Host: "api.example.test", Rule: "/", Credential: "bearer"}
	ctx := context.Background()
	one := func() {
		now := time.Now()
		br := c.breakerFor(key.Host)
		d := br.Allow(now)
		if r := c.limiter.Reserve(ctx, key, now, time.Second); !r.OK {
			b.Fatal("limited")
		}
		v := retry.Classify(now, 200, header, body)
		br.Done(now, d, breaker.Success)
		if v.Class != retry.Final {
			b.Fatal(v)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			one()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one()
			}
		})
	})
}
