package mcp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/airlock-dev/airlock/internal/testenv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host/mcp"
)

// Tests of the streamable HTTP transport as a client meets it: raw HTTP where the point is the
// status, headers and body, the official Go SDK client where the point is what an agent sees.

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// logSink counts log records at warning level or above.
type logSink struct {
	mu    sync.Mutex
	warns []string
}

func (l *logSink) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.warns = append(l.warns, r.Message)
	return nil
}
func (l *logSink) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSink) WithGroup(string) slog.Handler      { return l }
func (l *logSink) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.warns)
}

// httpServer serves a fresh MCP server over f's host with opts; it returns the server, the
// endpoint URL and the agents store.
func httpServer(t *testing.T, f *fixture, opts *mcp.HTTPOptions, logs *logSink) (*mcp.Server, string, *mcp.Agents) {
	t.Helper()
	var h slog.Handler = slog.NewTextHandler(io.Discard, nil)
	if logs != nil {
		h = logs
	}
	srv := mcp.NewServer(f.h, &mcp.Options{Logger: slog.New(h)})
	agents := mcp.OpenAgents(filepath.Join(t.TempDir(), "agents.json"))
	ts := httptest.NewServer(srv.HTTPHandler(agents, opts))
	t.Cleanup(ts.Close)
	return srv, ts.URL + mcp.HTTPPath, agents
}

type rawReq struct {
	method, token, session, origin, host, body string
	header                                     map[string]string
}

type rawResp struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, url string, r rawReq) rawResp {
	t.Helper()
	if r.method == "" {
		r.method = "POST"
	}
	req, _ := http.NewRequest(r.method, url, strings.NewReader(r.body))
	if r.method == "POST" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
	} else {
		req.Header.Set("Accept", "text/event-stream")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.session != "" {
		req.Header.Set("Mcp-Session-Id", r.session)
	}
	if r.origin != "" {
		req.Header.Set("Origin", r.origin)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.host != "" {
		req.Host = r.host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResp{resp.StatusCode, resp.Header, string(b)}
}

// openSession initializes a session as a minimal client would, and returns its ID.
func openSession(t *testing.T, url, token string) string {
	t.Helper()
	r := do(t, url, rawReq{token: token, body: initBody})
	sid := r.header.Get("Mcp-Session-Id")
	if r.status != http.StatusOK || sid == "" {
		t.Fatalf("initialize: status %d, session %q: %s", r.status, sid, r.body)
	}
	if r := do(t, url, rawReq{token: token, session: sid, body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`}); r.status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: status %d: %s", r.status, r.body)
	}
	return sid
}

// rpcError is the JSON-RPC error in a response body, plain JSON or one SSE event.
func rpcError(t *testing.T, body string) (id any, code int, msg string) {
	t.Helper()
	if i := strings.Index(body, "data: "); i >= 0 {
		body = strings.TrimSpace(strings.SplitN(body[i+6:], "\n", 2)[0])
	}
	var v struct {
		ID    any `json:"id"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Error == nil {
		t.Fatalf("body is not a JSON-RPC error: %q (%v)", body, err)
	}
	return v.ID, v.Error.Code, v.Error.Message
}

// A browser page from another origin cannot drive the server (DNS rebinding, a malicious page
// calling a local server): 403 before anything else, for every method.
func TestHTTPOrigin(t *testing.T) {
	f := newFixture(t, true)
	_, url, agents := httpServer(t, f, &mcp.HTTPOptions{AllowedOrigins: []string{"https://Console.Example.com:443"}}, nil)
	token, _ := agents.Add("web", "")
	for _, tc := range []struct {
		name, origin, method, token string
		host                        string
		want                        int
	}{
		{name: "no Origin (a CLI or SDK client)", want: http.StatusOK},
		{name: "a foreign page", origin: "https://evil.example", want: http.StatusForbidden},
		{name: "a foreign page without a token", origin: "https://evil.example", token: "-", want: http.StatusForbidden},
		{name: "a foreign page opening an SSE stream", origin: "https://evil.example", method: "GET", want: http.StatusForbidden},
		{name: "DNS rebinding: the page's origin is the host it asked for", origin: "http://rebind.example:8700", host: "rebind.example:8700", want: http.StatusForbidden},
		{name: "an opaque origin", origin: "null", want: http.StatusForbidden},
		{name: "an allowed origin", origin: "https://console.example.com", want: http.StatusOK},
		{name: "the allowed host on another port", origin: "https://console.example.com:8443", want: http.StatusForbidden},
		{name: "localhost over loopback", origin: "http://localhost:6274", want: http.StatusOK},
		{name: "127.0.0.1 over loopback", origin: "http://127.0.0.1:3000", want: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rawReq{token: token, origin: tc.origin, body: initBody, method: tc.method, host: tc.host}
			if tc.token == "-" {
				r.token = ""
			}
			if r.method == "GET" {
				r.session, r.body = openSession(t, url, token), ""
			}
			got := do(t, url, r)
			if got.status != tc.want {
				t.Fatalf("status %d, want %d: %s", got.status, tc.want, got.body)
			}
			if tc.want == http.StatusForbidden && !strings.Contains(got.body, "--allow-origin") {
				t.Errorf("the 403 does not say how to allow the origin: %s", got.body)
			}
		})
	}
}

// A 401 says it wants a bearer token (RFC 6750), and whether the one sent was refused.
func TestHTTPUnauthorizedChallenge(t *testing.T) {
	f := newFixture(t, true)
	_, url, agents := httpServer(t, f, nil, nil)
	revoked, _ := agents.Add("gone", "")
	agents.Revoke("gone")
	for _, tc := range []struct {
		name, authz, want string
	}{
		{"no credentials", "", `Bearer realm="airlock"`},
		{"basic", "Basic dXNlcjpwYXNz", `Bearer realm="airlock", error="invalid_token"`},
		{"revoked token", "Bearer " + revoked, `Bearer realm="airlock", error="invalid_token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, url, rawReq{body: initBody, header: map[string]string{"Authorization": tc.authz}})
			got := r.header.Get("WWW-Authenticate")
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(got, tc.want) {
				t.Fatalf("status %d, WWW-Authenticate %q; want 401 with %q", r.status, got, tc.want)
			}
			if tc.authz == "" && strings.Contains(got, "error=") {
				t.Errorf("a request without credentials got an error code (RFC 6750 §3.1): %q", got)
			}
		})
	}
}

// Clients that vanish without DELETE (a CLI run per question, a crashed agent) leave sessions
// behind. They expire, stop costing memory, and stop producing a warning per tool-list change.
func TestHTTPAbandonedSessionsExpire(t *testing.T) {
	f := newFixture(t, true)
	logs := &logSink{}
	const idle = 3 * time.Second
	srv, url, agents := httpServer(t, f, &mcp.HTTPOptions{SessionIdleTimeout: idle, MaxSessionsPerAgent: 1000}, logs)
	token, _ := agents.Add("cli", "")

	// A live client holds its GET stream open: it is not idle, however long it stays silent.
	live, _, err := connectSDK(url, token)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	const abandoned = 200
	var ids []string
	for range abandoned {
		ids = append(ids, openSession(t, url, token))
	}
	if n := sessionCount(srv); n != abandoned+1 {
		t.Fatalf("%d sessions open, want %d", n, abandoned+1)
	}
	deadline := time.Now().Add(30 * time.Second)
	for sessionCount(srv) > 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := sessionCount(srv); n != 1 {
		t.Fatalf("%d sessions still open long after the idle timeout of %v, want only the live one", n, idle)
	}
	if r := do(t, url, rawReq{token: token, session: ids[0], body: `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`}); r.status != http.StatusNotFound {
		t.Errorf("an expired session: status %d, want 404 (the client initializes again)", r.status)
	}
	// A tool-list change now costs nothing per abandoned session.
	before := logs.count()
	if err := f.h.Unload("slack"); err != nil {
		t.Fatal(err)
	}
	srv.Sync()
	time.Sleep(200 * time.Millisecond)
	if n := logs.count() - before; n > 0 {
		t.Errorf("a tool-list change logged %d warnings: %q", n, logs.warns[before:])
	}
	// The live client was kept and still works.
	if _, err := live.ListTools(context.Background(), nil); err != nil {
		t.Errorf("the live session was closed: %v", err)
	}
}

func sessionCount(s *mcp.Server) int {
	n := 0
	for range s.SDK().Sessions() {
		n++
	}
	return n
}

func connectSDK(url, token string) (*sdk.ClientSession, chan struct{}, error) {
	changed := make(chan struct{}, 16)
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, &sdk.ClientOptions{
		ToolListChangedHandler: func(context.Context, *sdk.ToolListChangedRequest) { changed <- struct{}{} }})
	cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: url, MaxRetries: -1,
		HTTPClient: &http.Client{Transport: bearer{token, http.DefaultTransport}}}, nil)
	return cs, changed, err
}

// An agent cannot pile up sessions: past its limit its least recently used session closes;
// past the server's limit new sessions are refused with 503 and Retry-After.
func TestHTTPSessionLimits(t *testing.T) {
	f := newFixture(t, true)
	_, url, agents := httpServer(t, f, &mcp.HTTPOptions{MaxSessionsPerAgent: 3, MaxSessions: 5}, nil)
	a, _ := agents.Add("a", "")
	b, _ := agents.Add("b", "")
	var mine []string
	for range 5 {
		mine = append(mine, openSession(t, url, a))
	}
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	for i, sid := range mine {
		want := http.StatusOK
		if i < 2 {
			want = http.StatusNotFound // the two least recently used were closed
		}
		if r := do(t, url, rawReq{token: a, session: sid, body: list}); r.status != want {
			t.Errorf("session %d of 5 with a limit of 3: status %d, want %d", i+1, r.status, want)
		}
	}
	openSession(t, url, b)
	openSession(t, url, b)
	r := do(t, url, rawReq{token: b, body: initBody})
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("a sixth session with a server limit of 5: status %d, Retry-After %q; want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
}

// A revoked agent's open SSE stream is closed: it gets no more notifications, and its session
// is gone.
func TestHTTPRevokedAgentStreamClosed(t *testing.T) {
	f := newFixture(t, true)
	_, url, agents := httpServer(t, f, nil, nil)
	token, _ := agents.Add("leaver", "")
	sid := openSession(t, url, token)
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Mcp-Session-Id", sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET stream: status %d", resp.StatusCode)
	}
	ended := make(chan struct{})
	go func() {
		io.Copy(io.Discard, resp.Body)
		close(ended)
	}()
	select {
	case <-ended:
		t.Fatal("the stream ended before the revocation")
	case <-time.After(300 * time.Millisecond):
	}
	if err := agents.Revoke("leaver"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked agent's SSE stream is still open 10 s after the revocation")
	}
}

// A method the server does not implement is a JSON-RPC error (-32601), which every client
// surfaces as such, not a plain-text HTTP 400.
func TestHTTPUnknownMethod(t *testing.T) {
	f := newFixture(t, true)
	_, url, agents := httpServer(t, f, nil, nil)
	token, _ := agents.Add("a", "")
	sid := openSession(t, url, token)
	r := do(t, url, rawReq{token: token, session: sid, body: `{"jsonrpc":"2.0","id":"x7","method":"tools/frobnicate","params":{}}`})
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, Content-Type %q, want 200 application/json: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	if id, code, msg := rpcError(t, r.body); id != "x7" || code != -32601 || !strings.Contains(msg, "tools/frobnicate") {
		t.Errorf("error = id %v code %d %q; want id x7, -32601 naming the method", id, code, msg)
	}
	// The Go SDK client sees it as a JSON-RPC error too.
	cs, _, err := connectSDK(url, token)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if err := cs.Ping(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// Every method the handler lets through is one the SDK implements: none gets the SDK's
// plain-text "not handled" (this pins HTTPHandler's list against the SDK version in go.mod).
func TestHTTPKnownMethodsReachTheSDK(t *testing.T) {
	f := newFixture(t, true)
	_, url, agents := httpServer(t, f, nil, nil)
	token, _ := agents.Add("a", "")
	sid := openSession(t, url, token)
	for _, m := range []string{"ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
		"resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe",
		"completion/complete", "logging/setLevel", "server/discover"} {
		r := do(t, url, rawReq{token: token, session: sid, body: fmt.Sprintf(`{"jsonrpc":"2.0","id":9,"method":%q,"params":{}}`, m)})
		if strings.Contains(r.body, "not handled") {
			t.Errorf("%s: the SDK does not implement it: %d %s", m, r.status, r.body)
		}
	}
}

// Only initialize may come without a session (spec 2025-11-25, "Session Management": 400 for
// a request without Mcp-Session-Id, 404 for an unknown one).
func TestHTTPRequestWithoutSession(t *testing.T) {
	f := newFixture(t, true)
	srv, url, agents := httpServer(t, f, nil, nil)
	token, _ := agents.Add("a", "")
	r := do(t, url, rawReq{token: token, body: `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slack.list_channels","arguments":{}}}`})
	if r.status != http.StatusBadRequest {
		t.Fatalf("tools/call without a session: status %d, want 400: %s", r.status, r.body)
	}
	if id, code, msg := rpcError(t, r.body); id != float64(5) || code != -32600 || !strings.Contains(msg, "initialize") {
		t.Errorf("error = id %v code %d %q; want id 5, -32600 saying to initialize", id, code, msg)
	}
	if n := len(f.fake.Requests()); n != 0 {
		t.Errorf("the sessionless call reached Slack (%d requests)", n)
	}
	if n := sessionCount(srv); n != 0 {
		t.Errorf("the refused request left %d sessions", n)
	}
	if r := do(t, url, rawReq{token: token, session: "no-such-session", body: `{"jsonrpc":"2.0","id":6,"method":"tools/list"}`}); r.status != http.StatusNotFound {
		t.Errorf("an unknown session: status %d, want 404", r.status)
	}
	if r := do(t, url, rawReq{method: "GET", token: token}); r.status != http.StatusBadRequest {
		t.Errorf("GET without a session: status %d, want 400", r.status)
	}
	openSession(t, url, token)
}

// A tool that is not granted, or was revoked, answers with a result the agent reads (isError,
// what happened, what to do), and the refusal is audited. A name never offered stays a
// protocol error.
func TestHTTPUngrantedToolIsAResult(t *testing.T) {
	f := newFixture(t, true)
	srv, url, agents := httpServer(t, f, nil, nil)
	token, _ := agents.Add("a", "")
	cs, _, err := connectSDK(url, token)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if res := callTool(t, cs, "slack.list_channels", `{"limit":1}`); res.IsError {
		t.Fatalf("list_channels: %s", text(res))
	}

	f.loadGrant("post_message") // an admin narrows the grant
	srv.Sync()
	res := callTool(t, cs, "slack.list_channels", `{"limit":1}`)
	if txt := text(res); !res.IsError || !strings.Contains(txt, "not granted") || !strings.Contains(txt, "ask an admin") {
		t.Errorf("an ungranted tool: isError %v, %q; want isError saying it is not granted and to ask an admin", res.IsError, txt)
	}
	if ev := lastCall(t, f.rec); ev.Tool != "slack.list_channels" || ev.Outcome != "denied" || ev.Agent != "a" {
		t.Errorf("audit = %+v, want a denied call of slack.list_channels by a", ev)
	}

	if err := f.h.Unload("slack"); err != nil { // the whole grant revoked
		t.Fatal(err)
	}
	srv.Sync()
	res = callTool(t, cs, "slack.post_message", `{"channel":"C0GENERAL","text":"x"}`)
	if txt := text(res); !res.IsError || !strings.Contains(txt, "revoked") || !strings.Contains(txt, "ask an admin") {
		t.Errorf("a revoked tool: isError %v, %q; want isError saying it was revoked", res.IsError, txt)
	}

	if _, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "nothing.here"}); err == nil {
		t.Error("a tool never offered: no protocol error")
	}
}

// The server's connections cannot be held open by a client that sends nothing, half a request,
// or keeps an idle connection.
func TestHTTPServerTimeouts(t *testing.T) {
	def := mcp.NewHTTPServer(http.NotFoundHandler(), nil, nil)
	if def.ReadHeaderTimeout <= 0 || def.ReadTimeout <= 0 || def.ReadTimeout > 30*time.Second ||
		def.IdleTimeout <= 0 || def.IdleTimeout > 30*time.Second {
		t.Errorf("default timeouts: header %v, request %v, idle %v; want each set, at most 30 s",
			def.ReadHeaderTimeout, def.ReadTimeout, def.IdleTimeout)
	}
	f := newFixture(t, true)
	agents := mcp.OpenAgents(filepath.Join(t.TempDir(), "agents.json"))
	token, _ := agents.Add("a", "")
	opts := &mcp.HTTPOptions{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, IdleTimeout: 500 * time.Millisecond}
	handler := f.srv.HTTPHandler(agents, opts)
	ts := httptest.NewUnstartedServer(handler)
	ts.Config = mcp.NewHTTPServer(handler, opts, nil)
	ts.Start()
	defer ts.Close()
	addr := ts.Listener.Addr().String()

	for _, tc := range []struct{ name, send string }{
		{"nothing sent", ""},
		{"half the headers", "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"},
		{"half the body", "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n" +
			"Authorization: Bearer " + token + "\r\nContent-Length: 400\r\n\r\n" + initBody[:40]},
		{"idle after a request", "GET /other HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, tc.send)
			start := time.Now()
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err = io.Copy(io.Discard, conn) // until the server closes the connection
			if err != nil {
				t.Fatalf("the server did not close the connection within 20 s: %v", err)
			}
			t.Logf("closed after %v", time.Since(start).Round(10*time.Millisecond))
		})
	}
}

// Closing stdin right after the requests (echo … | airlock serve) still gets every reply.
func TestStdioRepliesAfterStdinCloses(t *testing.T) {
	f := newFixture(t, true)
	var in bytes.Buffer
	in.WriteString(initBody + "\n")
	in.WriteString(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n")
	const calls = 4
	for i := range calls {
		fmt.Fprintf(&in, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"slack.list_channels","arguments":{"limit":1}}}`+"\n", 10+i)
	}
	in.WriteString(`{"jsonrpc":"2.0","id":"last","method":"tools/list"}` + "\n")
	var out testenv.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.srv.ServeStdio(ctx, &in, &out); err != nil {
		t.Fatalf("ServeStdio: %v", err)
	}
	got := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Result json.RawMessage `json:"result"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Result != nil {
			got[string(m.ID)] = true
		}
	}
	for _, id := range []string{"1", "10", "11", "12", "13", `"last"`} {
		if !got[id] {
			t.Errorf("no reply to request %s; replies: %v", id, got)
		}
	}
}
