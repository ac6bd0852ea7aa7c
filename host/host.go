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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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
	"github.com/airlock-dev/airlock/host/internal/screen"
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
	// file at StateDir/audit.jsonl. A call returns only after the Write of its call record
	// returned (an audit.StoreSink returns once it is committed); a sink that is an
	// audit.Beginner also gets a begin record, made durable before the call's first outbound
	// request, so a crash leaves no call without an outcome.
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
	// SecretTTL is how long the value of a credential reference outside the state store (env:,
	// file:, vault: …) is used before it is read again; it is also read again at once when an
	// upstream answers 401. References to the state store (store:NAME) are read on every use,
	// so `airlock secret set` takes effect on the next call. Default one minute.
	SecretTTL time.Duration
	// OnClose, if set, is called by Close after every connector has stopped (so after the last
	// audit event), to release what the host was built on: an audit sink, a state store.
	OnClose func() error
	// OnToolsChanged, if set, is called after Load, LoadModule or Unload has changed the loaded
	// connectors, so the tools Tools lists may have changed (an MCP server uses it to send
	// notifications/tools/list_changed). It runs on the goroutine that made the change, once the
	// change is visible to Tools and Call; it must not call Load, LoadModule or Unload and
	// should return quickly. Default: nothing is called.
	OnToolsChanged func()
	// OnNotice, if set, is called for what an admin should hear about without polling: a call
	// waiting for approval (on the replica that created the request only, so once per
	// request), a connection that needs re-consent, an upstream's circuit breaker opening (see
	// [Notice]). It runs on the call path and must return at once, never blocking (host/notify
	// queues and sends in the background). Default: nothing is called.
	OnNotice func(Notice)
	// Metrics, if set, receives the host's Prometheus metrics (see NewMetrics). Default: none
	// are kept.
	Metrics *Metrics
	// RequireProfiles gives an agent that is a member of no profile (see [Profile],
	// [Host.SetProfiles]) no tool at all. Default false: such an agent gets every granted tool,
	// as before profiles existed.
	RequireProfiles bool
	// TracerProvider, if set, gets a span per tool call with children for validation, the
	// approval gate, the plugin, each outbound request and the audit append (see
	// TracingFromEnv). Default: no spans, at no cost.
	TracerProvider trace.TracerProvider
	// DeferredWorkers is how many deferred calls (CallRequest.Defer) run at once on this host
	// (default 8; negative: none, the host only queues them for another process, as the CLI's
	// one-shot commands do). Deferred calls need Store: their queue lives in it, and the host
	// starts it with the first connector that has a deferrable tool.
	DeferredWorkers int
	// DeferredRescueAfter is how long a deferred call may stay running before the queue takes it
	// as left by a host that died and runs it again (default 3 minutes; see README, "Deferred
	// calls"). IdempotencyLease is how long a running keyed call stays held without its host
	// renewing it (default 30 s): a call whose host died is taken over that much later.
	DeferredRescueAfter time.Duration
	IdempotencyLease    time.Duration
}

// Host runs connectors. Safe for concurrent use.
type Host struct {
	cfg         Config
	calls       callCount // calls in progress, for WaitCalls
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
	tracing     bool // Config.TracerProvider is set: tracer is not the no-op one

	loadMu sync.Mutex         // serialises changes to the loaded connectors
	layers map[string]*layers // what the configuration and the state store say, by connector

	profiles atomic.Pointer[profiles] // agent profiles (SetProfiles); nil: none

	jobs deferred // the deferred-call queue (deferred.go)

	mu         sync.RWMutex
	connectors map[string]*connector
	stopped    map[string]string // connectors that must not run, and why (a revocation)
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
	// refs are the static slots' secret references, read again as they may change; unavailable
	// holds what could not be read at load (OAuth client secrets and keys, the database DSN).
	// Either makes the connector's tools answer credential_unavailable.
	refs        []*credential.Ref
	unavailable []string
	inflight    sync.WaitGroup
	hosts       telemetry.Hosts // the metrics' host labels: the granted rules' hosts
	propagate   bool            // the grant's propagate_trace
	screen      *screen.Screener
	bindings    map[string]*egress.Binding // the tools' egress bindings, by tool name (binding.go)
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
	// A DSN or URL with a password never reaches a log line, whoever logs it.
	cfg.Logger = slog.New(secret.RedactingHandler(cfg.Logger.Handler()))
	if cfg.ApprovalTTL <= 0 {
		cfg.ApprovalTTL = DefaultApprovalTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Host{cfg: cfg, logger: cfg.Logger, scrub: scrub.New(), connectors: map[string]*connector{},
		layers: map[string]*layers{}, stopped: map[string]string{},
		store: cfg.Store, approvalTTL: cfg.ApprovalTTL, now: cfg.Now, tracer: telemetry.Tracer(cfg.TracerProvider),
		tracing: cfg.TracerProvider != nil}
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("host: RedisURL: %w (write redis://HOST:PORT/DB)", secret.RedactedError(err))
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
		h.dedup = idempotency.New(cfg.Store, idempotency.Config{TTL: cfg.IdempotencyTTL, Lease: cfg.IdempotencyLease, Logger: cfg.Logger})
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
	ecfg := runtime.EngineConfig{CacheDir: cfg.CacheDir, Logger: cfg.Logger}
	if cfg.Metrics != nil { // the runtime knows no Prometheus: it reports its timings to these
		ecfg.OnCompile, ecfg.OnInstantiate = cfg.Metrics.m.Compile, cfg.Metrics.m.Instantiate
	}
	eng, err := runtime.NewEngine(ecfg)
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
//
// g is the grant of the configuration (airlock.yaml, or the embedding program). When the state
// store also speaks for the connector ([Host.SetInstalled]), the most restrictive decision wins
// (see [MergeGrants]) and a revocation recorded there keeps the connector from running at all.
func (h *Host) Load(ctx context.Context, m *manifest.Manifest, g *manifest.Grant) (err error) {
	wasm, err := os.ReadFile(m.ModulePath())
	if err != nil {
		return fmt.Errorf("host: connector %s: reading its module: %w (run `make plugins` to build it)", m.Name, err)
	}
	return h.LoadModule(ctx, m, wasm, g)
}

// LoadModule is Load with the module's bytes supplied by the caller (a bundle, a test). The host
// keeps wasm (a later change of grant rebuilds the connector from it): do not modify it afterwards.
func (h *Host) LoadModule(ctx context.Context, m *manifest.Manifest, wasm []byte, g *manifest.Grant) error {
	if g == nil {
		return fmt.Errorf("host: connector %s: no grant given: pass the admin's grant (a Grant naming the connector, its tools and scopes; an empty one grants nothing)", m.Name)
	}
	sum := sha256.Sum256(wasm) // once per load: the runtime's cache is keyed by it too
	if err := manifest.VerifyDigest(m, sum); err != nil {
		return fmt.Errorf("host: connector %s: %w", m.Name, err)
	}
	if _, err := grant.Effective(m, g); err != nil {
		return fmt.Errorf("host: connector %s: the grant does not fit the manifest:\n%w", m.Name, err)
	}
	h.loadMu.Lock()
	defer h.loadMu.Unlock()
	l := h.layersOf(m.Name)
	old := l.file
	l.file = &layer{manifest: m, wasm: wasm, sum: sum, grant: g, origin: Origin{Publisher: m.Publisher}}
	if err := h.apply(ctx, m.Name); err != nil {
		l.file = old // a change that does not load leaves the connector as it was
		return err
	}
	h.cancelRevoked(ctx, m.Name)
	return nil
}

// Installed is what the state store says about a connector, for [Host.SetInstalled].
type Installed struct {
	// Manifest and Module are the installed version; nil when the store holds a grant for a
	// connector that is not installed there (one loaded with Load from a configuration file).
	Manifest *manifest.Manifest
	Module   []byte
	// Grant is the store's current grant (nil when Revoked).
	Grant  *manifest.Grant
	Origin Origin
	// Revoked says an admin revoked the connector: nothing of it runs, whatever Load loaded,
	// until the store grants it again.
	Revoked bool
	// Err says the store's decision could not be read (an unreadable grant, a missing module):
	// the connector stops serving until a later SetInstalled succeeds.
	Err error
}

// SetInstalled records what the state store says about connector name (nil: nothing any more)
// and applies it together with the configuration's grant: the most restrictive decision wins.
// When the result cannot be applied, the connector stops serving (fail closed: the store may
// have narrowed the grant) and the error says why.
func (h *Host) SetInstalled(ctx context.Context, name string, in *Installed) error {
	if in != nil && in.Err != nil {
		err := fmt.Errorf("host: connector %s: %w", name, in.Err)
		h.stop(name, err)
		return err
	}
	var sum [sha256.Size]byte
	if in != nil && in.Manifest != nil {
		sum = sha256.Sum256(in.Module)
		if err := manifest.VerifyDigest(in.Manifest, sum); err != nil {
			err = fmt.Errorf("host: connector %s: %w", name, err)
			h.stop(name, err)
			return err
		}
	}
	h.loadMu.Lock()
	defer h.loadMu.Unlock()
	l := h.layersOf(name)
	l.store, l.revoked = nil, false
	if in != nil {
		l.revoked = in.Revoked
		if !in.Revoked {
			l.store = &layer{manifest: in.Manifest, wasm: in.Module, sum: sum, grant: in.Grant, origin: in.Origin}
		}
	}
	if err := h.apply(ctx, name); err != nil {
		h.stop(name, err)
		return err
	}
	h.cancelRevoked(ctx, name) // before the revoke is acknowledged
	return nil
}

// MergeGrants returns the grant that applies to a connector configured with file and granted in
// the state store with store (either may be nil), for m: permissions both grant, the tighter
// limits, the confirm rules of either, values from the store where it sets them. The map says
// where each part comes from ("file", "store", "file ∩ store", "file ∪ store"); it is what
// `airlock grants` shows.
func MergeGrants(m *manifest.Manifest, file, store *manifest.Grant) (*manifest.Grant, map[string]string) {
	return grant.Merge(m, file, store)
}

// layer is one source's say on a connector: the configuration's (Load) or the state store's
// (SetInstalled).
type layer struct {
	manifest *manifest.Manifest // nil: a store grant for a connector the configuration loads
	wasm     []byte
	sum      [sha256.Size]byte // SHA-256 of wasm, checked against manifest when the layer was set
	grant    *manifest.Grant
	origin   Origin
}

// layers is everything said about one connector.
type layers struct {
	file, store *layer
	revoked     bool // the store records a revocation
}

// layersOf returns name's layers, creating them. Callers hold loadMu.
func (h *Host) layersOf(name string) *layers {
	l := h.layers[name]
	if l == nil {
		l = &layers{}
		h.layers[name] = l
	}
	return l
}

// apply makes the running connector name match its layers. Callers hold loadMu.
func (h *Host) apply(ctx context.Context, name string) error {
	l := h.layersOf(name)
	base := l.store
	if base == nil || base.manifest == nil {
		base = l.file // the module the configuration names, restricted by a store grant if any
	}
	if l.revoked || base == nil {
		h.remove(name, l.revoked)
		if !l.revoked && l.file == nil && l.store == nil {
			delete(h.layers, name)
		}
		return nil
	}
	var fileG, storeG *manifest.Grant
	if l.file != nil {
		fileG = l.file.grant
	}
	if l.store != nil {
		storeG = l.store.grant
		if l.store.manifest == nil {
			if _, err := grant.Effective(base.manifest, storeG); err != nil {
				return fmt.Errorf("host: connector %s: the grant in the state store does not fit the manifest:\n%w", name, err)
			}
		}
	}
	g, _ := grant.Merge(base.manifest, fileG, storeG)
	c, err := h.build(ctx, base.manifest, base.wasm, base.sum, g, base.origin)
	if err != nil {
		return err
	}
	h.install(c)
	h.startQueueFor(c)
	return nil
}

// install makes c the connector serving its name.
func (h *Host) install(c *connector) {
	m := c.manifest
	h.mu.Lock()
	old := h.connectors[m.Name]
	h.connectors[m.Name] = c
	delete(h.stopped, m.Name)
	h.mu.Unlock()
	if old != nil {
		go old.retire()
	}
	h.toolsChanged()
	h.logger.Info("connector loaded", "connector", m.Name, "version", m.Version, "module_sha256", c.digest[:12],
		"tools", len(c.policy.Tools), "denied_tools", len(c.policy.Denied))
}

// remove stops serving name; revoked makes its calls say an admin revoked it.
func (h *Host) remove(name string, revoked bool) {
	reason := ""
	if revoked {
		reason = "an admin revoked connector " + name
	}
	h.stopWith(name, reason)
}

// stop makes name stop serving because its current decision could not be applied.
func (h *Host) stop(name string, err error) {
	h.logger.Error("connector stopped: its current grant could not be applied", "connector", name, "err", err)
	h.stopWith(name, "the current grant of connector "+name+" could not be applied")
}

func (h *Host) stopWith(name, reason string) {
	h.mu.Lock()
	c, ok := h.connectors[name]
	delete(h.connectors, name)
	if reason != "" {
		h.stopped[name] = reason
	} else {
		delete(h.stopped, name)
	}
	h.mu.Unlock()
	if ok {
		go c.retire()
		h.toolsChanged()
	}
}

// build verifies m's module (sum is the SHA-256 of wasm), applies g and returns the connector, not
// yet serving.
func (h *Host) build(ctx context.Context, m *manifest.Manifest, wasm []byte, sum [sha256.Size]byte, g *manifest.Grant, origin Origin) (_ *connector, err error) {
	if err := manifest.VerifyDigest(m, sum); err != nil {
		return nil, fmt.Errorf("host: connector %s: %w", m.Name, err)
	}
	policy, err := grant.Effective(m, g)
	if err != nil {
		return nil, fmt.Errorf("host: connector %s: the grant does not fit the manifest:\n%w", m.Name, err)
	}
	c := &connector{manifest: m, policy: policy, digest: m.Module.SHA256, origin: origin, providers: map[string]*credential.Provider{},
		bindings: networkBindings(m)}
	ruleHosts := make([]string, 0, len(policy.Rules))
	for _, r := range policy.Rules {
		ruleHosts = append(ruleHosts, r.Host)
	}
	c.hosts, c.propagate = telemetry.NewHosts(ruleHosts), g != nil && g.PropagateTrace
	if c.screen, err = h.newScreener(c, policy.Screening); err != nil {
		return nil, fmt.Errorf("host: connector %s: %w", m.Name, err)
	}

	endpoints := &lazyTransport{} // the OAuth endpoints' transport, once the egress client exists
	slots := make(map[string]egress.Slot, len(m.Credentials))
	for _, cred := range m.Credentials {
		if o := policy.OAuth[cred.Name]; o != nil {
			cred.OAuth = o // the grant moved its endpoints (a Salesforce sandbox or My Domain)
		}
		slot := egress.Slot{Name: cred.Name, Kind: cred.Kind, In: cred.In, Param: cred.Param, Hosts: cred.Hosts}
		cg, filled := policy.Credentials[cred.Name]
		if filled && !manifest.IsOAuth(cred.Kind) {
			r := h.ref(ctx, c, cred.Name, "", cred.Kind, cg.Secret)
			slot.Source = r
		}
		if filled && manifest.IsOAuth(cred.Kind) {
			ccfg := credential.Config{Connector: m.Name, Slot: cred, ClientID: cg.ClientID, Username: cg.Username,
				Scrubber: h.scrub, Logger: h.logger.With("connector", m.Name)}
			// Live references, read at each token request (so a rotated secret or key is used
			// without a restart); one that fails makes the connector's tools answer
			// credential_unavailable until it resolves, instead of failing the load.
			if cg.ClientSecret != "" {
				ccfg.ClientSecretRef = h.ref(ctx, c, cred.Name, "client_secret", cred.Kind, cg.ClientSecret)
			}
			if cg.PrivateKey != "" {
				ccfg.PrivateKeyRef = h.ref(ctx, c, cred.Name, "private_key", cred.Kind, cg.PrivateKey)
			}
			if h.store != nil {
				ccfg.Store = credential.StateStore{Store: h.store}
			}
			ccfg.Sealer = h.cfg.Sealer
			ccfg.HTTPClient = &http.Client{Transport: endpoints, Timeout: 30 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			ccfg.OnEvent = func(ev credential.Event) {
				h.metrics().Credential(m.Name, cred.Name, ev.Type)
				if ev.Type == credential.StatusNeedsReauth {
					h.notice(Notice{Event: NoticeConnectionNeedsReauth, Connector: ev.Connector, Subject: ev.Subject, Slot: ev.Slot,
						Detail: fmt.Sprintf("the %s connection of subject %s (credential %s) needs to be authorised again: %s; connect it again (airlock connect %s --subject %s)",
							ev.Connector, ev.Subject, ev.Slot, ev.Detail, ev.Connector, ev.Subject)})
				}
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
				return nil, fmt.Errorf("host: connector %s: %w", m.Name, err)
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
		OnBreakerOpen: func(upstream string, coolDown time.Duration) {
			h.notice(Notice{Event: NoticeBreakerOpen, Connector: m.Name, Host: upstream,
				Detail: fmt.Sprintf("the circuit breaker of %s (connector %s) opened after consecutive failures (network errors, 5xx, timeouts): calls reaching it fail fast for %s, then one probe tests it",
					upstream, m.Name, coolDown)})
		},
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
		return nil, fmt.Errorf("host: connector %s: %w", m.Name, err)
	}
	endpoints.set(c.egress.EndpointTransport())
	if q := policy.Quotas; q != nil {
		if c.quota, err = h.quotaGate(q, ""); err != nil {
			return nil, fmt.Errorf("host: connector %s: quotas: %w", m.Name, err)
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
		if dsn := h.loadOnce(ctx, c, "database", "dsn", "", policy.DSN); !dsn.IsZero() {
			if c.db, err = dbfunc.Open(dbfunc.Config{DSN: dsn, Declared: m.Database.Functions, Granted: policy.Functions,
				Scrubber: h.scrub, Logger: h.logger.With("connector", m.Name)}); err != nil {
				return nil, fmt.Errorf("host: connector %s: %w", m.Name, err)
			}
		}
	}

	exports := make([]string, 0, len(m.Tools))
	for _, t := range m.Tools {
		exports = append(exports, t.Export)
	}
	c.module, err = h.eng.Load(ctx, runtime.Options{
		Name:    m.Name,
		Wasm:    wasm,
		SHA256:  sum,
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
		return nil, fmt.Errorf("host: connector %s: %w", m.Name, err)
	}

	return c, nil
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

// LoadInstalled is SetInstalled for a connector installed from a bundle and granted in the
// state store.
func (h *Host) LoadInstalled(ctx context.Context, m *manifest.Manifest, wasm []byte, g *manifest.Grant, o Origin) error {
	return h.SetInstalled(ctx, m.Name, &Installed{Manifest: m, Module: wasm, Grant: g, Origin: o})
}

// ref returns the live reference filling slot's field; it is read now, so a failure is
// logged (once) at load.
func (h *Host) ref(ctx context.Context, c *connector, slot, field, kind, reference string) *credential.Ref {
	r := h.newRef(c, slot, field, kind, reference)
	_ = r.Check(ctx)
	c.refs = append(c.refs, r)
	return r
}

// newRef returns a reference read through the host's secret sources, its value scrubbed.
func (h *Host) newRef(c *connector, slot, field, kind, reference string) *credential.Ref {
	scheme, _ := secret.Scheme(reference)
	var retry time.Duration
	if scheme != "store" && scheme != "env" && scheme != "file" {
		retry = 5 * time.Second // a remote source (vault): a failing reference must not hammer it
	}
	return credential.NewRef(credential.RefConfig{Connector: c.manifest.Name, Slot: slot, Field: field, Kind: kind,
		Reference: reference, Secrets: h.cfg.Secrets, Fresh: scheme == "store", TTL: h.cfg.SecretTTL, Retry: retry,
		Scrubber: h.scrub, Logger: h.logger})
}

// loadOnce reads a reference used only at load. A failure is kept as the connector's
// unavailable reason (its tools answer credential_unavailable) instead of failing the load,
// so one bad reference does not take down the other connectors.
func (h *Host) loadOnce(ctx context.Context, c *connector, slot, field, kind, reference string) secret.Value {
	if reference == "" {
		return secret.Value{}
	}
	r := credential.NewRef(credential.RefConfig{Connector: c.manifest.Name, Slot: slot, Field: field, Kind: kind,
		Reference: reference, Secrets: h.cfg.Secrets, Scrubber: h.scrub, Logger: h.logger})
	v, err := r.Value(ctx)
	if err != nil {
		c.unavailable = append(c.unavailable, err.Error()+"; then re-grant or restart so the connector reloads")
	}
	return v
}

// credentialProblem returns why c's tools cannot run for lack of a credential, or "". A
// reference that failed is read again here, so fixing it takes effect on the next call.
func (c *connector) credentialProblem(ctx context.Context) string {
	if len(c.unavailable) > 0 {
		return c.unavailable[0]
	}
	for _, r := range c.refs {
		if r.Failing() {
			if _, err := r.Value(ctx); err != nil {
				return err.Error()
			}
		}
	}
	return ""
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

// Unload removes the connector Load loaded: new calls fail at once, calls in progress finish.
// A connector the state store also grants (SetInstalled) keeps running under the store's grant.
func (h *Host) Unload(name string) error {
	h.loadMu.Lock()
	defer h.loadMu.Unlock()
	l := h.layers[name]
	if l == nil || l.file == nil {
		if l != nil && l.store != nil {
			return fmt.Errorf("host: connector %q comes from the state store: revoke its grant there instead", name)
		}
		return fmt.Errorf("host: no connector named %q is loaded", name)
	}
	l.file = nil
	if err := h.apply(context.Background(), name); err != nil {
		return err
	}
	h.cancelRevoked(context.Background(), name)
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
	// destructive or needs_confirmation, the grant lists it under confirm, or it may run a
	// granted write database function (its function, or one its tools[].uses lists).
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
	if h.store != nil && slices.ContainsFunc(tools, func(t Tool) bool { return t.Annotations.Deferrable }) {
		tools = append(tools, jobStatusTool)
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
	qerr := h.stopQueue(ctx) // running jobs finish while their connectors are still loaded
	h.mu.Lock()
	cs := h.connectors
	h.connectors = map[string]*connector{}
	h.mu.Unlock()
	for _, c := range cs {
		c.retire()
	}
	// A call's audit record is written after its connector's part ended (retire): wait for
	// every Call to return before the closer closes the audit sink under it.
	h.calls.wait(ctx)
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
	return errors.Join(qerr, err, h.eng.Close(ctx))
}

// stoppedReason says why connector name must not run ("" when nothing stops it).
func (h *Host) stoppedReason(name string) string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.stopped[name]
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

// toolNames lists the tools agent may call (its profile's), for messages to it.
func (h *Host) toolNames(agent string) string {
	var names []string
	for _, t := range h.ToolsFor(agent) {
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
