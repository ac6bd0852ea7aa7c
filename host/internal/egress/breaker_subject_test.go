package egress

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/abi"
)

// The breaker is per (connector, host), so it must count only what says the host is unhealthy:
// one subject's 401s (its own revoked token) must not pause the others; a host failing every
// subject with 503 must open it.
func TestBreakerIgnoresOneSubjectsClientErrors(t *testing.T) {
	var down atomic.Bool
	h := newHarness(t)
	api := h.serve("api.example.test", apiIP, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case down.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.URL.Path == "/api/alice":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/api/alice-missing":
			w.WriteHeader(http.StatusNotFound)
		default:
			echo(w, r)
		}
	})
	c := h.client(Config{Rules: apiRules(), Slots: testSlots(),
		Breaker: BreakerPolicy{Failures: 3, CoolDown: time.Minute}, Retry: RetryPolicy{MaxAttempts: 1}})
	alice := WithSubject(context.Background(), "alice")
	bob := WithSubject(context.Background(), "bob")

	for range 10 {
		wantStatus(t, c.Do(alice, abi.HTTPRequest{URL: "http://api.example.test/api/alice", Credential: "bearer"}), http.StatusUnauthorized)
		wantStatus(t, c.Do(alice, abi.HTTPRequest{URL: "http://api.example.test/api/alice-missing", Credential: "bearer"}), http.StatusNotFound)
	}
	wantStatus(t, c.Do(bob, abi.HTTPRequest{URL: "http://api.example.test/api/bob", Credential: "bearer"}), http.StatusOK)

	down.Store(true)
	for i := range 3 {
		ctx := alice
		if i%2 == 1 {
			ctx = bob
		}
		wantStatus(t, c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/api/x", Credential: "bearer"}), http.StatusServiceUnavailable)
	}
	before := len(api.requests())
	resp := c.Do(bob, abi.HTTPRequest{URL: "http://api.example.test/api/bob", Credential: "bearer"})
	wantError(t, resp, abi.CodeUnavailable)
	if resp.Error.RetryAfterMS <= 0 {
		t.Errorf("open breaker's answer has RetryAfterMS %d, want the rest of the cool-down", resp.Error.RetryAfterMS)
	}
	if n := len(api.requests()); n != before {
		t.Errorf("the open breaker let %d requests through", n-before)
	}
}
