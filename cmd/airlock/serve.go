package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/console"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

func runServe(ctx context.Context, e *env, args []string) (err error) {
	var g globals
	defer func() { err = g.reportJSON(e.stderr, err) }()
	fs := newFlagSet(e, "serve", `
Usage: airlock serve [--stdio | --http ADDR] [--config FILE]

Serves the tools of the configured connectors (see 'airlock help tools') to agents over the
Model Context Protocol, as connector.tool, with their schemas and annotations.

  --stdio (the default) speaks MCP on stdin/stdout, for a desktop agent that spawns airlock;
  the caller is --agent with --subject. Logs go to stderr.

  --http ADDR serves MCP over streamable HTTP at http://ADDR/mcp. Every request needs
  "Authorization: Bearer TOKEN" with a token from 'airlock agent add'; no token, a wrong one or
  a revoked one gets 401, and a revoked agent's open sessions are closed. Calls run as the
  token's agent and subject. A request with an Origin header (a browser page) gets 403 unless
  the origin is allowed with --allow-origin, or it is a localhost origin on a loopback
  connection. Sessions close after --session-idle-timeout without a request; an agent keeps at
  most --max-sessions-per-agent (opening one more closes its least recently used) and the
  server --max-sessions. The config file's http: key sets the same (flags win).

While it runs, serve watches the configuration file and the manifests and grants it names
(every --reload-interval, and at once on SIGHUP): a connector added, upgraded, re-granted or
removed there changes the tool list without a restart, and connected clients get
notifications/tools/list_changed. Calls in progress finish on the version they started on. A
change that does not load (a bad grant, a missing module) is logged and the old version keeps
serving.

With --watch-plugins DIR, signed bundles dropped into DIR are verified against the trust store
and installed; installing grants nothing, but a new version of a granted connector that asks for
nothing more replaces the running one. Grants, revocations and upgrades made with the CLI or the
admin API of another replica take effect at once: within milliseconds on a PostgreSQL state
(LISTEN/NOTIFY), within a second on SQLite or while that connection is lost (polling). A connector both airlock.yaml and the
store grant runs under the most restrictive of the two, and a revocation in the store wins over
the file ('airlock grants' shows which part comes from where).

Agent profiles ('airlock help profile') narrow what each agent sees and calls; they change
without a restart too, and connected clients get notifications/tools/list_changed. An agent in
no profile gets every granted tool, unless --require-profiles gives it none. Over HTTP a client
may name the conversation and end user of a call (X-Airlock-Conversation / X-Airlock-User, or
_meta dev.airlock/conversation and dev.airlock/user): the audit record keeps them as labels.`, `
  airlock serve                                   # stdio, e.g. in a desktop agent's MCP config
  airlock agent add ci-bot --subject acme && airlock serve --http 127.0.0.1:8700
  npx @modelcontextprotocol/inspector --cli --transport http --server-url http://127.0.0.1:8700/mcp \
      --header "Authorization: Bearer $TOKEN" --method tools/list`)
	g.register(fs)
	var of observeFlags
	of.register(fs)
	var sv service
	sv.register(fs)
	stdio := fs.Bool("stdio", false, "serve MCP on stdin/stdout (the default)")
	addr := fs.String("http", envOr("AIRLOCK_HTTP", ""), "serve MCP over streamable HTTP on this `address` (host:port) instead ($AIRLOCK_HTTP)")
	agent := fs.String("agent", envOr("AIRLOCK_AGENT", "stdio"), "over stdio: the caller's name in the audit log ($AIRLOCK_AGENT)")
	subject := fs.String("subject", envOr("AIRLOCK_SUBJECT", "default"), "over stdio: the tenant calls act for ($AIRLOCK_SUBJECT)")
	interval := fs.Duration("reload-interval", 2*time.Second, "how often to check the configuration for changes; 0 checks only on SIGHUP")
	requireProfiles := fs.Bool("require-profiles", os.Getenv("AIRLOCK_REQUIRE_PROFILES") == "1", "give an agent that is in no profile no tool at all ($AIRLOCK_REQUIRE_PROFILES=1; default: every granted tool)")
	pluginDir := fs.String("watch-plugins", os.Getenv("AIRLOCK_WATCH_PLUGINS"), "install signed bundles (*.airlock) dropped into this `directory` while serving, as 'airlock plugin install' would (off by default; $AIRLOCK_WATCH_PLUGINS)")
	var origins []string
	fs.Func("allow-origin", "allow browser pages from this `origin` (scheme://host[:port]); repeat or separate with commas (config http.allowed_origins)", func(v string) error {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				if _, err := mcp.CheckOrigin(o); err != nil {
					return err
				}
				origins = append(origins, o)
			}
		}
		return nil
	})
	idle := fs.Duration("session-idle-timeout", 0, "close an HTTP session after this long without a request; negative: never (config http.session_idle_timeout, default 30m)")
	maxSessions := fs.Int("max-sessions", 0, "the most HTTP sessions open at once (config http.max_sessions, default 1000)")
	maxPerAgent := fs.Int("max-sessions-per-agent", 0, "the most HTTP sessions one agent keeps open (config http.max_sessions_per_agent, default 100)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if *stdio && *addr != "" {
		return usagef("--stdio and --http exclude each other")
	}
	logger, err := g.logger(e.stderr)
	if err != nil {
		return err
	}
	tuneGC(logger)
	obs, err := startObservability(ctx, &g, &of, *agent, *addr, logger, e.stderr)
	if err != nil {
		return err
	}
	defer obs.close()
	g.mayCreateKey = true // a fresh embedded state gets its master key, saying so
	g.requireProfiles = *requireProfiles
	g.notices = true // the configuration's notify: block
	g.runJobs = true
	var srv atomic.Pointer[mcp.Server]
	rt, err := g.openRuntime(ctx, e, func() {
		if s := srv.Load(); s != nil {
			s.Sync()
		}
	})
	if err != nil {
		return err
	}
	h, cfg := rt.h, rt.cfg
	defer closeNotifier(rt.notifier, logger) // after the host: its last notices are delivered
	defer closeHost(h, logger)
	if len(h.Tools()) == 0 {
		banner(&g, e.stderr, "airlock serve: serving no tools: "+g.whyNoTools(cfg)+". Try 'airlock demo' to see a sandboxed connector at work, or see \"Using it\" in the README to configure one; tools granted later appear without a restart.")
	}
	r := &reloader{g: &g, h: h, logger: logger, loaded: map[string]string{}}
	r.markLoaded(cfg)
	s := mcp.NewServer(h, &mcp.Options{Version: buildVersion(), Agent: *agent, Subject: *subject, Logger: logger})
	srv.Store(s)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.watch(ctx, *interval)
	go rt.admin.Watch(ctx, time.Second) // grants, revocations and upgrades made elsewhere: the fallback
	go followChanges(ctx, rt)           // the same, within milliseconds, on PostgreSQL
	if *pluginDir != "" {
		go watchBundles(ctx, *pluginDir, 2*time.Second, rt.admin, logger)
	}

	if *addr == "" {
		logger.Info("serving MCP over stdio", "tools", len(h.Tools()))
		return s.ServeStdio(ctx, os.Stdin, e.stdout)
	}
	hc := cfg.HTTP
	for _, o := range hc.AllowedOrigins {
		if _, err := mcp.CheckOrigin(o); err != nil {
			return fmt.Errorf("%s: http.allowed_origins: %w", g.config, err)
		}
	}
	httpOpts := &mcp.HTTPOptions{
		AllowedOrigins:      append(hc.AllowedOrigins, origins...),
		SessionIdleTimeout:  cmp.Or(*idle, hc.SessionIdleTimeout),
		MaxSessions:         cmp.Or(*maxSessions, hc.MaxSessions),
		MaxSessionsPerAgent: cmp.Or(*maxPerAgent, hc.MaxSessionsPerAgent),
	}

	agents, err := g.openTokens(ctx, e, rt.st, tokenHolders{what: "agent", file: "agents.json", open: mcp.StoreAgents})
	if err != nil {
		return err
	}
	admins, err := g.openTokens(ctx, e, rt.st, tokenHolders{what: "admin", file: "admins.json", open: mcp.StoreAdmins})
	if err != nil {
		return err
	}
	if list, err := agents.List(); err != nil {
		return err
	} else if len(list) == 0 {
		banner(&g, e.stderr, "airlock serve: no agents yet, so every request will get 401: add one with 'airlock agent add NAME' (it takes effect without a restart)")
	}
	ln, scheme, err := sv.listen(*addr, logger)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", refusals("admin", rt.admin.Handler(adminTokens{admins}), rt.st, obs.metrics, logger))
	mux.Handle(console.Prefix, console.New(rt.admin, adminTokens{admins}, &console.Options{Logger: logger,
		SecureCookie: consoleOverHTTPS(cfg.Notify.PublicURL)}))
	mux.Handle("/", refusals("mcp", s.HTTPHandler(agents, httpOpts), rt.st, obs.metrics, logger))
	sv.probes.h = h
	hs := mcp.NewHTTPServer(sv.handler(mux), httpOpts, logger)
	banner(&g, e.stderr, fmt.Sprintf("airlock serve: MCP over streamable HTTP at %s://%s%s (%d tools; agent tokens in the %s state store); admin API at %[1]s://%[2]s/admin/v1/ and web console at %[1]s://%[2]s/console/ (tokens from 'airlock admin add'); probes at /healthz and /readyz",
		scheme, ln.Addr(), mcp.HTTPPath, len(h.Tools()), rt.st.Driver()), "mcp", scheme+"://"+ln.Addr().String()+mcp.HTTPPath, "tools", len(h.Tools()), "admin", scheme+"://"+ln.Addr().String()+"/admin/v1/")
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sv.drainOnDone(ctx, hs, logger)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Serve returns as soon as the shutdown closed the listener; the host is closed (deferred
	// above) only once the calls in progress have finished and their results were written.
	<-drained
	return nil
}

// reloader keeps the host's connectors in line with the configuration file.
type reloader struct {
	g      *globals
	h      *host.Host
	logger *slog.Logger
	stamp  string            // of the configuration and every file it names, when last applied
	loaded map[string]string // connector name -> stamp of its manifest, grant and module
}

// apply loads the connectors of cfg whose files changed and unloads those no longer listed. It
// returns the first error, after trying every connector.
func (r *reloader) apply(ctx context.Context, cfg *fileConfig) error {
	var errs []error
	want := map[string]bool{}
	for _, c := range cfg.Connectors {
		m, err := manifest.Load(c.Manifest)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		want[m.Name] = true
		st := stampOf(c.Manifest, c.Grant, m.ModulePath())
		if r.loaded[m.Name] == st {
			continue
		}
		gr, err := manifest.LoadGrant(c.Grant)
		if err == nil {
			err = r.h.Load(ctx, m, gr)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.loaded[m.Name] = st
	}
	for name := range r.loaded {
		if !want[name] {
			if err := r.h.Unload(name); err != nil {
				errs = append(errs, err)
			}
			delete(r.loaded, name)
			r.logger.Info("connector unloaded: no longer in the configuration", "connector", name)
		}
	}
	r.stamp = r.currentStamp(cfg)
	return errors.Join(errs...)
}

// markLoaded records cfg's connectors as loaded as they are now (openRuntime loaded them).
func (r *reloader) markLoaded(cfg *fileConfig) {
	for _, c := range cfg.Connectors {
		if m, err := manifest.Load(c.Manifest); err == nil {
			r.loaded[m.Name] = stampOf(c.Manifest, c.Grant, m.ModulePath())
		}
	}
	r.stamp = r.currentStamp(cfg)
}

// watch re-applies the configuration when it or a file it names changes (checked every
// interval) and on SIGHUP, until ctx is done.
func (r *reloader) watch(ctx context.Context, interval time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-hup:
			force = true
		case <-tick:
		}
		cfg, _, err := r.g.loadConfig()
		if err != nil {
			r.logger.Error("configuration not reloaded; the loaded connectors keep serving", "err", err)
			continue
		}
		if !force && r.currentStamp(cfg) == r.stamp {
			continue
		}
		if err := r.apply(ctx, cfg); err != nil {
			r.logger.Error("configuration reloaded with errors; connectors that failed keep their previous version", "err", err)
		} else {
			r.logger.Info("configuration reloaded", "tools", len(r.h.Tools()))
		}
	}
}

// currentStamp describes the configuration file and every file it names (size and mtime), so
// that a change to any of them is noticed.
func (r *reloader) currentStamp(cfg *fileConfig) string {
	files := []string{r.g.config}
	for _, c := range cfg.Connectors {
		files = append(files, c.Manifest, c.Grant)
		if m, err := manifest.Load(c.Manifest); err == nil {
			files = append(files, m.ModulePath())
		}
	}
	sort.Strings(files)
	return stampOf(files...)
}

func stampOf(files ...string) string {
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(&b, "%s:missing;", f)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

// followChanges applies the decisions other processes commit to a PostgreSQL state store as
// soon as they are notified (LISTEN/NOTIFY), instead of at the next poll: a grant, revocation,
// upgrade or agent profile re-syncs the host, and so does a reconnection, since notifications
// sent while the connection was down are lost. Token revocations, approvals, trust and secrets
// need nothing here: they are read from the store when used. Syncs run one at a time; a burst
// of changes is applied by one sync that starts after the last of them arrived.
func followChanges(ctx context.Context, rt *hostRuntime) {
	if !rt.st.Notifies() {
		return
	}
	kick := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
				if err := rt.admin.Sync(ctx); err != nil && ctx.Err() == nil {
					rt.logger.Warn("applying a change from the state store; the poll retries", "err", err)
				}
			}
		}
	}()
	lost := false
	_ = rt.st.Listen(ctx, func(c store.Change) {
		switch c.Kind {
		case store.ChangeGrant, store.ChangeProfile, store.ChangeResync:
			if c.Kind == store.ChangeResync && lost {
				rt.logger.Info("listening for state store changes again; re-synced")
				lost = false
			}
			select {
			case kick <- struct{}{}:
			default: // a sync is already due and will read this change too
			}
		}
	}, func(err error) {
		if !lost {
			rt.logger.Warn("lost the state store's change notifications; polling every second until they are back", "err", err)
			lost = true
		}
	})
}

// serveGCPercent is the collector's target (GOGC) while serving, unless GOGC is set: the heap
// may grow to three times what is live between collections instead of twice. Every MCP message
// makes the SDK's JSON decoder allocate a 32 KiB buffer, so a busy server collects often; at
// 200 a call costs about a fifth less CPU for about a third more memory (RATIONALE.md, "MCP
// over streamable HTTP"). GOGC and GOMEMLIMIT in the environment keep their meaning; without
// GOMEMLIMIT, a container's memory limit bounds the heap (memoryLimitTenths).
const serveGCPercent = 200

func tuneGC(logger *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if n, file, ok := containerMemoryLimit(); ok {
		limit := n / 10 * memoryLimitTenths
		debug.SetMemoryLimit(limit)
		logger.Info("the Go heap is kept under 90% of the container's memory limit (set GOMEMLIMIT to choose another)",
			"limit_bytes", limit, "container_limit_bytes", n, "from", file)
	}
}

// memoryLimitTenths is the share, in tenths, of a container's memory limit that serve keeps
// the Go heap under (debug.SetMemoryLimit) when GOMEMLIMIT is not set: near the limit the
// collector runs more often instead of the container being killed for running out of memory
// (the heap may otherwise grow to three times what is live, serveGCPercent). The rest is left
// for what the Go runtime does not count: the sandboxes' guest memory is mapped apart.
const memoryLimitTenths = 9

// cgroupMemoryFiles are where a container's memory limit is read: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// containerMemoryLimit returns the memory limit of the cgroup serve runs in, and the file it
// read it from; ok is false when there is none ("max", cgroup v1's near-2^63 "unlimited", or no
// cgroup file at all, as outside Linux).
func containerMemoryLimit() (n int64, file string, ok bool) {
	for _, f := range cgroupMemoryFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0, f, false
		}
		return n, f, true
	}
	return 0, "", false
}
