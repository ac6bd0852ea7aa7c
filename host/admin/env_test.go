package admin_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// canary is the Slack bot token: it must never show up anywhere an agent, a log reader or an
// audit reader can see.
const canary = "xoxb-CANARY-admin-9Qw2zK7"

// clock is a settable clock shared by the host and the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// backend is a state store flavour: every test that says "on SQLite and PostgreSQL" runs on each.
type backend struct {
	name string
	dsn  func(t *testing.T) string
}

var backends = []backend{
	{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "state.db") }},
	{"postgres", func(t *testing.T) string { return testenv.Postgres(t) }},
}

// env is a host driven by an Admin over a real state store, with the audit log in that store.
type env struct {
	dsn   string
	st    *store.Store
	sink  *audit.StoreSink
	h     *host.Host
	rec   *hosttest.Recorder
	a     *admin.Admin
	clock *clock

	slack    *fakeslack.Server
	slackURL string // where https://slack.com is routed
	hold     *gate  // lets a test hold upstream requests in flight
	slackM   *manifest.Manifest
	slackW   []byte

	mu   sync.Mutex
	vals map[string]string // secret values by env name
}

type envOptions struct {
	dsn         string
	approvalTTL time.Duration
	resolver    host.Resolver
	onNotice    func(host.Notice)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{clock: newClock(), vals: map[string]string{"SLACK_BOT_TOKEN": canary}, hold: &gate{}}
	if o.dsn == "" {
		o.dsn = "sqlite:" + filepath.Join(t.TempDir(), "state.db")
	}
	e.dsn = o.dsn
	st, err := store.OpenConfig(ctx, o.dsn, &store.Config{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // runs last: after the host and the sink
	e.st = st
	e.sink = audit.NewStoreSink(st, &audit.StoreSinkOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() {
		if err := e.sink.Close(); err != nil {
			t.Errorf("closing the audit sink: %v", err)
		}
	})

	e.slack = fakeslack.New(canary)
	up := httptest.NewServer(e.hold.wrap(e.slack))
	t.Cleanup(up.Close)
	e.slackURL = up.URL

	src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) {
		e.mu.Lock()
		defer e.mu.Unlock()
		v, ok := e.vals[n]
		return v, ok
	}}}
	// PoolSize 8: the revocation test holds 8 calls in flight at once.
	cfg := host.Config{Secrets: src, Store: st, Audit: e.sink, Now: e.clock.Now, ApprovalTTL: o.approvalTTL, PoolSize: 8}
	if o.resolver != nil {
		cfg.Resolver = o.resolver
	}
	cfg.OnNotice = o.onNotice
	e.h, e.rec = hosttest.New(t, cfg)
	e.a = admin.New(st, e.h, slog.New(slog.NewJSONHandler(e.rec, nil)))
	e.slackM, e.slackW = hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	return e
}

func (e *env) setSecret(name, value string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.vals[name] = value
}

// install records a connector version in the store, as `airlock plugin install` does.
func (e *env) install(t *testing.T, name, version, status string, yaml, wasm []byte) {
	t.Helper()
	sum := sha256.Sum256(wasm)
	if err := e.st.PutInstalled(context.Background(), store.Installed{Name: name, Version: version, Digest: hex.EncodeToString(sum[:]),
		Publisher: "airlock-dev", Manifest: yaml, Module: wasm, Status: status}); err != nil {
		t.Fatal(err)
	}
}

// slackYAML is manifests/slack.yaml with the module digest pinned and edit applied.
func (e *env) slackYAML(t *testing.T, edit func(string) string) []byte {
	t.Helper()
	return manifestYAML(t, "manifests/slack.yaml", e.slackW, edit)
}

// manifestYAML reads a manifest of the repository, pins the digest of wasm into it and applies
// edit; the result must parse.
func manifestYAML(t *testing.T, rel string, wasm []byte, edit func(string) string) []byte {
	t.Helper()
	root, err := pluginbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(wasm)
	s := string(b)
	if !strings.Contains(s, "\nmodule:\n  path: ") {
		t.Fatalf("%s: no module section to pin the digest in", rel)
	}
	s = strings.Replace(s, "\nmodule:\n  path: ", "\nmodule:\n  sha256: "+hex.EncodeToString(sum[:])+"\n  path: ", 1)
	if edit != nil {
		s = edit(s)
	}
	if _, err := manifest.Parse(filepath.Base(rel), []byte(s)); err != nil {
		t.Fatalf("the test manifest does not parse: %v", err)
	}
	return []byte(s)
}

// slackGrant grants the Slack connector everything it asks for, routed to the fake.
func (e *env) slackGrant() *manifest.Grant {
	return &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"slack.com"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": e.slackURL}}
}

// grant records g through the Admin, failing the test on error.
func (e *env) grant(t *testing.T, version string, g *manifest.Grant) store.GrantRecord {
	t.Helper()
	rec, err := e.a.Grant(context.Background(), admin.GrantRequest{Connector: g.Connector, Version: version, Grant: g, Admin: "alice"})
	if err != nil {
		t.Fatalf("Grant(%s%s): %v", g.Connector, version, err)
	}
	return rec
}

func (e *env) call(tool, args string) *host.Result {
	return e.callAs("default", tool, args)
}

func (e *env) callAs(subject, tool, args string) *host.Result {
	return e.h.Call(context.Background(), host.CallRequest{Tool: tool, Arguments: json.RawMessage(args), Agent: "test-agent", Subject: subject})
}

func (e *env) toolNames() []string {
	var names []string
	for _, t := range e.h.Tools() {
		names = append(names, t.Name)
	}
	return names
}

// slackCalls counts the requests the fake Slack received for an API method.
func (e *env) slackCalls(method string) int {
	n := 0
	for _, r := range e.slack.Requests() {
		if r.Method == method {
			n++
		}
	}
	return n
}

// auditRecords flushes the sink and returns every record of the store's audit log.
func (e *env) auditRecords(t *testing.T, f store.AuditFilter) []store.AuditRecord {
	t.Helper()
	ctx := context.Background()
	if err := e.sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.Limit = 1 << 20
	recs, err := e.st.QueryAudit(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// canaryForms are the forms in which the canary could leak.
func canaryForms() []string {
	forms := []string{canary, base64.StdEncoding.EncodeToString([]byte(canary)), hex.EncodeToString([]byte(canary))}
	for shift := range 3 {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", shift) + canary))
		forms = append(forms, enc[4:len(enc)-4])
	}
	return forms
}

func containsCanary(b []byte) bool {
	return slices.ContainsFunc(canaryForms(), func(f string) bool { return strings.Contains(string(b), f) })
}

// gate wraps an upstream so a test can hold requests in flight: while held, each request
// reports its arrival on arrived and waits for release.
type gate struct {
	mu      sync.Mutex
	held    bool
	arrived chan struct{}
	release chan struct{}
}

func (g *gate) Hold(n int) (arrived <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held = true
	g.arrived = make(chan struct{}, n)
	g.release = make(chan struct{})
	return g.arrived
}

func (g *gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held = false
	close(g.release)
}

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		held, arrived, release := g.held, g.arrived, g.release
		g.mu.Unlock()
		if held {
			select {
			case arrived <- struct{}{}:
			default:
			}
			<-release
		}
		next.ServeHTTP(w, r)
	})
}

// rawDB opens the store's database directly, as an attacker with file or database access would.
func rawDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		db, err = sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	} else {
		db, err = sql.Open("pgx", dsn)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rebind turns ? placeholders into $n for PostgreSQL.
func rebind(dsn, q string) string {
	if strings.HasPrefix(dsn, "sqlite:") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
