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
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sync"
	"time"

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
	airlock, stopAirlock, err := startAirlockHTTP(ctx, stateDir, cacheDir, hostileM, hostileWasm, hostileGrant)
	if err != nil {
		return nil, err
	}
	defer stopAirlock()

	var rows []*Row
	dur := 2 * o.benchtime
	for _, t := range []struct {
		key, what string
		target    *mcpTarget
	}{
		{"floor", "go-sdk floor (no-op tool)", floor},
		{"airlock", "airlock serve --http, hostile.noop", airlock},
	} {
		for _, shape := range []struct {
			key, what string
			sessions  int
		}{
			{"clients", fmt.Sprintf("%d clients, a session each", crowdSize), crowdSize},
			{"session", fmt.Sprintf("%d concurrent calls on one session", crowdSize), 1},
		} {
			what := "MCP streamable HTTP: " + t.what + ", " + shape.what
			fmt.Fprintf(o.stderr, "bench: %s\n", what)
			r, err := crowdRow(ctx, o.count, t.target, shape.sessions, crowdSize, dur)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			r.Group, r.key, r.What = "8", "mcp-"+t.key+"-"+shape.key, what
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// mcpRatios sets the ratios of row 8: airlock's calls/s over the floor's, shape by shape.
func mcpRatios(set func(key, base, label string)) {
	for _, shape := range []string{"clients", "session"} {
		set("mcp-floor-"+shape, "mcp-floor-"+shape, "floor")
		set("mcp-airlock-"+shape, "mcp-floor-"+shape, "floor")
	}
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
func startAirlockHTTP(ctx context.Context, dir, cacheDir string, m *manifest.Manifest, wasm []byte, g *manifest.Grant) (*mcpTarget, func(), error) {
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "state.db"))
	if err != nil {
		return nil, nil, err
	}
	cfg := hostConfig(dir, cacheDir)
	sink := audit.NewStoreSink(st, &audit.StoreSinkOptions{Logger: cfg.Logger, Trail: audit.TrailOf(st)})
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

// crowdRow opens sessions sessions on t and runs callers goroutines (spread evenly over the
// sessions) calling t's tool for d, count times. The row holds the median calls/s, and the p50
// and p99 latency of that run.
func crowdRow(ctx context.Context, count int, t *mcpTarget, sessions, callers int, d time.Duration) (*Row, error) {
	tr := &http.Transport{MaxIdleConns: 4 * callers, MaxIdleConnsPerHost: 4 * callers, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	css := make([]*sdk.ClientSession, sessions)
	defer func() {
		for _, cs := range css {
			if cs != nil {
				cs.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, sessions)
	for i := range sessions {
		wg.Go(func() {
			c := sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "1"}, nil)
			css[i], errs[i] = c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: t.url, MaxRetries: -1,
				HTTPClient: &http.Client{Transport: bearerTransport{t.tokens[i], tr}}}, nil)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	params := &sdk.CallToolParams{Name: t.tool, Arguments: json.RawMessage(`{}`)}
	call := func(cs *sdk.ClientSession) error {
		res, err := cs.CallTool(ctx, params)
		if err == nil && res.IsError {
			err = fmt.Errorf("tool error: %v", res.Content)
		}
		return err
	}
	// Warm up: one call on every caller.
	if err := forCallers(callers, func(i int) error { return call(css[i%sessions]) }); err != nil {
		return nil, err
	}
	type run struct {
		rate     float64
		p50, p99 time.Duration
	}
	var runs []run
	for range count {
		goruntime.GC()
		lat := make([][]time.Duration, callers)
		start := time.Now()
		deadline := start.Add(d)
		err := forCallers(callers, func(i int) error {
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := call(css[i%sessions]); err != nil {
					return err
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		all := slices.Concat(lat...)
		if len(all) == 0 {
			return nil, errors.New("no call completed")
		}
		slices.Sort(all)
		runs = append(runs, run{float64(len(all)) / time.Since(start).Seconds(), all[len(all)/2], all[len(all)*99/100]})
	}
	slices.SortFunc(runs, func(a, b run) int { return cmpFloat(a.rate, b.rate) })
	med := runs[len(runs)/2]
	row := &Row{Unit: "calls/s", Median: med.rate, P50: float64(med.p50), P99: float64(med.p99)}
	for _, r := range runs {
		row.Samples = append(row.Samples, r.rate)
	}
	return row, nil
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
