package host_test

// Resilience through host.Call (issue 8): idempotency keys, faults injected between the host and
// the fake Slack by a real toxiproxy, call quotas from a grant, and rate limits shared by two
// hosts through a real Redis. Every count is taken at the upstream, where a duplicate side
// effect or an excess request would land.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// slackFront stands in front of the fake Slack: it timestamps every request that reaches the
// upstream, and while down it answers 503 itself (a Slack outage), so the fake never sees the
// request.
type slackFront struct {
	fake *fakeslack.Server
	down atomic.Bool

	mu       sync.Mutex
	arrivals []time.Time
}

func newSlackFront(t *testing.T, fake *fakeslack.Server) (*slackFront, *httptest.Server) {
	t.Helper()
	f := &slackFront{fake: fake}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *slackFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.arrivals = append(f.arrivals, time.Now())
	f.mu.Unlock()
	if f.down.Load() {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	f.fake.ServeHTTP(w, r)
}

// reset forgets the requests seen so far.
func (f *slackFront) reset() {
	f.mu.Lock()
	f.arrivals = nil
	f.mu.Unlock()
}

// hits is how many requests reached the upstream.
func (f *slackFront) hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.arrivals)
}

func (f *slackFront) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.arrivals...)
}

// slackOpts configures resilientHost.
type slackOpts struct {
	cfg    host.Config // Secrets are set by resilientHost
	target string      // base URL of the upstream slack.com is routed to
	name   string      // connector name; default "slack"
	grant  func(*manifest.Grant)
}

// resilientHost starts a host with the Slack connector routed to opts.target.
func resilientHost(t *testing.T, opts slackOpts) (*host.Host, *hosttest.Recorder) {
	t.Helper()
	m, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	if opts.name != "" {
		m.Name = opts.name
	}
	cfg := opts.cfg
	cfg.Secrets = secrets()
	h, rec := hosttest.New(t, cfg)
	g := &manifest.Grant{Connector: m.Name, Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": opts.target}}
	if opts.grant != nil {
		opts.grant(g)
	}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec
}

// sqliteStore opens a real SQLite state store in a temporary directory.
func sqliteStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+t.TempDir()+"/state.db")
	if err != nil {
		t.Fatalf("opening the state store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func keyedPost(ctx context.Context, h *host.Host, key, text string) *host.Result {
	return h.Call(ctx, host.CallRequest{Tool: "slack.post_message", Agent: "test-agent", IdempotencyKey: key,
		Arguments: json.RawMessage(fmt.Sprintf(`{"channel":%q,"text":%q}`, fakeslack.General, text))})
}

// posted counts the messages with text in #general at the fake Slack.
func posted(fake *fakeslack.Server, text string) int {
	n := 0
	for _, m := range fake.Messages(fakeslack.General) {
		if m.Text == text {
			n++
		}
	}
	return n
}

func TestIdempotencyThroughCall(t *testing.T) {
	fake := fakeslack.New(canary)
	front, srv := newSlackFront(t, fake)
	h, rec := resilientHost(t, slackOpts{cfg: host.Config{Store: sqliteStore(t)}, target: srv.URL})
	ctx := context.Background()

	t.Run("same key and arguments replay the first outcome", func(t *testing.T) {
		first := keyedPost(ctx, h, "k-same", "deploy 1 done")
		if !first.OK || first.Meta.Replayed {
			t.Fatalf("first call = %+v, %+v; want OK and not replayed", first.Error, first.Meta)
		}
		hits := front.hits()
		second := keyedPost(ctx, h, "k-same", "deploy 1 done")
		if !second.OK || !second.Meta.Replayed {
			t.Fatalf("repeat = %+v, %+v; want OK and replayed", second.Error, second.Meta)
		}
		if !bytes.Equal(first.Data, second.Data) {
			t.Errorf("repeat answered %s, want the first answer %s", second.Data, first.Data)
		}
		if n := posted(fake, "deploy 1 done"); n != 1 {
			t.Errorf("Slack holds %d copies of the message, want 1", n)
		}
		if front.hits() != hits || second.Meta.Requests != 0 {
			t.Errorf("the repeat reached the upstream (%d new requests, meta.requests %d)", front.hits()-hits, second.Meta.Requests)
		}
	})

	t.Run("same key with other arguments is refused", func(t *testing.T) {
		if res := keyedPost(ctx, h, "k-args", "original"); !res.OK {
			t.Fatalf("first call: %+v", res.Error)
		}
		res := keyedPost(ctx, h, "k-args", "tampered")
		if res.OK || res.Error.Category != abi.Correctable || res.Error.Code != abi.CodeInvalidArguments {
			t.Fatalf("same key, other arguments = %+v; want a correctable invalid_arguments refusal", res.Error)
		}
		if !strings.Contains(res.Error.Message, "new key") {
			t.Errorf("refusal %q does not tell the agent to use a new key", res.Error.Message)
		}
		if n := posted(fake, "tampered"); n != 0 {
			t.Errorf("the refused call posted %d messages", n)
		}
	})

	t.Run("the key is scoped to the subject", func(t *testing.T) {
		// Another tenant reusing a key must neither see the first tenant's result nor be blocked.
		if res := keyedPost(ctx, h, "k-tenant", "tenant text"); !res.OK {
			t.Fatalf("first call: %+v", res.Error)
		}
		res := h.Call(ctx, host.CallRequest{Tool: "slack.post_message", Agent: "test-agent", Subject: "other-tenant",
			IdempotencyKey: "k-tenant", Arguments: json.RawMessage(`{"channel":"C0GENERAL","text":"tenant text"}`)})
		if !res.OK || res.Meta.Replayed {
			t.Fatalf("another subject's call with the same key = %+v, %+v; want its own run", res.Error, res.Meta)
		}
		if n := posted(fake, "tenant text"); n != 2 {
			t.Errorf("Slack holds %d copies, want 2 (one per subject)", n)
		}
	})

	t.Run("concurrent duplicates run once", func(t *testing.T) {
		const n = 10
		results := make([]*host.Result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i] = keyedPost(ctx, h, "k-burst", "burst") })
		}
		wg.Wait()
		ran := 0
		for i, r := range results {
			if !r.OK {
				t.Fatalf("call %d: %+v", i, r.Error)
			}
			if !r.Meta.Replayed {
				ran++
			}
			if !bytes.Equal(r.Data, results[0].Data) {
				t.Errorf("call %d answered %s, call 0 %s; want one outcome", i, r.Data, results[0].Data)
			}
		}
		if ran != 1 {
			t.Errorf("%d of %d calls ran, want exactly 1 (the others replayed)", ran, n)
		}
		if got := posted(fake, "burst"); got != 1 {
			t.Errorf("Slack holds %d copies of the message, want 1", got)
		}
	})

	t.Run("a retryable failure is not recorded", func(t *testing.T) {
		front.down.Store(true)
		res := keyedPost(ctx, h, "k-outage", "after the outage")
		if res.OK || res.Error.Category != abi.Retryable {
			t.Fatalf("call during an outage = %+v; want a retryable error", res.Error)
		}
		again := keyedPost(ctx, h, "k-outage", "after the outage")
		if again.OK || again.Meta.Replayed || again.Meta.Requests == 0 {
			t.Fatalf("retry during the outage = %+v, %+v; want it to run again and fail", again.Error, again.Meta)
		}
		front.down.Store(false)
		ok := keyedPost(ctx, h, "k-outage", "after the outage")
		if !ok.OK || ok.Meta.Replayed {
			t.Fatalf("retry after the outage = %+v, %+v; want it to run and succeed", ok.Error, ok.Meta)
		}
		if replay := keyedPost(ctx, h, "k-outage", "after the outage"); !replay.OK || !replay.Meta.Replayed {
			t.Errorf("repeat of the successful retry = %+v, %+v; want the recorded success", replay.Error, replay.Meta)
		}
		if n := posted(fake, "after the outage"); n != 1 {
			t.Errorf("Slack holds %d copies, want 1", n)
		}
	})

	var replayed int
	for _, e := range rec.Audit.Events() {
		if e.Kind == "call" && e.Replayed {
			replayed++
		}
	}
	if replayed == 0 {
		t.Error("no audit record marks a replayed call")
	}
	leaks(t, rec)
}

// TestFaultsThroughToxiproxy puts a real toxiproxy between the host and the fake Slack: latency
// beyond the caller's deadline, connections reset or cut after Slack acted, a black hole. Each
// call fails with a retryable error, the host recovers when the fault clears, and a keyed
// post_message never posts twice however often the agent repeats it.
func TestFaultsThroughToxiproxy(t *testing.T) {
	tp := testenv.StartToxiproxy(t)
	fake := fakeslack.New(canary)
	front, srv := newSlackFront(t, fake)
	listen := tp.Proxy("slack", srv.Listener.Addr().String())
	h, rec := resilientHost(t, slackOpts{cfg: host.Config{Store: sqliteStore(t)}, target: "http://" + listen})

	history := func(ctx context.Context) *host.Result {
		return h.Call(ctx, host.CallRequest{Tool: "slack.channel_history", Agent: "test-agent",
			Arguments: json.RawMessage(`{"channel":"C0GENERAL","limit":1}`)})
	}
	within := func(d time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), d)
	}
	// recovered waits (at most 10 s) for a read to succeed once the fault is cleared.
	recovered := func(t *testing.T, fault string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := within(5 * time.Second)
			res := history(ctx)
			cancel()
			if res.OK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the host did not recover within 10 s of clearing %s: %+v", fault, res.Error)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wantRetryable := func(t *testing.T, what string, res *host.Result) {
		t.Helper()
		if res.OK || res.Error.Category != abi.Retryable {
			t.Fatalf("%s = ok %v, %+v; want a retryable error", what, res.OK, res.Error)
		}
		t.Logf("%s: %s", what, res.Error)
	}
	// wantUnknown: a keyed post that got no answer may have taken effect, so running it again
	// under the key could post twice. The agent is told to check and use a new key, not to retry.
	wantUnknown := func(t *testing.T, what string, res *host.Result) {
		t.Helper()
		if res.OK || res.Error.Category != abi.Correctable || !strings.Contains(res.Error.Message, "new idempotency key") {
			t.Fatalf("%s = ok %v, %+v; want a correctable error asking to check and use a new key", what, res.OK, res.Error)
		}
	}
	// keyedOnce checks that whatever the agent does with one key after a faulty keyed post,
	// Slack holds at most one copy, and that a new key then posts exactly once.
	keyedOnce := func(t *testing.T, fault, key, text string) {
		t.Helper()
		n := posted(fake, text)
		if n > 1 {
			t.Fatalf("%s: Slack holds %d copies after one call", fault, n)
		}
		for range 3 { // the agent retries the key, as a retryable error invites it to
			again := keyedPost(context.Background(), h, key, text)
			now := posted(fake, text)
			if now > 1 || now < n {
				t.Fatalf("%s: a retry with the same key made Slack hold %d copies (was %d); result %+v %+v",
					fault, now, n, again.Error, again.Meta)
			}
			n = now
			if !again.OK && again.Meta.Replayed && again.Error.Category == abi.Retryable {
				t.Errorf("%s: a recorded failure is replayed as retryable (%+v): the agent would retry the same key forever",
					fault, again.Error)
			}
		}
		if res := keyedPost(context.Background(), h, key+"-new", text+" (new key)"); !res.OK || posted(fake, text+" (new key)") != 1 {
			t.Fatalf("%s: a new key after the fault cleared: %+v, %d copies; want one", fault, res.Error, posted(fake, text+" (new key)"))
		}
		t.Logf("%s: %d copy of the keyed post at Slack", fault, n)
	}

	if res := history(context.Background()); !res.OK {
		t.Fatalf("read through the proxy: %+v", res.Error)
	}

	t.Run("latency beyond the deadline", func(t *testing.T) {
		tp.Toxic("slack", "slow", "latency", "downstream", map[string]any{"latency": 3000})
		ctx, cancel := within(700 * time.Millisecond)
		res := history(ctx)
		cancel()
		wantRetryable(t, "a read slower than the caller's deadline", res)
		ctx, cancel = within(700 * time.Millisecond)
		post := keyedPost(ctx, h, "k-slow", "slow post")
		cancel()
		wantUnknown(t, "a keyed post slower than the caller's deadline", post)
		tp.Clear("slack", "slow")
		recovered(t, "latency")
		keyedOnce(t, "latency", "k-slow", "slow post")
	})

	t.Run("connection cut after Slack acted", func(t *testing.T) {
		tp.Toxic("slack", "cut", "limit_data", "downstream", map[string]any{"bytes": 1})
		before := front.hits()
		post := keyedPost(context.Background(), h, "k-cut", "cut post")
		wantUnknown(t, "a keyed post whose answer was cut", post)
		if front.hits()-before != 1 {
			t.Errorf("an unanswered POST was sent %d times; the host must not replay a POST Slack cannot deduplicate", front.hits()-before)
		}
		unkeyed := call(h, "slack.post_message", `{"channel":"C0GENERAL","text":"cut unkeyed"}`)
		if unkeyed.OK || posted(fake, "cut unkeyed") != 1 {
			t.Errorf("an unkeyed post under cut connections: ok %v, %d copies; want a failure and exactly one copy",
				unkeyed.OK, posted(fake, "cut unkeyed"))
		}
		if e := unkeyed.Error; e != nil && e.Category == abi.Retryable && !strings.Contains(e.Message, "check whether it took effect") {
			t.Errorf("the agent is invited to retry a post that may have gone through without a warning: %q", e.Message)
		}
		tp.Clear("slack", "cut")
		recovered(t, "cut connections")
		keyedOnce(t, "cut", "k-cut", "cut post")
	})

	t.Run("connection reset", func(t *testing.T) {
		tp.Toxic("slack", "reset", "reset_peer", "upstream", map[string]any{"timeout": 0})
		wantRetryable(t, "a read under resets", history(context.Background()))
		post := keyedPost(context.Background(), h, "k-reset", "reset post")
		wantUnknown(t, "a keyed post under resets", post)
		tp.Clear("slack", "reset")
		recovered(t, "resets")
		keyedOnce(t, "reset", "k-reset", "reset post")
	})

	t.Run("black hole", func(t *testing.T) {
		tp.Toxic("slack", "hole", "timeout", "upstream", map[string]any{"timeout": 0})
		ctx, cancel := within(time.Second)
		res := history(ctx)
		cancel()
		wantRetryable(t, "a read into a black hole", res)
		ctx, cancel = within(time.Second)
		post := keyedPost(ctx, h, "k-hole", "hole post")
		cancel()
		wantUnknown(t, "a keyed post into a black hole", post)
		tp.Clear("slack", "hole")
		recovered(t, "the black hole")
		keyedOnce(t, "black hole", "k-hole", "hole post")
	})
	leaks(t, rec)
}

func TestQuotaThroughCall(t *testing.T) {
	fake := fakeslack.New(canary)
	front, srv := newSlackFront(t, fake)
	h, rec := resilientHost(t, slackOpts{target: srv.URL, grant: func(g *manifest.Grant) {
		g.Quotas = &manifest.Quotas{PerAgent: &manifest.Quota{Calls: 3, PeriodS: 60}}
	}})
	ctx := context.Background()
	as := func(agent, subject, tool, args string) *host.Result {
		return h.Call(ctx, host.CallRequest{Tool: tool, Agent: agent, Subject: subject, Arguments: json.RawMessage(args)})
	}
	const hist = `{"channel":"C0GENERAL","limit":1}`
	for i := range 3 {
		if res := as("agent-a", "", "slack.channel_history", hist); !res.OK {
			t.Fatalf("call %d within the quota: %+v", i+1, res.Error)
		}
	}
	hits := front.hits()
	res := as("agent-a", "", "slack.channel_history", hist)
	if res.OK || res.Error.Code != abi.CodeRateLimited || res.Error.Category != abi.Retryable {
		t.Fatalf("4th call = %+v; want a retryable rate_limited error", res.Error)
	}
	// 3 calls per 60 s refill one every 20 s.
	if res.Error.RetryAfter <= 0 || res.Error.RetryAfter > 60 {
		t.Errorf("retry_after = %v s, want in (0, 60]", res.Error.RetryAfter)
	}
	if c := strings.Count(res.Error.Message, "try again"); c != 1 {
		t.Errorf("message %q says \"try again\" %d times, want once", res.Error.Message, c)
	}
	// The quota covers every tool of the connector and does not depend on the subject the
	// agent names: neither resets it.
	if r := as("agent-a", "", "slack.list_channels", `{"limit":1}`); r.OK || r.Error.Code != abi.CodeRateLimited {
		t.Errorf("another tool after the quota = %+v; want rate_limited", r.Error)
	}
	if r := as("agent-a", "tenant-2", "slack.channel_history", hist); r.OK || r.Error.Code != abi.CodeRateLimited {
		t.Errorf("another subject after the quota = %+v; want rate_limited", r.Error)
	}
	if front.hits() != hits {
		t.Errorf("refused calls reached the upstream %d times", front.hits()-hits)
	}
	if r := as("agent-b", "", "slack.channel_history", hist); !r.OK {
		t.Errorf("another agent = %+v; want it unaffected", r.Error)
	}
	var limited int
	for _, e := range rec.Audit.Events() {
		if e.Kind == "call" && e.Code == abi.CodeRateLimited {
			limited++
		}
	}
	if limited != 3 {
		t.Errorf("audit has %d rate_limited calls, want 3", limited)
	}
}

// uniqueName is a connector name no other test run uses, so buckets in a shared Redis start
// empty.
func uniqueName(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "slack_" + hex.EncodeToString(b[:])
}

// TestSharedQuotaAcrossHosts: two hosts on one Redis share an agent's quota.
func TestSharedQuotaAcrossHosts(t *testing.T) {
	redisURL := testenv.Redis(t)
	fake := fakeslack.New(canary)
	_, srv := newSlackFront(t, fake)
	name := uniqueName(t)
	hosts := make([]*host.Host, 2)
	for i := range hosts {
		hosts[i], _ = resilientHost(t, slackOpts{cfg: host.Config{RedisURL: redisURL}, target: srv.URL, name: name,
			grant: func(g *manifest.Grant) { g.Quotas = &manifest.Quotas{PerAgent: &manifest.Quota{Calls: 3, PeriodS: 60}} }})
	}
	ok := 0
	for i := range 6 {
		res := hosts[i%2].Call(context.Background(), host.CallRequest{Tool: name + ".channel_history", Agent: "agent-a",
			Arguments: json.RawMessage(`{"channel":"C0GENERAL","limit":1}`)})
		switch {
		case res.OK:
			ok++
		case res.Error.Code != abi.CodeRateLimited:
			t.Fatalf("call %d: %+v; want success or rate_limited", i, res.Error)
		}
	}
	if ok != 3 {
		t.Errorf("two hosts on one Redis admitted %d calls of a 3-call quota", ok)
	}
}

// rateGrant limits slack.com/api/ to perSecond with burst.
func rateGrant(perSecond float64, burst int) func(*manifest.Grant) {
	return func(g *manifest.Grant) {
		g.RateLimits = []manifest.RateLimitOverride{{Host: "slack.com", PathPrefix: "/api/", PerSecond: perSecond, Burst: burst}}
	}
}

// hammer calls channel_history from workers goroutines per host until stop is closed, and
// returns how the calls ended (by result code, "ok" for successes).
func hammer(t *testing.T, hosts []*host.Host, tool string, workers int, stop <-chan struct{}) map[string]int {
	t.Helper()
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	for _, h := range hosts {
		for range workers {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					res := h.Call(context.Background(), host.CallRequest{Tool: tool, Agent: "hammer",
						Arguments: json.RawMessage(`{"channel":"C0GENERAL","limit":1}`)})
					code := "ok"
					if !res.OK {
						code = res.Error.Code
					}
					mu.Lock()
					outcomes[code]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return outcomes
}

// fellBack reports how often a host logged that Redis became unreachable, and whether it is
// still limiting locally (no later line saying Redis answers again).
func fellBack(rec *hosttest.Recorder) (times int, now bool) {
	logs := rec.Logs()
	down, up := strings.Count(logs, "Redis is unreachable"), strings.Count(logs, "Redis answers again")
	return down, down > up
}

// warmUp makes workers concurrent calls on each host, so that the measured run does not start
// with cold Redis connections: a replica whose first Redis operations time out (250 ms) limits
// locally until its next probe (2 s), which is not what the run measures. It waits (at most
// 10 s) until no host limits locally, then forgets the requests the upstream saw.
func warmUp(t *testing.T, hosts []*host.Host, recs []*hosttest.Recorder, tool string, workers int, fronts ...*slackFront) {
	t.Helper()
	var wg sync.WaitGroup
	for _, h := range hosts {
		for range workers {
			wg.Go(func() {
				h.Call(context.Background(), host.CallRequest{Tool: tool, Agent: "warm-up",
					Arguments: json.RawMessage(`{"channel":"C0GENERAL","limit":1}`)})
			})
		}
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < len(recs); {
		if _, down := fellBack(recs[i]); !down {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %d still limits locally 10 s after Redis became unreachable in the warm-up", i)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, f := range fronts {
		f.reset()
	}
}

// maxInWindow is the largest number of arrivals in any window of length w.
func maxInWindow(ts []time.Time, w time.Duration) int {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// span is the time from the first to the last arrival.
func span(ts []time.Time) time.Duration {
	if len(ts) < 2 {
		return 0
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts[len(ts)-1].Sub(ts[0])
}

// TestSharedRateLimitAcrossHosts hammers two hosts for about two seconds. On one Redis they
// together stay within one limit of N requests per second (burst B), measured at the upstream;
// with Redis cut off mid-run (a toxiproxy in front of it is disabled) they keep limiting, each
// at its local share; without Redis each host limits on its own, so together they send about
// twice as much.
//
// Bounds, not exact numbers: a window of w at the upstream may see at most N·w + B requests
// (GCRA), plus a tolerance of 2 for the scheduling between the limiter and the upstream.
func TestSharedRateLimitAcrossHosts(t *testing.T) {
	const (
		perSecond = 5.0
		burst     = 3
		workers   = 6
		run       = 2 * time.Second
		tolerance = 2
	)
	bound := func(w time.Duration) int { return int(perSecond*w.Seconds()) + burst + tolerance }

	t.Run("shared through Redis", func(t *testing.T) {
		redisURL := testenv.Redis(t)
		fake := fakeslack.New(canary)
		front, srv := newSlackFront(t, fake)
		name := uniqueName(t)
		hosts := make([]*host.Host, 2)
		recs := make([]*hosttest.Recorder, 2)
		for i := range hosts {
			hosts[i], recs[i] = resilientHost(t, slackOpts{cfg: host.Config{RedisURL: redisURL}, target: srv.URL, name: name,
				grant: rateGrant(perSecond, burst)})
		}
		tool := name + ".channel_history"
		warmUp(t, hosts, recs, tool, workers, front)
		var downBefore [2]int
		for i, rec := range recs {
			downBefore[i], _ = fellBack(rec)
		}
		stop := make(chan struct{})
		time.AfterFunc(run, func() { close(stop) })
		outcomes := hammer(t, hosts, tool, workers, stop)
		ts := front.times()
		total, sp, win := len(ts), span(ts), maxInWindow(ts, time.Second)
		t.Logf("Redis-shared: %d requests at the upstream over %v (max %d in any 1 s); outcomes %v", total, sp, win, outcomes)
		limit, limit1s := bound(sp), bound(time.Second)
		for i, rec := range recs {
			if n, _ := fellBack(rec); n > downBefore[i] {
				// A replica whose Redis operation timed out (a loaded machine) limits locally at
				// half the rate while the other stays shared: together up to 1.5 times the limit
				// until its next probe. Documented here rather than failed.
				t.Logf("host %d fell back to local limits during the run (Redis timed out); allowing its local share on top", i)
				limit += int(perSecond/2*sp.Seconds()) + burst
				limit1s += int(perSecond/2+0.5) + burst
			}
		}
		if total > limit {
			t.Errorf("%d requests reached the upstream in %v; a shared limit of %g/s (burst %d) allows at most %d",
				total, sp, perSecond, burst, limit)
		}
		if win > limit1s {
			t.Errorf("%d requests reached the upstream within one second; the shared limit allows at most %d", win, limit1s)
		}
		for code := range outcomes {
			if code != "ok" && code != abi.CodeRateLimited {
				t.Errorf("%d calls ended with %s; want only successes and rate_limited", outcomes[code], code)
			}
		}
		if outcomes["ok"] == 0 {
			t.Error("no call succeeded")
		}
	})

	t.Run("Redis cut off mid-run", func(t *testing.T) {
		redisURL := testenv.Redis(t)
		tp := testenv.StartToxiproxy(t)
		ru, err := url.Parse(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		ru.Host = tp.Proxy("redis", ru.Host)
		fake := fakeslack.New(canary)
		front, srv := newSlackFront(t, fake)
		name := uniqueName(t)
		hosts := make([]*host.Host, 2)
		recs := make([]*hosttest.Recorder, 2)
		for i := range hosts {
			hosts[i], recs[i] = resilientHost(t, slackOpts{cfg: host.Config{RedisURL: ru.String()}, target: srv.URL, name: name,
				grant: rateGrant(perSecond, burst)})
		}
		tool := name + ".channel_history"
		warmUp(t, hosts, recs, tool, workers, front)
		stop := make(chan struct{})
		done := make(chan map[string]int)
		go func() { done <- hammer(t, hosts, tool, workers, stop) }()
		time.Sleep(run / 2)
		cut := time.Now()
		tp.Enable("redis", false)
		time.Sleep(run / 2)
		close(stop)
		outcomes := <-done
		ts := front.times()
		total, sp := len(ts), span(ts)
		var after []time.Time
		for _, at := range ts {
			if at.After(cut) {
				after = append(after, at)
			}
		}
		// Slots reserved in Redis before the cut still go out on schedule; on top, each host
		// limits locally at half the rate (and half the burst, rounded up) from the cut on:
		// together at most the shared schedule plus one more limit's worth after the cut.
		limit := bound(sp) + int(perSecond*span(after).Seconds()) + 2*((burst+1)/2)
		t.Logf("Redis cut %v into the run: %d requests over %v (%d after the cut, over %v; bound %d); outcomes %v",
			cut.Sub(ts[0]).Round(time.Millisecond), total, sp, len(after), span(after), limit, outcomes)
		if total > limit {
			t.Errorf("%d requests reached the upstream in %v with Redis cut off midway; want at most %d", total, sp, limit)
		}
		if len(after) == 0 {
			t.Error("no request went through after Redis was cut off: the hosts stopped serving")
		}
		for code := range outcomes {
			if code != "ok" && code != abi.CodeRateLimited {
				t.Errorf("%d calls ended with %s; want only successes and rate_limited", outcomes[code], code)
			}
		}
		for i, rec := range recs {
			if _, down := fellBack(rec); !down {
				t.Errorf("host %d did not log that Redis became unreachable (and still is)", i)
			}
		}
	})

	t.Run("without Redis each host limits alone", func(t *testing.T) {
		fake := fakeslack.New(canary)
		fronts := make([]*slackFront, 2)
		hosts := make([]*host.Host, 2)
		for i := range hosts {
			var srv *httptest.Server
			fronts[i], srv = newSlackFront(t, fake)
			hosts[i], _ = resilientHost(t, slackOpts{target: srv.URL, grant: rateGrant(perSecond, burst)})
		}
		stop := make(chan struct{})
		time.AfterFunc(run, func() { close(stop) })
		outcomes := hammer(t, hosts, "slack.channel_history", workers, stop)
		var all []time.Time
		for i, f := range fronts {
			ts := f.times()
			all = append(all, ts...)
			if n, sp := len(ts), span(ts); n > bound(sp) {
				t.Errorf("host %d sent %d requests in %v; its own limit allows at most %d", i, n, sp, bound(sp))
			}
		}
		total, sp := len(all), span(all)
		// Documented, not asserted exactly: together they send up to twice the limit.
		t.Logf("local only: %d requests at the upstream over %v (one shared limit would allow %d); outcomes %v",
			total, sp, bound(sp), outcomes)
		if total > 2*bound(sp) {
			t.Errorf("%d requests in %v; two independent limits allow at most %d", total, sp, 2*bound(sp))
		}
	})
}
