package egress

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/internal/breaker"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// sideEffects is a fake upstream with a side effect per POST that dedups by Idempotency-Key,
// as Stripe-style APIs do: a repeat gets the first answer and does nothing.
type sideEffects struct {
	mu       sync.Mutex
	requests int
	effects  int
	byKey    map[string]string
}

func (s *sideEffects) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if r.Method != http.MethodPost {
		fmt.Fprint(w, `{"ok":true}`)
		return
	}
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		if prev, ok := s.byKey[k]; ok {
			fmt.Fprint(w, prev)
			return
		}
		s.effects++
		s.byKey[k] = fmt.Sprintf(`{"payment":%d}`, s.effects)
		fmt.Fprint(w, s.byKey[k])
		return
	}
	s.effects++
	fmt.Fprintf(w, `{"payment":%d}`, s.effects)
}

func (s *sideEffects) counts() (requests, effects int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.effects
}

func faultClient(t *testing.T, target string, retry RetryPolicy, br BreakerPolicy) *Client {
	t.Helper()
	c, err := New(Config{
		Rules:     []Rule{{Scheme: "https", Host: "api.example.test", Methods: []string{"GET", "POST"}}},
		Slots:     map[string]Slot{"bearer": {Kind: KindBearer, Hosts: []string{"api.example.test"}, Secret: secret.New(canaryBearer)}},
		Upstreams: map[string]string{"https://api.example.test": "http://" + target},
		Retry:     retry, Breaker: br,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestFaultsOnRealSockets puts toxiproxy between the client and the upstream: latency beyond
// the attempt timeout, then connections cut mid-response, then timeouts; the breaker opens and
// closes, the client recovers when each fault clears, and a keyed POST never pays twice.
func TestFaultsOnRealSockets(t *testing.T) {
	tp := testenv.StartToxiproxy(t)
	up := &sideEffects{byKey: map[string]string{}}
	srv := httptest.NewServer(up)
	defer srv.Close()
	listen := tp.Proxy("api", srv.Listener.Addr().String())
	c := faultClient(t, listen, RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond,
		AttemptTimeout: 200 * time.Millisecond, SlowTimeout: 100 * time.Millisecond},
		BreakerPolicy{Failures: 3, CoolDown: 300 * time.Millisecond})
	ctx := context.Background()
	get := func() abi.HTTPResponse {
		return c.Do(ctx, abi.HTTPRequest{URL: "https://api.example.test/v1/items", Credential: "bearer"})
	}
	post := func(key string) abi.HTTPResponse {
		return c.Do(ctx, abi.HTTPRequest{Method: "POST", URL: "https://api.example.test/v1/payments", Credential: "bearer",
			Body: []byte(`{"amount":5}`), IdempotencyKey: key})
	}
	state := func() breaker.State { return c.breakerFor("api.example.test").State(time.Now()) }
	waitClosed := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if resp := get(); resp.Error == nil && resp.Status == 200 {
				if s := state(); s != breaker.Closed {
					t.Fatalf("after a good request the breaker is %v", s)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("the client did not recover within 10 s of the fault clearing")
	}
	wantStatus(t, get(), 200)

	// 1. Latency above the attempt timeout: each attempt times out, the breaker opens and then
	// answers at once, without touching the upstream.
	tp.Toxic("api", "slow", "latency", "downstream", map[string]any{"latency": 1000})
	resp := get()
	wantError(t, resp, abi.CodeTimeout)
	if s := state(); s != breaker.Open {
		t.Fatalf("after 3 timed-out attempts the breaker is %v, want open", s)
	}
	before, _ := up.counts()
	start := time.Now()
	resp = get()
	wantError(t, resp, abi.CodeUnavailable)
	if resp.Error.Category != abi.Retryable || resp.Error.RetryAfterMS <= 0 {
		t.Errorf("open breaker answered %+v; want retryable with retry_after", resp.Error)
	}
	if n, _ := up.counts(); n != before || time.Since(start) > 100*time.Millisecond {
		t.Errorf("an open breaker let a request through or held it (%v)", time.Since(start))
	}
	tp.Clear("api", "slow")
	waitClosed()

	// 2. Connections cut after the upstream acted: an unkeyed POST is not replayed (one effect),
	// a keyed POST is, and the upstream's dedup keeps it to one effect.
	tp.Toxic("api", "cut", "limit_data", "downstream", map[string]any{"bytes": 1})
	_, effects0 := up.counts()
	wantError(t, post(""), abi.CodeUpstreamError)
	reqs1, effects1 := up.counts()
	if effects1-effects0 != 1 {
		t.Fatalf("an unkeyed POST made %d side effects, want exactly 1 (no replay)", effects1-effects0)
	}
	wantError(t, post("pay-1"), abi.CodeUpstreamError)
	reqs2, effects2 := up.counts()
	if reqs2-reqs1 < 2 || effects2-effects1 != 1 {
		t.Fatalf("a keyed POST under cut connections: %d requests, %d side effects; want retries (≥2) and one effect",
			reqs2-reqs1, effects2-effects1)
	}
	tp.Clear("api", "cut")
	waitClosed()
	// The agent retries the same key once the fault clears: the original answer, no new effect.
	resp = post("pay-1")
	wantStatus(t, resp, 200)
	if _, effects3 := up.counts(); effects3 != effects2 || string(resp.Body) != fmt.Sprintf(`{"payment":%d}`, effects2) {
		t.Errorf("the keyed retry answered %s with %d new side effects; want the first payment and none", resp.Body, effects3-effects2)
	}

	// 3. A black hole (toxiproxy "timeout": no data, then a close): attempts time out and are
	// retried; the client recovers when it clears.
	tp.Toxic("api", "hole", "timeout", "upstream", map[string]any{"timeout": 0})
	wantError(t, get(), abi.CodeTimeout)
	tp.Clear("api", "hole")
	waitClosed()

	// 4. Resets: retried for GET, recovered after.
	tp.Toxic("api", "reset", "reset_peer", "upstream", map[string]any{"timeout": 0})
	wantError(t, get(), abi.CodeUpstreamError)
	tp.Clear("api", "reset")
	waitClosed()
}
