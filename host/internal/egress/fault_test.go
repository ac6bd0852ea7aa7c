package egress

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/internal/breaker"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// toxiproxy drives a toxiproxy server of the test's own through its HTTP API.
type toxiproxy struct {
	t   *testing.T
	api string
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startToxiproxy(t *testing.T) *toxiproxy {
	t.Helper()
	bin := testenv.Toxiproxy(t)
	port := freePort(t)
	cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting toxiproxy: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	tp := &toxiproxy{t: t, api: "http://127.0.0.1:" + strconv.Itoa(port)}
	for range 100 {
		if resp, err := http.Get(tp.api + "/version"); err == nil {
			resp.Body.Close()
			return tp
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("toxiproxy did not start")
	return nil
}

func (tp *toxiproxy) call(method, path string, body any, out any) {
	tp.t.Helper()
	var b bytes.Buffer
	if body != nil {
		_ = json.NewEncoder(&b).Encode(body)
	}
	req, _ := http.NewRequest(method, tp.api+path, &b)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tp.t.Fatalf("toxiproxy %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		tp.t.Fatalf("toxiproxy %s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
}

// proxy creates a proxy to upstream and returns its listen address.
func (tp *toxiproxy) proxy(name, upstream string) string {
	var out struct{ Listen string }
	tp.call("POST", "/proxies", map[string]any{"name": name, "listen": "127.0.0.1:" + strconv.Itoa(freePort(tp.t)),
		"upstream": upstream, "enabled": true}, &out)
	return out.Listen
}

func (tp *toxiproxy) toxic(proxy, name, typ, stream string, attrs map[string]any) {
	tp.call("POST", "/proxies/"+proxy+"/toxics", map[string]any{"name": name, "type": typ, "stream": stream,
		"toxicity": 1.0, "attributes": attrs}, nil)
}

func (tp *toxiproxy) clear(proxy, name string) {
	tp.call("DELETE", "/proxies/"+proxy+"/toxics/"+name, nil, nil)
}

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
	tp := startToxiproxy(t)
	up := &sideEffects{byKey: map[string]string{}}
	srv := httptest.NewServer(up)
	defer srv.Close()
	listen := tp.proxy("api", srv.Listener.Addr().String())
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
	tp.toxic("api", "slow", "latency", "downstream", map[string]any{"latency": 1000})
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
	tp.clear("api", "slow")
	waitClosed()

	// 2. Connections cut after the upstream acted: an unkeyed POST is not replayed (one effect),
	// a keyed POST is, and the upstream's dedup keeps it to one effect.
	tp.toxic("api", "cut", "limit_data", "downstream", map[string]any{"bytes": 1})
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
	tp.clear("api", "cut")
	waitClosed()
	// The agent retries the same key once the fault clears: the original answer, no new effect.
	resp = post("pay-1")
	wantStatus(t, resp, 200)
	if _, effects3 := up.counts(); effects3 != effects2 || string(resp.Body) != fmt.Sprintf(`{"payment":%d}`, effects2) {
		t.Errorf("the keyed retry answered %s with %d new side effects; want the first payment and none", resp.Body, effects3-effects2)
	}

	// 3. A black hole (toxiproxy "timeout": no data, then a close): attempts time out and are
	// retried; the client recovers when it clears.
	tp.toxic("api", "hole", "timeout", "upstream", map[string]any{"timeout": 0})
	wantError(t, get(), abi.CodeTimeout)
	tp.clear("api", "hole")
	waitClosed()

	// 4. Resets: retried for GET, recovered after.
	tp.toxic("api", "reset", "reset_peer", "upstream", map[string]any{"timeout": 0})
	wantError(t, get(), abi.CodeUpstreamError)
	tp.clear("api", "reset")
	waitClosed()
}
