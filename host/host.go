// Package host runs API connectors as sandboxed WebAssembly plugins and lets agents call their
// tools, with every secret kept on the host's side.
//
// A connector is a manifest (host/manifest) and the module it pins by digest; a grant is an
// admin's answer to the manifest. Load verifies the module, computes the effective permission
// (manifest ∩ grant), resolves the secrets that fill the credential slots and starts a sandbox;
// Call runs one tool call through the whole path of DESIGN.md: grant check, argument validation,
// the plugin in its sandbox, egress with credential injection and secret scrubbing, output
// validation, audit. Every failure becomes a Result with an agent-readable message.
//
// Example:
//
//	h, err := host.New(host.Config{StateDir: ".airlock"})
//	if err != nil { … }
//	defer h.Close(ctx)
//	m, _ := manifest.Load("build/plugins/slack.yaml")
//	g, _ := manifest.LoadGrant("grants/slack.yaml")
//	if err := h.Load(ctx, m, g); err != nil { … }
//	res := h.Call(ctx, host.CallRequest{Tool: "slack.post_message", Arguments: []byte(`{"channel":"C0GENERAL","text":"hi"}`)})
//	fmt.Println(res.OK, string(res.Data))
package host

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/internal/credential"
	"github.com/airlock-dev/airlock/host/internal/dbfunc"
	"github.com/airlock-dev/airlock/host/internal/egress"
	"github.com/airlock-dev/airlock/host/internal/grant"
	"github.com/airlock-dev/airlock/host/internal/idempotency"
	"github.com/airlock-dev/airlock/host/internal/quota"
	"github.com/airlock-dev/airlock/host/internal/ratelimit"
	"github.com/airlock-dev/airlock/host/internal/runtime"
	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/internal/telemetry"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

// Resolver looks up a host name. It is the hook tests use to simulate DNS (rebinding included).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Host. The zero value is valid: nil and zero fields take the defaults
// documented on each field. New copies it; later changes have no effect.
type Config struct {
	// StateDir holds the compilation cache (and, with the defaults, the audit log).
	// Default ".airlock" in the working directory.
	StateDir string
	// CacheDir holds compiled modules, so a restart does not recompile. Default StateDir/cache.
	CacheDir string
	// Secrets resolves the secret references in grants. Default: env:NAME and file:PATH.
	Secrets secret.Source
	// Audit receives one event per tool call and per outbound request. Default: a JSON-lines
	// file at StateDir/audit.jsonl.
	Audit audit.Sink
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// Resolver resolves upstream host names. Default net.DefaultResolver.
	Resolver Resolver
	// PoolSize bounds live instances per connector (default 4); Warm is how many fresh ones are
	// kept ready (default 1).
	PoolSize, Warm int
	// Store is the state store: pending approvals (and, through the admin package, installed
	// connectors, grants and the audit log). Nil: calls that need a human's approval are
	// refused with a message asking for confirmation instead of being queued.
	Store *store.Store
	// ApprovalTTL is how long an approval request stays open and an approval stays usable
	// (default DefaultApprovalTTL).
	ApprovalTTL time.Duration
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
	// Sealer seals OAuth tokens at rest (a *secret.Store). Nil: a key that lives only as long as
	// the process, so connections made with `airlock connect` do not survive a restart.
	Sealer credential.Sealer
	// RedisURL, if set (redis://host:6379/0), shares rate limits, upstream pauses and call
	// quotas with every replica using the same Redis. If Redis becomes unreachable, each
	// replica limits locally at LocalShare of each limit (default 1/2) and says so in its logs.
	RedisURL   string
	LocalShare float64
	// IdempotencyTTL is how long a call's outcome is kept under its idempotency key (default
	// 24 h). Idempotency needs Store.
	IdempotencyTTL time.Duration
	// OnClose, if set, is called by Close after every connector has stopped (so after the last
	// audit event), to release what the host was built on: an audit sink, a state store.
	OnClose func() error
	// OnToolsChanged, if set, is called after Load, LoadModule or Unload has changed the loaded
	// connectors, so the tools Tools lists may have changed (an MCP server uses it to send
	// notifications/tools/list_changed). It runs on the goroutine that made the change, once the
	// change is visible to Tools and Call; it must not call Load, LoadModule or Unload and
	// should return quickly. Default: nothing is called.
	OnToolsChanged func()
	// Metrics, if set, receives the host's Prometheus metrics (see NewMetrics). Default: none
	// are kept.
	Metrics *Metrics
	// TracerProvider, if set, gets a span per tool call with children for validation, the
	// approval gate, the plugin, each outbound request and the audit append (see
	// TracingFromEnv). Default: no spans, at no cost.
	TracerProvider trace.TracerProvider
}

// Host runs connectors. Safe for concurrent use.
type Host struct {
	cfg         Config
	store       *store.Store
	shared      *ratelimit.Redis     // nil without RedisURL
	dedup       *idempotency.Deduper // nil without Store
	approvalTTL time.Duration
	now         func() time.Time
	logger      *slog.Logger
	eng         *runtime.Engine
	scrub       *scrub.Scrubber
	audit       audit.Sink
	closer      func() error
	tracer      trace.Tracer

	mu         sync.RWMutex
	connectors map[string]*connector
}

// connector is one loaded connector under its grant. Immutable once built; replaced as a whole.
type connector struct {
	manifest *manifest.Manifest
	policy   *grant.Policy
	digest   string
	origin   Origin
	db       *dbfunc.DB  // nil unless database functions are granted
	quota    *quota.Gate // nil without quotas
	module   *runtime.Module
	egress   *egress.Client
	// providers are the OAuth slots' credential providers, by slot name (for Connect).
	providers map[string]*credential.Provider
	inflight  sync.WaitGroup
	hosts     telemetry.Hosts // the metrics' host labels: the granted rules' hosts
	propagate bool            // the grant's propagate_trace
}

// New returns a Host with no connectors loaded.
func New(cfg Config) (*Host, error) {
	if cfg.StateDir == "" {
		cfg.StateDir = ".airlock"
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.StateDir, "cache")
	}
	if cfg.Secrets == nil {
		cfg.Secrets = secret.Mux{"env": secret.Env{}, "file": secret.File{}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ApprovalTTL <= 0 {
		cfg.ApprovalTTL = DefaultApprovalTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Host{cfg: cfg, logger: cfg.Logger, scrub: scrub.New(), connectors: map[string]*connector{},
		store: cfg.Store, approvalTTL: cfg.ApprovalTTL, now: cfg.Now, tracer: telemetry.Tracer(cfg.TracerProvider)}
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("host: RedisURL: %w (write redis://HOST:PORT/DB)", err)
		}
		// Keep a few connections open: a cold dial can exceed the limiter's per-operation
		// timeout and send this replica to its local fallback until the next probe.
		opts.MinIdleConns = max(opts.MinIdleConns, 4)
		rdb := redis.NewClient(opts)
		pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := rdb.Ping(pctx).Err(); err != nil {
			cfg.Logger.Warn("Redis is not reachable yet: limiting locally at a conservative share until it is", "err", err)
		}
		cancel()
		h.shared = ratelimit.NewRedis(rdb, ratelimit.RedisConfig{Logger: cfg.Logger})
	}
	if cfg.Store != nil {
		h.dedup = idempotency.New(cfg.Store, idempotency.Config{TTL: cfg.IdempotencyTTL, Logger: cfg.Logger})
	}
	h.audit = cfg.Audit
	if h.audit == nil {
		f, err := audit.OpenFile(filepath.Join(cfg.StateDir, "audit.jsonl"))
		if err != nil {
			return nil, fmt.Errorf("host: %w", err)
		}
		h.audit, h.closer = f, f.Close
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("host: state directory: %w", err)
	}
	eng, err := runtime.NewEngine(runtime.EngineConfig{CacheDir: cfg.CacheDir, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	h.eng = eng
	if cfg.Metrics != nil {
		if err := cfg.Metrics.m.Registry().Register(hostCollector{h}); err != nil {
			return nil, errors.New("host: Config.Metrics is already used by another Host: give each Host its own NewMetrics")
		}
	}
	return h, nil
}

// Load verifies m's module, applies g, and makes the connector's granted tools callable. Loading
// a connector that is already loaded replaces it atomically: new calls use the new version, calls
// in progress finish on the old one.
func (h *Host) Load(ctx context.Context, m *manifest.Manifest, g *manifest.Grant) (err error) {
	wasm, err := os.ReadFile(m.ModulePath())
	if err != nil {
		return fmt.Errorf("host: connector %s: reading its module: %w (run `make plugins` to build it)", m.Name, err)
	}
	return h.LoadModule(ctx, m, wasm, g)
}

// LoadModule is Load with the module's bytes supplied by the caller (a bundle, a test).
func (h *Host) LoadModule(ctx context.Context, m *manifest.Manifest, wasm []byte, g *manifest.Grant) error {
	return h.loadModule(ctx, m, wasm, g, Origin{Publisher: m.Publisher})
}

func (h *Host) loadModule(ctx context.Context, m *manifest.Manifest, wasm []byte, g *manifest.Grant, origin Origin) (err error) {
	if err := manifest.VerifyModule(m, wasm); err != nil {
		return fmt.Errorf("host: connector %s: %w", m.Name, err)
	}
	policy, err := grant.Effective(m, g)
	if err != nil {
		return fmt.Errorf("host: connector %s: the grant does not fit the manifest:\n%w", m.Name, err)
	}
	c := &connector{manifest: m, policy: policy, digest: m.Module.SHA256, origin: origin, providers: map[string]*credential.Provider{}}
	ruleHosts := make([]string, 0, len(policy.Rules))
	for _, r := range policy.Rules {
		ruleHosts = append(ruleHosts, r.Host)
	}
	c.hosts, c.propagate = telemetry.NewHosts(ruleHosts), g != nil && g.PropagateTrace

	endpoints := &lazyTransport{} // the OAuth endpoints' transport, once the egress client exists
	slots := make(map[string]egress.Slot, len(m.Credentials))
	for _, cred := range m.Credentials {
		if o := policy.OAuth[cred.Name]; o != nil {
			cred.OAuth = o // the grant moved its endpoints (a Salesforce sandbox or My Domain)
		}
		slot := egress.Slot{Name: cred.Name, Kind: cred.Kind, In: cred.In, Param: cred.Param, Hosts: cred.Hosts}
		cg, filled := policy.Credentials[cred.Name]
		resolve := func(ref string) (secret.Value, error) {
			if ref == "" {
				return secret.Value{}, nil
			}
			v, err := h.cfg.Secrets.Resolve(ctx, ref)
			if err != nil {
				return v, fmt.Errorf("host: connector %s: credential %s: %w", m.Name, cred.Name, err)
			}
			return v, nil
		}
		if filled && !manifest.IsOAuth(cred.Kind) {
			if slot.Secret, err = resolve(cg.Secret); err != nil {
				return err
			}
		}
		if filled && manifest.IsOAuth(cred.Kind) {
			ccfg := credential.Config{Connector: m.Name, Slot: cred, ClientID: cg.ClientID, Username: cg.Username,
				Scrubber: h.scrub, Logger: h.logger.With("connector", m.Name)}
			if ccfg.ClientSecret, err = resolve(cg.ClientSecret); err != nil {
				return err
			}
			if ccfg.PrivateKey, err = resolve(cg.PrivateKey); err != nil {
				return err
			}
			if h.store != nil {
				ccfg.Store = credential.StateStore{Store: h.store}
			}
			ccfg.Sealer = h.cfg.Sealer
			ccfg.HTTPClient = &http.Client{Transport: endpoints, Timeout: 30 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			ccfg.OnEvent = func(ev credential.Event) {
				h.metrics().Credential(m.Name, cred.Name, ev.Type)
				outcome := "ok"
				if ev.Type == "needs_reauth" || ev.Type == "failed" {
					outcome = "error"
				}
				if err := h.audit.Write(context.Background(), audit.Event{Time: time.Now().UTC(), Kind: audit.KindCredential,
					RequestID: newRequestID(), Connector: ev.Connector, Subject: ev.Subject, Credential: ev.Slot,
					Outcome: outcome, Code: ev.Type, Message: h.scrub.String(ev.Detail)}); err != nil {
					h.logger.Error("audit write failed", "connector", ev.Connector, "event", ev.Type, "err", err)
				}
			}
			p, err := credential.New(ccfg)
			if err != nil {
				return fmt.Errorf("host: connector %s: %w", m.Name, err)
			}
			slot.Source = p
			c.providers[cred.Name] = p
		}
		slots[cred.Name] = slot
	}
	rules := make([]egress.Rule, len(policy.Rules))
	for i, r := range policy.Rules {
		rules[i] = egress.Rule{Scheme: r.Scheme, Host: r.Host, Port: r.Port, PathPrefix: r.PathPrefix, Methods: r.Methods}
	}
	lim := policy.Limits
	ecfg := egress.Config{
		Rules:            rules,
		Slots:            slots,
		AllowPrivate:     policy.PrivateTargets,
		Upstreams:        policy.Upstreams,
		MaxResponseBytes: int64(lim.MaxResponseBytes),
		Scrubber:         h.scrub,
		Logger:           h.logger.With("connector", m.Name),
	}
	if h.cfg.Resolver != nil {
		ecfg.Resolver = h.cfg.Resolver
	}
	for _, r := range policy.Rules {
		if r.RateLimit != nil {
			ecfg.RateLimits = append(ecfg.RateLimits, egress.RateLimit{Host: r.Host, PathPrefix: r.PathPrefix,
				PerSecond: r.RateLimit.PerSecond, Burst: r.RateLimit.Burst})
		}
	}
	if h.shared != nil {
		ecfg.SharedLimits, ecfg.LocalShare, ecfg.Connector = h.shared, h.cfg.LocalShare, m.Name
	}
	if c.egress, err = egress.New(ecfg); err != nil {
		return fmt.Errorf("host: connector %s: %w", m.Name, err)
	}
	endpoints.set(c.egress.EndpointTransport())
	if q := policy.Quotas; q != nil {
		qc := quota.Config{LocalShare: h.cfg.LocalShare}
		if q.PerAgent != nil {
			qc.PerAgent = quota.Quota{Calls: q.PerAgent.Calls, Period: q.PerAgent.Period()}
		}
		if q.PerTool != nil {
			qc.PerTool = quota.Quota{Calls: q.PerTool.Calls, Period: q.PerTool.Period()}
		}
		if h.shared != nil {
			qc.Shared = h.shared
		}
		if c.quota, err = quota.New(qc); err != nil {
			return fmt.Errorf("host: connector %s: quotas: %w", m.Name, err)
		}
	}
	defer func() {
		if err != nil {
			c.egress.Close()
			if c.db != nil {
				c.db.Close()
			}
		}
	}()
	if policy.DSN != "" && len(policy.Functions) > 0 {
		dsn, err := h.cfg.Secrets.Resolve(ctx, policy.DSN)
		if err != nil {
			return fmt.Errorf("host: connector %s: database.dsn: %w", m.Name, err)
		}
		if c.db, err = dbfunc.Open(dbfunc.Config{DSN: dsn, Declared: m.Database.Functions, Granted: policy.Functions,
			Scrubber: h.scrub, Logger: h.logger.With("connector", m.Name)}); err != nil {
			return fmt.Errorf("host: connector %s: %w", m.Name, err)
		}
	}

	exports := make([]string, 0, len(m.Tools))
	for _, t := range m.Tools {
		exports = append(exports, t.Export)
	}
	c.module, err = h.eng.Load(ctx, runtime.Options{
		Name:    m.Name,
		Wasm:    wasm,
		Exports: exports,
		Limits: runtime.Limits{
			MemoryPages:    uint32(lim.MemoryMB) * 16,
			Timeout:        lim.Timeout(),
			MaxInputBytes:  int64(lim.MaxInputBytes),
			MaxOutputBytes: int64(lim.MaxOutputBytes),
			// Host-function replies carry response bodies base64-encoded in JSON.
			MaxArenaBytes: max(64<<20, 2*int64(lim.MaxResponseBytes)+int64(lim.MaxInputBytes+lim.MaxOutputBytes)),
		},
		PoolSize: h.cfg.PoolSize,
		Warm:     h.cfg.Warm,
	})
	if err != nil {
		return fmt.Errorf("host: connector %s: %w", m.Name, err)
	}

	h.mu.Lock()
	old := h.connectors[m.Name]
	h.connectors[m.Name] = c
	h.mu.Unlock()
	if old != nil {
		go old.retire()
	}
	h.toolsChanged()
	h.logger.Info("connector loaded", "connector", m.Name, "version", m.Version, "module_sha256", c.digest[:12],
		"tools", len(policy.Tools), "denied_tools", len(policy.Denied))
	return nil
}

// CheckGrant reports whether g fits m: it names only what m declares and only tightens its
// limits. The error lists every problem, in words an admin can act on.
func CheckGrant(m *manifest.Manifest, g *manifest.Grant) error {
	_, err := grant.Effective(m, g)
	return err
}

// Origin says where an installed connector came from, for the audit trail.
type Origin struct {
	Publisher string
	// Unsigned marks a connector installed with --allow-unsigned: every audit record of its
	// calls says so.
	Unsigned bool
}

// LoadInstalled is LoadModule for a connector installed from a bundle, recording its origin.
func (h *Host) LoadInstalled(ctx context.Context, m *manifest.Manifest, wasm []byte, g *manifest.Grant, o Origin) error {
	return h.loadModule(ctx, m, wasm, g, o)
}

// lazyTransport forwards to a RoundTripper set after construction: OAuth providers are built
// before the egress client whose checked dialer they use.
type lazyTransport struct {
	rt atomic.Pointer[http.RoundTripper]
}

func (l *lazyTransport) set(rt http.RoundTripper) { l.rt.Store(&rt) }

func (l *lazyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := l.rt.Load()
	if rt == nil {
		return nil, errors.New("host: the connector is still loading")
	}
	return (*rt).RoundTrip(req)
}

// retire closes a replaced or unloaded connector once its calls in progress have finished.
func (c *connector) retire() {
	c.inflight.Wait()
	c.module.Close(context.Background())
	c.egress.Close()
	if c.db != nil {
		c.db.Close()
	}
}

// Unload removes a connector: new calls fail at once, calls in progress finish.
func (h *Host) Unload(name string) error {
	h.mu.Lock()
	c, ok := h.connectors[name]
	delete(h.connectors, name)
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("host: no connector named %q is loaded", name)
	}
	go c.retire()
	h.toolsChanged()
	return nil
}

func (h *Host) toolsChanged() {
	if h.cfg.OnToolsChanged != nil {
		h.cfg.OnToolsChanged()
	}
}

// Tool is a callable tool as an agent sees it.
type Tool struct {
	Name         string               `json:"name"` // connector.tool
	Connector    string               `json:"connector"`
	Description  string               `json:"description"`
	InputSchema  []byte               `json:"input_schema"`
	OutputSchema []byte               `json:"output_schema,omitempty"`
	Annotations  manifest.Annotations `json:"annotations"`
	Scopes       []string             `json:"scopes,omitempty"`
	// NeedsConfirmation says every call needs a human's approval: the manifest marks the tool
	// destructive or needs_confirmation, the grant lists it under confirm, or it runs a write
	// database function.
	NeedsConfirmation bool `json:"needs_confirmation,omitempty"`
}

// Tools lists every granted tool of every loaded connector, sorted by name. A tool whose scopes
// are not all granted is not listed.
func (h *Host) Tools() []Tool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var tools []Tool
	for name, c := range h.connectors {
		for _, t := range c.policy.Tools {
			tools = append(tools, Tool{
				Name: name + "." + t.Name, Connector: name, Description: t.Description,
				InputSchema: t.InputSchema, OutputSchema: t.OutputSchema,
				Annotations: t.Annotations, Scopes: t.Scopes, NeedsConfirmation: c.policy.NeedsConfirmation(t.Name),
			})
		}
	}
	sort.Slice(tools, func(i, j int) bool { return tools[i].Name < tools[j].Name })
	return tools
}

// Connectors lists the loaded connectors' names.
func (h *Host) Connectors() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	names := make([]string, 0, len(h.connectors))
	for n := range h.connectors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close unloads every connector, waiting for calls in progress, and releases the host.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	cs := h.connectors
	h.connectors = map[string]*connector{}
	h.mu.Unlock()
	for _, c := range cs {
		c.retire()
	}
	var err error
	if h.closer != nil {
		err = h.closer()
	}
	if h.cfg.OnClose != nil {
		err = errors.Join(err, h.cfg.OnClose())
	}
	if h.shared != nil {
		h.shared.Close()
	}
	return errors.Join(err, h.eng.Close(ctx))
}

// acquire returns the connector serving name and registers a call on it.
func (h *Host) acquire(name string) (*connector, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	c, ok := h.connectors[name]
	if ok {
		c.inflight.Add(1)
	}
	return c, ok
}

func (h *Host) toolNames() string {
	var names []string
	for _, t := range h.Tools() {
		names = append(names, t.Name)
	}
	if len(names) == 0 {
		return "none are granted"
	}
	if len(names) > 20 {
		names = append(names[:20], "…")
	}
	return strings.Join(names, ", ")
}

func newRequestID() string {
	var b [8]byte
	randRead(b[:])
	return hex.EncodeToString(b[:])
}

var durationMS = func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
