package main

// Row 8: a crowd over MCP streamable HTTP on loopback. The floor is a minimal go-sdk MCP server
// whose one tool does nothing; airlock is composed as `airlock serve --http` composes it (SQLite
// state store, durable audit sink with its signed trail, agent tokens in the store, the HTTP
// handler with its sessions, Origin and bearer checks) serving hostile.noop (no I/O). Both are
// driven by the same go-sdk clients in this process: 200 clients with a session each, and 200
// concurrent calls on one session.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

// crowdSize is how many clients (or concurrent calls on one session) row 8 runs.
const crowdSize = 200

// mcpTarget is one MCP server under load: where it listens, the tool to call and a bearer token
// per client ("" for none).
type mcpTarget struct {
	url    string
	tool   string
	tokens []string
}

// mcpRows measures row 8. stateDir is a fresh directory; cacheDir the compilation cache.
func mcpRows(ctx context.Context, o *options, stateDir, cacheDir string, hostileM *manifest.Manifest, hostileWasm []byte,
	hostileGrant *manifest.Grant) ([]*Row, error) {
	floor, stopFloor, err := startFloor()
	if err != nil {
		return nil, err
	}
	defer stopFloor()
	airlock, stopAirlock, err := startAirlockHTTP(ctx, stateDir, cacheDir, hostileM, hostileWasm, hostileGrant, false)
	if err != nil {
		return nil, err
	}
	defer stopAirlock()

	// The floor and airlock take turns, run by run, so that both see the same machine (other
	// processes come and go on a shared one).
	var rows []*Row
	dur := 2 * o.benchtime
	for _, shape := range []struct {
		key, what string
		sessions  int
	}{
		{"clients", fmt.Sprintf("%d clients, a session each", crowdSize), crowdSize},
		{"session", fmt.Sprintf("%d concurrent calls on one session", crowdSize), 1},
	} {
		fmt.Fprintf(o.stderr, "bench: MCP streamable HTTP, %s: go-sdk floor and airlock in turns\n", shape.what)
		rs, err := crowdRows(ctx, o.count, []*mcpTarget{floor, airlock}, shape.sessions, crowdSize, dur)
		if err != nil {
			return nil, fmt.Errorf("MCP crowd, %s: %w", shape.what, err)
		}
		for i, t := range []struct{ key, what string }{
			{"floor", "go-sdk floor (no-op tool)"},
			{"airlock", "airlock serve --http, hostile.noop"},
		} {
			rs[i].Group, rs[i].Key, rs[i].What = "8", "mcp-"+t.key+"-"+shape.key, "MCP streamable HTTP: "+t.what+", "+shape.what
		}
		roundRatios(rs[1], rs[0], "floor")
		rows = append(rows, rs...)
	}

	// Issue 26's workload, as an operator meets it: one MCP session, 20 concurrent callers of a
	// no-I/O tool, with the audit trail durable before each result (what serve does) beside a
	// queued sink (a crash loses the queue), in turns.
	queuedDir := filepath.Join(stateDir, "queued")
	if err := os.MkdirAll(queuedDir, 0o755); err != nil {
		return nil, err
	}
	queued, stopQueued, err := startAirlockHTTP(ctx, queuedDir, cacheDir, hostileM, hostileWasm, hostileGrant, true)
	if err != nil {
		return nil, err
	}
	defer stopQueued()
	fmt.Fprintf(o.stderr, "bench: MCP streamable HTTP, one session, %d callers: audit durable and queued in turns\n", auditCallers)
	rs, err := crowdRows(ctx, o.count, []*mcpTarget{airlock, queued}, 1, auditCallers, dur)
	if err != nil {
		return nil, fmt.Errorf("MCP audit durability: %w", err)
	}
	for i, v := range []string{"durable", "queued"} {
		rs[i].Group, rs[i].Key, rs[i].What = "8", "mcp20-"+v, fmt.Sprintf("MCP streamable HTTP: airlock serve --http, hostile.noop, one session, %d callers, audit %s", auditCallers, v)
	}
	roundRatios(rs[0], rs[1], "queued")
	return append(rows, rs...), nil
}

// auditCallers is the number of concurrent callers on one MCP session of issue 26's measure.
const auditCallers = 20

// mcpRatios sets the ratios of row 8: airlock's calls/s over the floor's, shape by shape.
func mcpRatios(set func(key, base, label string)) {
	// airlock's rows carry the median of per-round ratios (pairRatios); only the baselines are set here.
	for _, shape := range []string{"clients", "session"} {
		set("mcp-floor-"+shape, "mcp-floor-"+shape, "floor")
	}
	set("mcp20-queued", "mcp20-queued", "queued")
}

// startFloor serves a minimal go-sdk MCP server (stateful streamable HTTP, as the SDK ships it)
// whose tool "noop" answers at once.
func startFloor() (*mcpTarget, func(), error) {
	s := sdk.NewServer(&sdk.Implementation{Name: "floor", Version: "1"}, nil)
	s.AddTool(&sdk.Tool{Name: "noop", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "{}"}}}, nil
		})
	url, stop, err := serveLoopback(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, nil))
	if err != nil {
		return nil, nil, err
	}
	return &mcpTarget{url: url + "/mcp", tool: "noop", tokens: make([]string, crowdSize)}, stop, nil
}

// startAirlockHTTP serves airlock's MCP endpoint as `airlock serve --http` composes it, with the
// hostile connector loaded and one agent token per client (an agent may hold at most
// mcp.DefaultMaxSessionsPerAgent sessions).
//
// queued makes the audit sink return at enqueue (a crash loses the queue), for comparison.
func startAirlockHTTP(ctx context.Context, dir, cacheDir string, m *manifest.Manifest, wasm []byte, g *manifest.Grant, queued bool) (*mcpTarget, func(), error) {
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "state.db"))
	if err != nil {
		return nil, nil, err
	}
	cfg := hostConfig(dir, cacheDir)
	sink := audit.NewStoreSink(st, &audit.StoreSinkOptions{Logger: cfg.Logger, Trail: audit.TrailOf(st), Queued: queued})
	cfg.Store, cfg.Audit = st, sink
	h, err := host.New(cfg)
	if err != nil {
		return nil, nil, errors.Join(err, sink.Close(), st.Close())
	}
	closeAll := func() { h.Close(context.Background()); sink.Close(); st.Close() }
	if err := h.LoadModule(ctx, m, wasm, g); err != nil {
		closeAll()
		return nil, nil, err
	}
	srv := mcp.NewServer(h, &mcp.Options{Logger: cfg.Logger})
	agents := mcp.StoreAgents(st)
	t := &mcpTarget{tool: "hostile.noop"}
	for i := range crowdSize {
		token, err := agents.Add(fmt.Sprintf("bench-%03d", i), "")
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		t.tokens = append(t.tokens, token)
	}
	opts := &mcp.HTTPOptions{}
	hs := mcp.NewHTTPServer(srv.HTTPHandler(agents, opts), opts, cfg.Logger)
	url, stop, err := serveServer(hs)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	t.url = url + mcp.HTTPPath
	return t, func() { stop(); closeAll() }, nil
}

func serveLoopback(h http.Handler) (string, func(), error) {
	return serveServer(&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second})
}

func serveServer(hs *http.Server) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), func() { hs.Close() }, nil
}

// bearerTransport adds an Authorization header to every request.
type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(r)
}

// crowd is a set of client sessions on one target.
type crowd struct {
	t   *mcpTarget
	css []*sdk.ClientSession
	tr  *http.Transport
}

// connect opens sessions sessions on t.
func connect(ctx context.Context, t *mcpTarget, sessions, callers int) (*crowd, error) {
	c := &crowd{t: t, css: make([]*sdk.ClientSession, sessions),
		tr: &http.Transport{MaxIdleConns: 4 * callers, MaxIdleConnsPerHost: 4 * callers, IdleConnTimeout: time.Minute}}
	err := forCallers(sessions, func(i int) (err error) {
		cl := sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "1"}, nil)
		c.css[i], err = cl.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: t.url, MaxRetries: -1,
			HTTPClient: &http.Client{Transport: bearerTransport{t.tokens[i], c.tr}}}, nil)
		return err
	})
	if err != nil {
		c.close()
		return nil, fmt.Errorf("connecting: %w", err)
	}
	return c, nil
}

func (c *crowd) close() {
	for _, cs := range c.css {
		if cs != nil {
			cs.Close()
		}
	}
	c.tr.CloseIdleConnections()
}

// run has callers goroutines (spread evenly over the sessions) call the tool for d.
func (c *crowd) run(ctx context.Context, callers int, d time.Duration) (crowdRun, error) {
	params := &sdk.CallToolParams{Name: c.t.tool, Arguments: json.RawMessage(`{}`)}
	lat := make([][]time.Duration, callers)
	cpu0 := testenv.CPUTime()
	start := time.Now()
	deadline := start.Add(d)
	err := forCallers(callers, func(i int) error {
		cs := c.css[i%len(c.css)]
		for time.Now().Before(deadline) {
			t0 := time.Now()
			res, err := cs.CallTool(ctx, params)
			if err == nil && res.IsError {
				err = fmt.Errorf("tool error: %v", res.Content)
			}
			if err != nil {
				return err
			}
			lat[i] = append(lat[i], time.Since(t0))
		}
		return nil
	})
	took, cpu := time.Since(start), time.Duration(testenv.CPUTime()-cpu0)
	all := slices.Concat(lat...)
	if err == nil && len(all) == 0 {
		err = errors.New("no call completed")
	}
	slices.Sort(all)
	return crowdRun{float64(len(all)) / took.Seconds(), all, cpu / time.Duration(max(len(all), 1))}, err
}

// crowdRun is the outcome of one crowd run: calls/s, the sorted latencies, and the CPU time
// of this process (server and clients) per call.
type crowdRun struct {
	rate float64
	lat  []time.Duration
	cpu  time.Duration
}

// crowdRows opens sessions sessions on each target and runs callers concurrent calls (spread
// evenly over the sessions) on each for d, the targets taking turns, count times. Each target's
// row holds its median calls/s, with the p50 and p99 latency and the CPU time per call of that
// run (the CPU time is steadier than calls/s on a machine other processes share).
func crowdRows(ctx context.Context, count int, targets []*mcpTarget, sessions, callers int, d time.Duration) ([]*Row, error) {
	crowds := make([]*crowd, len(targets))
	defer func() {
		for _, c := range crowds {
			if c != nil {
				c.close()
			}
		}
	}()
	for i, t := range targets {
		c, err := connect(ctx, t, sessions, callers)
		if err != nil {
			return nil, err
		}
		crowds[i] = c
		if _, err := c.run(ctx, callers, 100*time.Millisecond); err != nil { // warm up
			return nil, err
		}
	}
	runs := make([][]crowdRun, len(targets))
	for range count {
		for i, c := range crowds {
			goruntime.GC()
			r, err := c.run(ctx, callers, d)
			if err != nil {
				return nil, err
			}
			runs[i] = append(runs[i], r)
		}
	}
	rows := make([]*Row, len(targets))
	for i, rs := range runs {
		rows[i] = &Row{Unit: "calls/s"}
		for _, r := range rs {
			rows[i].Samples = append(rows[i].Samples, r.rate) // in run order: round k of every target
		}
		rs = slices.Clone(rs)
		slices.SortFunc(rs, func(a, b crowdRun) int { return cmpFloat(a.rate, b.rate) })
		med := rs[len(rs)/2]
		rows[i].Median, rows[i].P50, rows[i].P99, rows[i].CPU = med.rate, float64(med.lat[len(med.lat)/2]),
			float64(med.lat[len(med.lat)*99/100]), float64(med.cpu)
	}
	return rows, nil
}

// roundRatios gives row the median of its per-round ratios to base (both from one crowdRows, whose
// targets took turns round by round), so a busy moment of a shared machine hits both sides of a
// round rather than one row's median.
func roundRatios(row, base *Row, label string) {
	for k := range min(len(row.Samples), len(base.Samples)) {
		if base.Samples[k] > 0 {
			row.RatioSamples = append(row.RatioSamples, row.Samples[k]/base.Samples[k])
		}
	}
	if len(row.RatioSamples) > 0 {
		row.Ratio, row.RatioTo = median(row.RatioSamples), label
	}
}

// forCallers runs fn(0) … fn(n-1) concurrently and returns their errors.
func forCallers(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
