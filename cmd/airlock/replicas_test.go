package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/airlock-dev/airlock/host/mcp"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// replicaBound is what TestReplicas asserts for propagation to the other replicas. The target
// is 100 ms p99 (and the figures are printed); the assertion leaves room for a loaded 2-core CI
// machine. The deciding replica gets no slack at all: zero late calls.
const replicaBound = time.Second

// replica is one 'airlock serve --http' process of TestReplicas.
type replica struct {
	n    int
	url  string // http://127.0.0.1:PORT
	cmd  *exec.Cmd
	logs *testenv.Buffer
}

// replicaWorld is three replicas on one PostgreSQL and one Redis, with the Slack connector
// installed and granted, as an operator following the README sets them up.
type replicaWorld struct {
	dir, dsn, key, bin string
	g                  []string // state flags for CLI commands
	replicas           []*replica
	adminToken         string
	grant              []byte // the grant JSON to put back after a revoke
}

func newReplicaWorld(t *testing.T) *replicaWorld {
	t.Helper()
	hermetic(t)
	w := &replicaWorld{dir: t.TempDir(), dsn: testenv.Postgres(t)}
	redisURL := testenv.Redis(t)
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The binary, built once, as the container image would hold it.
	w.bin = filepath.Join(w.dir, "airlock")
	build := exec.Command("go", "build", "-o", w.bin, "./cmd/airlock")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	wasm, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/slack", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	stamped, err := pluginbuild.Stamp(filepath.Join(root, "manifests/slack.yaml"), wasm, filepath.Join(w.dir, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeslack.New(grantCanary)
	upstream, stop := fake.Start()
	t.Cleanup(stop)

	// One master key, named identically by every replica and the CLI.
	w.key = filepath.Join(w.dir, "master.key")
	if code, _, errOut := airlock(t, "init", "master-key", "--out", w.key); code != exitOK {
		t.Fatalf("init master-key = %d: %s", code, errOut)
	}
	// No connectors in a configuration file: everything comes from the shared store.
	os.WriteFile(filepath.Join(w.dir, "none.yaml"), []byte("connectors: []\n"), 0o600)
	w.g = []string{"--state", w.dsn, "--master-key", "file:" + w.key, "--state-dir", filepath.Join(w.dir, "cli"),
		"--config", filepath.Join(w.dir, "none.yaml")}
	st, err := store.Open(context.Background(), w.dsn)
	if err != nil {
		t.Fatal(err)
	}
	installSlack(t, st, stamped, wasm)
	st.Close()
	withStdin(t, grantCanary+"\n")
	w.cli(t, "secret", "set", "slack_bot")
	routes := filepath.Join(w.dir, "routes.yaml")
	os.WriteFile(routes, []byte(fmt.Sprintf("connector: slack\nupstreams: {\"https://slack.com\": %q}\n", upstream)), 0o600)
	w.cli(t, "grant", "slack", "--file", routes, "--tools", "*", "--scopes", "*", "--hosts", "*", "--credential", "bot_token=store:slack_bot")
	st, err = store.Open(context.Background(), w.dsn)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := st.CurrentGrant(context.Background(), "slack")
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	w.grant = cur.Grant
	w.adminToken = strings.TrimSpace(w.cli(t, "admin", "add", "root", "--role", "owner"))

	for i := 1; i <= 3; i++ {
		w.replicas = append(w.replicas, w.start(t, i, redisURL))
	}
	return w
}

func (w *replicaWorld) cli(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := airlock(t, append(args, w.g...)...)
	if code != exitOK {
		t.Fatalf("airlock %s = %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// start runs replica n with its own state directory (its compilation cache), sharing nothing
// else with the others but PostgreSQL, Redis and the master key reference.
func (w *replicaWorld) start(t *testing.T, n int, redisURL string) *replica {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	r := &replica{n: n, url: "http://" + addr, logs: &testenv.Buffer{}}
	r.cmd = exec.Command(w.bin, "serve", "--http", addr, "--state", w.dsn, "--redis", redisURL,
		"--master-key", "file:"+w.key, "--state-dir", filepath.Join(w.dir, fmt.Sprintf("replica%d", n)),
		"--config", filepath.Join(w.dir, "none.yaml"), "--log-level", "info")
	r.cmd.Env = append(os.Environ(), "AIRLOCK_MASTER_KEY=", "AIRLOCK_MASTER_KEY_REF=", "AIRLOCK_STATE=", "AIRLOCK_STATE_DIR=", "AIRLOCK_CONFIG=", "AIRLOCK_REDIS=")
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { r.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			r.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("replica %d output:\n%s", n, r.logs.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(r.url + "/admin/v1/grants")
		if err == nil {
			resp.Body.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d did not start listening: %v\n%s", n, err, r.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// admin sends an admin API request to replica r and returns when it answered: the
// acknowledgement.
func (w *replicaWorld) admin(t *testing.T, r *replica, method, path string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, r.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+w.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s on replica %d = %d: %s", method, path, r.n, resp.StatusCode, out)
	}
}

func connectMCP(t *testing.T, r *replica, token string) (*sdk.ClientSession, error) {
	c := sdk.NewClient(&sdk.Implementation{Name: "replica-test", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: r.url + "/mcp", MaxRetries: -1,
		HTTPClient: &http.Client{Transport: bearerTransport{token: token}, Timeout: 30 * time.Second}}, nil)
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

// replicaOK counts the calls TestReplicas saw succeed, to compare with the audit log.
var replicaOK atomic.Int64

// callResult is one tool call as the agent saw it.
type callResult struct {
	start, end time.Time
	ok         bool
	code       string
}

func callOnce(cs *sdk.ClientSession) callResult {
	c := callResult{start: time.Now()}
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "slack.list_channels", Arguments: map[string]any{}})
	c.end = time.Now()
	if err != nil {
		c.code = "transport: " + err.Error()
		return c
	}
	c.ok = !res.IsError
	if c.ok {
		replicaOK.Add(1)
	} else {
		var e struct{ Code string }
		if b, err := json.Marshal(res.Meta[mcp.ErrorKey]); err == nil {
			json.Unmarshal(b, &e)
		}
		c.code = e.Code
	}
	return c
}

// loop calls the tool on cs until stop is closed and returns every call.
func loop(cs *sdk.ClientSession, stop <-chan struct{}) []callResult {
	var out []callResult
	for {
		select {
		case <-stop:
			return out
		default:
		}
		c := callOnce(cs)
		out = append(out, c)
		if strings.HasPrefix(c.code, "transport") {
			time.Sleep(10 * time.Millisecond) // a dead replica: do not spin
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// TestReplicas runs three real 'airlock serve --http' processes on one PostgreSQL and one Redis
// and checks what issue 16 asks of them: a token issued once works on all; a revoke
// acknowledged by one replica admits no further call there and reaches the others within the
// bound (p50/p99 printed); a quota holds across replicas in total; and a replica killed with
// SIGKILL mid-call leaves the others serving.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the airlock binary and starts three servers")
	}
	w := newReplicaWorld(t)
	r1, r2, r3 := w.replicas[0], w.replicas[1], w.replicas[2]

	// A token issued once (through the CLI, on the shared store) works on every replica.
	replicaOK.Store(0)
	// Quotas live in the shared Redis beyond this test: a name of this run's own.
	agent := fmt.Sprintf("bot-%d", time.Now().UnixNano())
	token := strings.TrimSpace(w.cli(t, "agent", "add", agent))
	sessions := make([]*sdk.ClientSession, 3)
	for i, r := range w.replicas {
		cs, err := connectMCP(t, r, token)
		if err != nil {
			t.Fatalf("the token issued once is refused by replica %d: %v", r.n, err)
		}
		if c := callOnce(cs); !c.ok {
			t.Fatalf("replica %d: first call = %s", r.n, c.code)
		}
		sessions[i] = cs
	}

	// Revoke on replica 1 while agents call in a loop on each replica, several rounds.
	const rounds = 8
	var (
		lateDeciding int             // calls started on replica 1 after its acknowledgement that succeeded
		lateOthers   int             // the same on the others (allowed within the bound)
		propagation  []time.Duration // ack → first refused call started on another replica (an upper bound)
		lastAdmitted []time.Duration // ack → last call admitted on another replica (a lower bound)
	)
	for round := range rounds {
		stop := make(chan struct{})
		results := make([][]callResult, 3)
		var wg sync.WaitGroup
		for i := range sessions {
			wg.Add(1)
			go func() { defer wg.Done(); results[i] = loop(sessions[i], stop) }()
		}
		time.Sleep(150 * time.Millisecond)
		w.admin(t, r1, "DELETE", "/admin/v1/grants/slack?note=round", nil)
		ack := time.Now()
		time.Sleep(replicaBound + 200*time.Millisecond)
		close(stop)
		wg.Wait()
		for i, res := range results {
			var firstRefused, lastOK time.Time
			late := 0
			for _, c := range res {
				if !c.start.After(ack) {
					continue
				}
				if c.ok {
					late++
					lastOK = c.start
				} else if firstRefused.IsZero() {
					firstRefused = c.start
					// The MCP layer refuses a tool no longer listed before it reaches the host.
					if c.code != "not_granted" && !strings.Contains(c.code, "unknown tool") {
						t.Errorf("round %d replica %d: a call after the revoke failed with %q, want not_granted", round, i+1, c.code)
					}
				}
			}
			if i == 0 {
				lateDeciding += late
				continue
			}
			lateOthers += late
			if firstRefused.IsZero() {
				t.Errorf("round %d: replica %d still ran calls %s after the revoke was acknowledged", round, i+1, replicaBound)
				continue
			}
			// The refusal took effect at most when the first refused call started (and after
			// the last admitted one).
			propagation = append(propagation, firstRefused.Sub(ack))
			if lastOK.IsZero() {
				lastOK = ack
			}
			lastAdmitted = append(lastAdmitted, lastOK.Sub(ack))
		}
		// Grant again through another replica, and wait until every replica serves.
		w.admin(t, w.replicas[(round+1)%3], "PUT", "/admin/v1/grants/slack?note=round", w.grant)
		for i, cs := range sessions {
			deadline := time.Now().Add(5 * time.Second)
			for c := callOnce(cs); !c.ok; c = callOnce(cs) {
				if time.Now().After(deadline) {
					t.Fatalf("round %d: replica %d does not serve after the grant: %s", round, i+1, c.code)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	// The refusal took effect on a replica between the start of its last admitted call and the
	// start of its first refused one (the agent's call in between may have been slow).
	p50, p99 := percentile(propagation, 0.50), percentile(propagation, 0.99)
	l50, l99 := percentile(lastAdmitted, 0.50), percentile(lastAdmitted, 0.99)
	t.Logf("revoke propagation to the other replicas over %d samples: first refused call p50 %v, p99 %v (upper bound); last admitted call p50 %v, p99 %v (lower bound); late calls: %d on the deciding replica, %d on the others",
		len(propagation), p50.Round(time.Microsecond), p99.Round(time.Microsecond), l50.Round(time.Microsecond), l99.Round(time.Microsecond), lateDeciding, lateOthers)
	if lateDeciding != 0 {
		t.Errorf("%d calls started after the deciding replica acknowledged the revoke and ran; want 0", lateDeciding)
	}
	if p99 > replicaBound {
		t.Errorf("revoke propagation p99 = %v; want ≤ %v (target 100ms)", p99, replicaBound)
	}
	if os.Getenv("AIRLOCK_BENCH_REPLICAS") != "" {
		fmt.Printf("replicas: revoke propagation to other replicas (n=%d): last admitted call p50 %v p99 %v, first refused call p50 %v p99 %v; late calls deciding=%d others=%d\n",
			len(propagation), l50.Round(time.Microsecond), l99.Round(time.Microsecond), p50.Round(time.Microsecond), p99.Round(time.Microsecond), lateDeciding, lateOthers)
	}

	// A token revoked on one replica is refused by all on the next request.
	token2 := strings.TrimSpace(w.cli(t, "agent", "add", "temp"))
	for _, r := range w.replicas {
		if _, err := connectMCP(t, r, token2); err != nil {
			t.Fatalf("replica %d refuses a fresh token: %v", r.n, err)
		}
	}
	w.cli(t, "agent", "revoke", "temp")
	for _, r := range w.replicas {
		if _, err := connectMCP(t, r, token2); err == nil {
			t.Errorf("replica %d accepts a revoked token", r.n)
		}
	}

	// A quota shared through Redis: no more than its calls in total across replicas.
	const quota = 12
	var g map[string]any
	json.Unmarshal(w.grant, &g)
	g["quotas"] = map[string]any{"per_agent": map[string]any{"calls": quota, "period_s": 300}}
	quotaGrant, _ := json.Marshal(g)
	w.admin(t, r2, "PUT", "/admin/v1/grants/slack?note=quota", quotaGrant)
	time.Sleep(replicaBound) // every replica runs the new grant
	var (
		mu    sync.Mutex
		okAll int
		wg    sync.WaitGroup
	)
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range quota {
				if c := callOnce(sessions[i]); c.ok {
					mu.Lock()
					okAll++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("quota of %d calls per 300s, %d calls made over 3 replicas: %d admitted", quota, 3*quota, okAll)
	if okAll > quota {
		t.Errorf("%d calls admitted across the replicas under a quota of %d: the quota does not hold across replicas", okAll, quota)
	}
	w.admin(t, r1, "PUT", "/admin/v1/grants/slack?note=no+quota", w.grant)
	time.Sleep(replicaBound)

	// Kill replica 3 with SIGKILL while its agent calls in a loop; the others keep serving.
	stop := make(chan struct{})
	var killed []callResult
	done := make(chan struct{})
	go func() { killed = loop(sessions[2], stop); close(done) }()
	time.Sleep(300 * time.Millisecond)
	r3.cmd.Process.Signal(syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	<-done
	for i, cs := range sessions[:2] {
		if c := callOnce(cs); !c.ok {
			t.Errorf("replica %d after replica 3 was killed: %s", i+1, c.code)
		}
	}
	// What the audit log holds of the calls the agent saw succeed on replica 3: a result is
	// returned only once its call record is committed (host/audit.StoreSink), so none is lost.
	var seenOK int
	for _, c := range killed {
		if c.ok {
			seenOK++
		}
	}
	// Every call the agent saw succeed, on any replica, killed or not, is in the audit log.
	st, err := store.Open(context.Background(), w.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var audited int64
	for after := int64(0); ; {
		recs, err := st.QueryAudit(context.Background(), store.AuditFilter{Agent: agent, Kind: "call", Decision: "ok", AfterSeq: after})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		audited += int64(len(recs))
		after = recs[len(recs)-1].Seq
	}
	seen := replicaOK.Load()
	lost := seen - audited
	t.Logf("replica 3 killed by SIGKILL mid-loop after the agent saw %d of its last %d calls succeed there; "+
		"successful calls seen by the agent: %d, audited: %d, lost: %d", seenOK, len(killed), seen, audited, lost)
	// A call whose record was committed as the replica died may never have reached the agent:
	// the log may hold more successes than the agent saw, never fewer.
	if lost > 0 {
		t.Errorf("the audit log holds %d successful calls of the agent, which saw %d succeed: every success must be on record", audited, seen)
	}
}
