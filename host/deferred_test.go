package host_test

// Deferred calls (issue 23): calls accepted now and run from the durable queue, against a fake
// Slack that allows 10 posts a second and answers 429 past that. Every count is taken at the
// upstream, where a lost or duplicated job would show.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
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

// limitedSlack is the fake Slack at 10 posts a second, counting the 429s it answers.
type limitedSlack struct {
	fake    *fakeslack.Server
	limited atomic.Int64
}

func (l *limitedSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &statusWriter{ResponseWriter: w}
	l.fake.ServeHTTP(rw, r)
	if rw.status == http.StatusTooManyRequests {
		l.limited.Add(1)
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// deferredEnv is a host on a state store with the Slack connector's post_message deferrable.
type deferredEnv struct {
	t     *testing.T
	dsn   string
	slack *limitedSlack
	srv   *httptest.Server
	m     *manifest.Manifest
	wasm  []byte
}

func newDeferredEnv(t *testing.T, dsn string) *deferredEnv {
	t.Helper()
	fake := fakeslack.New(canary)
	fake.SetRateLimit("chat.postMessage", 10, time.Second)
	e := &deferredEnv{t: t, dsn: dsn, slack: &limitedSlack{fake: fake}}
	e.srv = httptest.NewServer(e.slack)
	t.Cleanup(e.srv.Close)
	e.m, e.wasm = hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	for i := range e.m.Tools {
		if e.m.Tools[i].Name == "post_message" {
			e.m.Tools[i].Annotations.Deferrable = true
		}
	}
	return e
}

// posted returns the messages the tests posted (texts with " #"; the fake's channel has
// messages of its own).
func (e *deferredEnv) posted() []fakeslack.Message {
	return slices.DeleteFunc(e.slack.fake.Messages(fakeslack.General), func(m fakeslack.Message) bool { return !strings.Contains(m.Text, " #") })
}

// start opens the store and a host on it, as a restarted process would.
func (e *deferredEnv) start() (*host.Host, *store.Store, *hosttest.Recorder) {
	e.t.Helper()
	return e.startWith(host.Config{})
}

// startWith is start with cfg (its Store and Secrets are set here).
func (e *deferredEnv) startWith(cfg host.Config) (*host.Host, *store.Store, *hosttest.Recorder) {
	t := e.t
	t.Helper()
	st, err := store.Open(context.Background(), e.dsn)
	if err != nil {
		t.Fatalf("opening the state store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Store, cfg.Secrets = st, secrets()
	h, rec := hosttest.New(t, cfg)
	g := &manifest.Grant{Connector: e.m.Name, Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": e.srv.URL}}
	if err := h.LoadModule(context.Background(), e.m, e.wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, st, rec
}

// deferPost asks for a deferred post of text as subject and returns the job ID.
func deferPost(t *testing.T, h *host.Host, subject, text string) string {
	t.Helper()
	id, err := tryDeferPost(h, subject, text)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tryDeferPost is deferPost for other goroutines than the test's.
func tryDeferPost(h *host.Host, subject, text string) (string, error) {
	res := h.Call(context.Background(), host.CallRequest{Tool: "slack.post_message", Agent: "agent-q", Subject: subject, Defer: true,
		Arguments: json.RawMessage(fmt.Sprintf(`{"channel":%q,"text":%q}`, fakeslack.General, text))})
	if !res.OK {
		return "", fmt.Errorf("deferred post %q: %+v", text, res.Error)
	}
	var a host.Accepted
	if err := json.Unmarshal(res.Data, &a); err != nil || a.Status != "accepted" || a.JobID == "" || a.Poll != host.JobStatusTool {
		return "", fmt.Errorf("deferred post answered %s (%v); want {status: accepted, job_id, poll: %s}", res.Data, err, host.JobStatusTool)
	}
	return a.JobID, nil
}

// jobStatus asks airlock_job_status, as an agent would.
func jobStatus(h *host.Host, agent, subject, id string) (*host.JobStatus, *host.Result) {
	res := h.Call(context.Background(), host.CallRequest{Tool: host.JobStatusTool, Agent: agent, Subject: subject,
		Arguments: json.RawMessage(fmt.Sprintf(`{"job_id":%q}`, id))})
	if !res.OK {
		return nil, res
	}
	var st host.JobStatus
	if err := json.Unmarshal(res.Data, &st); err != nil {
		return nil, res
	}
	return &st, res
}

// deferredStores runs f on SQLite and on PostgreSQL, in parallel.
func deferredStores(t *testing.T, f func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, "sqlite:"+t.TempDir()+"/state.db")
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, testenv.Postgres(t))
	})
}

// TestDeferredCallsSurviveRestartFairly queues 1,000 posts (900 of one tenant, then 100 of
// another) against an upstream allowing 10 a second, restarts the host a third of the way, and
// checks at the upstream that every post landed exactly once, that no 429 reached the agent, and
// that the small tenant was not starved behind the big one. -short queues 100.
func TestDeferredCallsSurviveRestartFairly(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	deferredStores(t, func(t *testing.T, dsn string) {
		e := newDeferredEnv(t, dsn)
		h1, _, rec1 := e.start()
		if !slices.ContainsFunc(h1.ToolsFor("agent-q"), func(tl host.Tool) bool { return tl.Name == host.JobStatusTool }) {
			t.Fatalf("%s is not listed although slack.post_message is deferrable", host.JobStatusTool)
		}
		type job struct{ id, subject string }
		jobs := map[string]job{} // by text
		start := time.Now()
		// The big tenant's jobs, then the small tenant's, each accepted by 4 callers at once
		// (as agents would), so that acceptance is over long before the queue drains.
		var mu sync.Mutex
		for _, part := range [][2]int{{0, n * 9 / 10}, {n * 9 / 10, n}} {
			var wg sync.WaitGroup
			next := make(chan int)
			for range 4 {
				wg.Go(func() {
					for i := range next {
						subject := "tenant-big"
						if i >= n*9/10 {
							subject = "tenant-small"
						}
						text := fmt.Sprintf("%s #%d", subject, i)
						id, err := tryDeferPost(h1, subject, text)
						mu.Lock()
						if err != nil {
							t.Error(err)
						}
						jobs[text] = job{id, subject}
						mu.Unlock()
					}
				})
			}
			for i := part[0]; i < part[1]; i++ {
				next <- i
			}
			close(next)
			wg.Wait()
		}
		if t.Failed() {
			t.FailNow()
		}
		accepted := time.Since(start)
		posted := e.posted
		postedAtAccepted := len(posted()) // a loaded machine accepts slowly while jobs already run
		waitPosted(t, posted, n*3/10, time.Duration(n)*time.Second)
		// A restart: the host stops (jobs running finish), the process reopens the store.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := h1.Close(ctx); err != nil {
			t.Fatalf("closing the first host: %v", err)
		}
		cancel()
		atRestart := len(posted())
		h2, _, rec2 := e.start()
		waitPosted(t, posted, n, time.Duration(n)*time.Second)
		took := time.Since(start)

		// Exactly once each, at the upstream.
		seen := map[string]int{}
		lastSmall, lastBig := -1, -1
		for i, m := range posted() {
			seen[m.Text]++
			if strings.HasPrefix(m.Text, "tenant-small") {
				lastSmall = i
			} else {
				lastBig = i
			}
		}
		for text := range jobs {
			if seen[text] != 1 {
				t.Errorf("%q reached Slack %d times, want exactly once", text, seen[text])
			}
		}
		if len(seen) != n {
			t.Errorf("Slack holds %d distinct messages, want %d", len(seen), n)
		}
		// The agent sees every job done and successful: no 429 reached it.
		for text, j := range jobs {
			st, res := jobStatus(h2, "agent-q", j.subject, j.id)
			for deadline := time.Now().Add(10 * time.Second); st != nil && st.State == "running" && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond) // posted; its completion is being recorded
				st, res = jobStatus(h2, "agent-q", j.subject, j.id)
			}
			if st == nil {
				t.Fatalf("job status of %q: %+v", text, res.Error)
			}
			var out host.Result
			if st.State != "done" || json.Unmarshal(st.Result, &out) != nil || !out.OK {
				t.Fatalf("job of %q: state %s, result %s; want done and ok", text, st.State, st.Result)
			}
		}
		// Fair share: once the small tenant's jobs are all queued, they alternate with the big
		// tenant's, so its last post lands within about twice its number of posts (4× allows
		// for jobs in flight and the restart); a FIFO would put it last, behind every big job still queued.
		smallN := n - n*9/10
		if left := n - postedAtAccepted; left <= 4*smallN {
			t.Errorf("only %d posts were left when the last job was accepted (accepting took %v): too few to tell fair from FIFO; accept faster",
				left, accepted.Round(time.Millisecond))
		} else if lastSmall-postedAtAccepted > 4*smallN {
			t.Errorf("the small tenant's last post was #%d of %d, %d posts after its last job was accepted (the big tenant's last #%d): starved behind the big tenant",
				lastSmall, n, lastSmall-postedAtAccepted, lastBig)
		}
		t.Logf("%d jobs: accepted in %v (%d posted by then), all posted in %v (%d posted before the restart); small tenant done at post #%d, big at #%d; "+
			"the upstream answered %d × 429, none reached the agent", n, accepted.Round(time.Millisecond), postedAtAccepted, took.Round(time.Second), atRestart,
			lastSmall, lastBig, e.slack.limited.Load())

		// The job runs are audited as calls of the agent that asked, for its subject.
		runs := 0
		for _, rec := range []*hosttest.Recorder{rec1, rec2} {
			for _, ev := range rec.Audit.Events() {
				if ev.Kind == "call" && ev.Tool == "slack.post_message" && ev.Outcome == "ok" && !strings.HasPrefix(ev.Message, "accepted") {
					if ev.Agent != "agent-q" || (ev.Subject != "tenant-big" && ev.Subject != "tenant-small") {
						t.Fatalf("a job run was audited as agent %q subject %q", ev.Agent, ev.Subject)
					}
					runs++
				}
			}
			leaks(t, rec)
		}
		if runs < n {
			t.Errorf("%d job runs audited, want at least %d", runs, n)
		}
	})
}

func waitPosted(t *testing.T, posted func() []fakeslack.Message, want int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for len(posted()) < want {
		if time.Now().After(deadline) {
			t.Fatalf("after %v Slack holds %d messages, want %d", limit, len(posted()), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDeferredRevokeCancelsQueued revokes the grant while jobs wait: they are cancelled when the
// revoke returns, nothing more reaches the upstream, and each cancellation is audited.
func TestDeferredRevokeCancelsQueued(t *testing.T) {
	deferredStores(t, func(t *testing.T, dsn string) {
		e := newDeferredEnv(t, dsn)
		h, _, rec := e.start()
		const n = 150
		ids := make([]string, n)
		for i := range n {
			ids[i] = deferPost(t, h, "tenant-a", fmt.Sprintf("revoke #%d", i))
		}
		posted := e.posted
		waitPosted(t, posted, 15, time.Minute)
		if err := h.SetInstalled(context.Background(), e.m.Name, &host.Installed{Revoked: true}); err != nil {
			t.Fatal(err)
		}
		atRevoke := len(posted())
		queued := 0
		for _, id := range ids {
			if st, res := jobStatus(h, "agent-q", "tenant-a", id); st == nil {
				t.Fatalf("job status after the revoke: %+v", res.Error)
			} else if st.State == "queued" {
				queued++
			}
		}
		if queued > 0 {
			t.Errorf("%d jobs still queued when the revoke returned, want every one cancelled", queued)
		}
		time.Sleep(2 * time.Second) // jobs running at the revoke end
		cancelled, done := 0, 0
		for _, id := range ids {
			st, res := jobStatus(h, "agent-q", "tenant-a", id)
			if st == nil {
				t.Fatalf("job status after the revoke: %+v", res.Error)
			}
			switch st.State {
			case "cancelled":
				cancelled++
			case "done":
				done++
			default:
				t.Errorf("job %s is %s two seconds after the revoke, want cancelled or done", id, st.State)
			}
		}
		// Jobs running at the revoke (at most the 8 workers) may finish their request; no
		// queued one starts, and no job is lost or doubled.
		final := len(posted())
		if final-atRevoke > 8 {
			t.Errorf("%d posts reached Slack after the revoke returned, want at most the 8 running", final-atRevoke)
		}
		if final < done || final > done+8 || done+cancelled != n {
			t.Errorf("%d posted, %d jobs done, %d cancelled of %d", final, done, cancelled, n)
		}
		t.Logf("revoke after %d posts: %d cancelled, %d done, %d posted in all", atRevoke, cancelled, done, final)
		audited := 0
		for _, ev := range rec.Audit.Events() {
			if ev.Kind == "call" && ev.Outcome == "denied" && strings.Contains(ev.Message, "cancelled") && ev.Agent == "agent-q" {
				audited++
			}
		}
		if audited < cancelled {
			t.Errorf("%d cancellations audited, want %d", audited, cancelled)
		}
	})
}

// TestDeferredCheckedAtAccept: a deferred call is validated when it is accepted, and only a
// deferrable tool may be deferred; job status is only for the agent and subject that asked.
func TestDeferredCheckedAtAccept(t *testing.T) {
	dir := t.TempDir()
	e := newDeferredEnv(t, "sqlite:"+dir+"/state.db")
	h, _, _ := e.start()
	ctx := context.Background()
	bad := h.Call(ctx, host.CallRequest{Tool: "slack.post_message", Agent: "agent-q", Defer: true, Arguments: json.RawMessage(`{"channel":"C0GENERAL"}`)})
	if bad.OK || bad.Error.Code != abi.CodeInvalidArguments {
		t.Errorf("deferred call without its text = %+v; want invalid_arguments at once", bad.Error)
	}
	notDeferrable := h.Call(ctx, host.CallRequest{Tool: "slack.list_channels", Agent: "agent-q", Defer: true, Arguments: json.RawMessage(`{}`)})
	if notDeferrable.OK || notDeferrable.Error.Category != abi.Correctable || !strings.Contains(notDeferrable.Error.Message, "without defer") {
		t.Errorf("deferring a tool that is not deferrable = %+v, %s; want a correctable refusal", notDeferrable.Error, notDeferrable.Data)
	}
	id := deferPost(t, h, "tenant-a", "mine #1")
	for _, who := range []struct{ agent, subject string }{{"agent-other", "tenant-a"}, {"agent-q", "tenant-b"}} {
		if st, res := jobStatus(h, who.agent, who.subject, id); st != nil || res.Error.Code != abi.CodeInvalidArguments {
			t.Errorf("job status asked by %s for %s = %s %+v; want the same answer as for no such job", who.agent, who.subject, res.Data, res.Error)
		}
	}
	if st, res := jobStatus(h, "agent-q", "tenant-a", "999999"); st != nil || res.Error.Category != abi.Correctable {
		t.Errorf("status of an unknown job = %+v", res.Error)
	}
	waitPosted(t, e.posted, 1, time.Minute)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, res := jobStatus(h, "agent-q", "tenant-a", id)
		if st == nil {
			t.Fatalf("job status: %+v", res.Error)
		}
		if st.State == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s: %+v", st.State, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeferredRunsUnderNoWiderGrant accepts jobs on a host that only queues (as `airlock call
// --defer` does) and runs them on another: a job whose grant was widened after it was accepted
// is cancelled, one whose grant was narrowed (still granting its tool) runs.
func TestDeferredRunsUnderNoWiderGrant(t *testing.T) {
	e := newDeferredEnv(t, "sqlite:"+t.TempDir()+"/state.db")
	st, err := store.Open(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	fileGrant := &manifest.Grant{Connector: e.m.Name, Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": e.srv.URL}}
	storeGrant := func(tools ...string) *manifest.Grant {
		g := &manifest.Grant{Connector: e.m.Name, Tools: tools, Scopes: []string{"*"}, Hosts: []string{"*"}}
		b, _ := json.Marshal(g)
		if _, err := st.PutGrant(ctx, e.m.Name, b, "admin", ""); err != nil {
			t.Fatal(err)
		}
		return g
	}
	newHost := func(workers int, g *manifest.Grant) *host.Host {
		h, _ := hosttest.New(t, host.Config{Store: st, Secrets: secrets(), DeferredWorkers: workers})
		if err := h.LoadModule(ctx, e.m, e.wasm, fileGrant); err != nil {
			t.Fatal(err)
		}
		if err := h.SetInstalled(ctx, e.m.Name, &host.Installed{Grant: g}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	queuer := newHost(-1, storeGrant("post_message"))                           // version 1
	widened := deferPost(t, queuer, "tenant-a", "widened #1")                   // accepted under version 1
	queuer.SetInstalled(ctx, e.m.Name, &host.Installed{Grant: storeGrant("*")}) // version 2: every tool
	narrowed := deferPost(t, queuer, "tenant-a", "narrowed #1")                 // accepted under version 2
	runner := newHost(0, storeGrant("post_message", "list_channels"))           // version 3: narrower than 2

	waitState := func(id, want string) *host.JobStatus {
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, res := jobStatus(runner, "agent-q", "tenant-a", id)
			if st == nil {
				t.Fatalf("job status: %+v", res.Error)
			}
			if st.State == want {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s is %s, want %s (%s)", id, st.State, want, st.Result)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	st1 := waitState(widened, "cancelled")
	if !strings.Contains(string(st1.Result), "allows more") {
		t.Errorf("the cancelled job's result %s does not say the grant now allows more", st1.Result)
	}
	waitState(narrowed, "done")
	posts := map[string]int{}
	for _, m := range e.posted() {
		posts[m.Text]++
	}
	if posts["widened #1"] != 0 || posts["narrowed #1"] != 1 {
		t.Errorf("Slack got %v; want the narrowed job's post only", posts)
	}
}

// TestDeferredActAsRecheckedAtRun: a job accepted for a subject the agent's profile let it act
// for does not run once the profile no longer allows that subject.
func TestDeferredActAsRecheckedAtRun(t *testing.T) {
	e := newDeferredEnv(t, "sqlite:"+t.TempDir()+"/state.db")
	st, err := store.Open(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := &manifest.Grant{Connector: e.m.Name, Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": e.srv.URL}}
	newHost := func(workers int, subjects ...string) *host.Host {
		h, _ := hosttest.New(t, host.Config{Store: st, Secrets: secrets(), DeferredWorkers: workers})
		if err := h.LoadModule(context.Background(), e.m, e.wasm, g); err != nil {
			t.Fatal(err)
		}
		h.SetProfiles([]host.Profile{{Name: "ops", Members: []string{"agent-q"}, Tools: []string{"*"}, Subjects: subjects}})
		return h
	}
	queuer := newHost(-1, "tenant-b")
	res := queuer.Call(context.Background(), host.CallRequest{Tool: "slack.post_message", Agent: "agent-q", Subject: "tenant-a",
		ActAs: "tenant-b", Defer: true, Arguments: json.RawMessage(`{"channel":"C0GENERAL","text":"as b #1"}`)})
	if !res.OK {
		t.Fatalf("deferred call acting for tenant-b: %+v", res.Error)
	}
	var a host.Accepted
	json.Unmarshal(res.Data, &a)
	newHost(0) // runs the job; its profile no longer lists tenant-b
	deadline := time.Now().Add(30 * time.Second)
	for {
		js, res := jobStatus(queuer, "agent-q", "tenant-b", a.JobID)
		if js == nil {
			t.Fatalf("job status: %+v", res.Error)
		}
		if js.State == "cancelled" || js.State == "done" {
			var out host.Result
			json.Unmarshal(js.Result, &out)
			if js.State != "cancelled" || out.OK || out.Error.Code != abi.CodeNotGranted {
				t.Fatalf("job ended %s with %s; want cancelled, not granted", js.State, js.Result)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s", js.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(e.posted()); n != 0 {
		t.Errorf("%d posts reached Slack for a subject the profile no longer allows", n)
	}
}

// TestDeferredWaitsForItsConnectorAtStart: a restarted host starts its queue with the first
// connector that has a deferrable tool; a job of a connector it has not loaded yet waits for it
// instead of failing as an unknown tool.
func TestDeferredWaitsForItsConnectorAtStart(t *testing.T) {
	e := newDeferredEnv(t, "sqlite:"+t.TempDir()+"/state.db")
	st, err := store.Open(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := func(name string) *manifest.Grant {
		return &manifest.Grant{Connector: name, Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
			Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
			Upstreams:   map[string]string{"https://slack.com": e.srv.URL}}
	}
	queuer, _ := hosttest.New(t, host.Config{Store: st, Secrets: secrets(), DeferredWorkers: -1})
	if err := queuer.LoadModule(context.Background(), e.m, e.wasm, g(e.m.Name)); err != nil {
		t.Fatal(err)
	}
	id := deferPost(t, queuer, "tenant-a", "late #1")

	runner, _ := hosttest.New(t, host.Config{Store: st, Secrets: secrets()})
	other := *e.m
	other.Name = "slack_b" // loaded first: the queue starts with it
	if err := runner.LoadModule(context.Background(), &other, e.wasm, g(other.Name)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the job is taken while slack is not loaded
	if err := runner.LoadModule(context.Background(), e.m, e.wasm, g(e.m.Name)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		js, res := jobStatus(runner, "agent-q", "tenant-a", id)
		if js == nil {
			t.Fatalf("job status: %+v", res.Error)
		}
		if js.State == "done" {
			var out host.Result
			if json.Unmarshal(js.Result, &out) != nil || !out.OK {
				t.Fatalf("job done with %s; want the post's success", js.Result)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s", js.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(e.posted()); n != 1 {
		t.Errorf("%d posts reached Slack, want 1", n)
	}
}
