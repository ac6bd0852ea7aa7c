package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/notify"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

// fileConfig is airlock.yaml.
//
//	state_dir: .airlock            # compilation cache and audit log (default .airlock)
//	connectors:
//	  - manifest: build/plugins/slack.yaml   # a stamped manifest (make plugins)
//	    grant: grants/slack.yaml             # the admin's grant for it
//	state: postgres://airlock@db/airlock   # the state store (default sqlite:STATE_DIR/state.db)
//	master_key: file:/run/secrets/airlock-master-key  # env:, file: or vault: reference (default STATE_DIR/master.key)
//	redis: redis://cache:6379/0            # share rate limits and quotas between replicas
//	audit_fail_open: false                 # true: calls run even when audit cannot be written
//	vault: {address: https://vault:8200, approle: {role_id: env:ROLE_ID, secret_id: file:/run/secret_id}}
//	onepassword: {host: http://op-connect:8080, token: file:/run/secrets/op-connect-token}
//	doppler: {token: env:DOPPLER_TOKEN, tokens: {web/prd: env:DOPPLER_TOKEN_WEB_PRD}}
//	gcp: {credentials_file: /run/secrets/gcp-sa.json}  # gcp-sm: references (default: Application Default Credentials)
//	azure: {tenant_id: …, client_id: …, client_secret: file:/run/secrets/azure}  # azure-kv: references (default: DefaultAzureCredential)
//	aws: {region: eu-west-1, profile: airlock}  # aws-sm: and aws-ssm: references, standard credential chain
//	http: {allowed_origins: [https://console.example.com], session_idle_timeout: 30m, max_sessions: 1000, max_sessions_per_agent: 100}
type fileConfig struct {
	StateDir string `yaml:"state_dir"`
	State    string `yaml:"state"`
	// MasterKey references the master key (key-encryption key) of the built-in secret store:
	// env:VAR, file:PATH or vault:…, the same on every replica. Default: STATE_DIR/master.key.
	MasterKey string `yaml:"master_key"`
	Redis     string `yaml:"redis"`
	// AuditFailOpen lets calls run when the audit log cannot be written (records are dropped
	// and counted, loudly). Default false: such calls fail.
	AuditFailOpen bool `yaml:"audit_fail_open"`
	Vault         *struct {
		Address   string `yaml:"address"`
		Namespace string `yaml:"namespace"`
		Token     string `yaml:"token"` // a secret reference; default $VAULT_TOKEN
		AppRole   *struct {
			RoleID   string `yaml:"role_id"`
			SecretID string `yaml:"secret_id"`
			Mount    string `yaml:"mount"`
		} `yaml:"approle"`
	} `yaml:"vault"`
	// OnePassword enables op:// references, read through a 1Password Connect server.
	OnePassword *onePasswordConfig `yaml:"onepassword"`
	// Doppler enables doppler: references.
	Doppler *dopplerConfig `yaml:"doppler"`
	GCP     *gcpConfig     `yaml:"gcp"`   // secrets_gcp.go
	Azure   *azureConfig   `yaml:"azure"` // secrets_azure.go
	// AWS turns on aws-sm: and aws-ssm: references (secrets_aws.go).
	AWS        *awsFileConfig `yaml:"aws"`
	Connectors []struct {
		Manifest string `yaml:"manifest" required:"true"`
		Grant    string `yaml:"grant" required:"true"`
	} `yaml:"connectors"`
	// HTTP tunes 'airlock serve --http'; its flags override these keys.
	HTTP struct {
		AllowedOrigins      []string      `yaml:"allowed_origins"`
		SessionIdleTimeout  time.Duration `yaml:"session_idle_timeout"` // e.g. 30m
		MaxSessions         int           `yaml:"max_sessions"`
		MaxSessionsPerAgent int           `yaml:"max_sessions_per_agent"`
	} `yaml:"http"`
	// Notify says where 'airlock serve' sends notices (notify.go).
	Notify notifyConfig `yaml:"notify"`
}

// globals are the flags shared by the commands that run a host.
type globals struct {
	config   string
	stateDir string
	state    string
	redis    string
	key      string // --master-key
	logLevel string
	server   string // --server: the admin API of a running airlock (remote.go)
	// mayCreateKey lets the command create the master key of a fresh embedded state (serve,
	// demo, secret); read-only commands never create one.
	mayCreateKey bool
	notice       io.Writer // where such a creation is announced (the command's stderr)
	warnOnce     sync.Once // the warning about a misnamed configuration file
	logJSON      bool
	// set by serve (observe.go) before openRuntime
	metrics *host.Metrics
	tracer  trace.TracerProvider
	// requireProfiles: agents in no profile get no tool (serve --require-profiles).
	requireProfiles bool
	// notices: start the notifier the configuration's notify: block asks for (serve only).
	notices bool
	// runJobs: this process runs deferred calls (serve); other commands only queue them.
	runJobs bool
}

func (g *globals) register(fs *flag.FlagSet) {
	g.notice = fs.Output() // the command's stderr
	fs.StringVar(&g.config, "config", envOr("AIRLOCK_CONFIG", defaultConfig), "configuration `file` ($AIRLOCK_CONFIG; default airlock.yaml, or airlock.yml)")
	fs.StringVar(&g.stateDir, "state-dir", os.Getenv("AIRLOCK_STATE_DIR"), "state `directory`: compilation cache, audit log; overrides the config file ($AIRLOCK_STATE_DIR, default .airlock)")
	fs.StringVar(&g.state, "state", os.Getenv("AIRLOCK_STATE"), "state store `DSN`: sqlite:PATH or postgres://…; overrides the config file ($AIRLOCK_STATE, default sqlite:STATE_DIR/state.db)")
	fs.StringVar(&g.key, "master-key", os.Getenv("AIRLOCK_MASTER_KEY_REF"), "master key `reference` (env:VAR, file:PATH or vault:…), the same on every replica; overrides the config file's master_key ($AIRLOCK_MASTER_KEY_REF; $AIRLOCK_MASTER_KEY may hold the key itself; default STATE_DIR/master.key)")
	fs.StringVar(&g.redis, "redis", os.Getenv("AIRLOCK_REDIS"), "Redis `URL` (redis://host:6379/0) to share rate limits and quotas with other replicas ($AIRLOCK_REDIS)")
	fs.StringVar(&g.logLevel, "log-level", envOr("AIRLOCK_LOG_LEVEL", "warn"), "log `level`: debug, info, warn or error ($AIRLOCK_LOG_LEVEL)")
	fs.BoolVar(&g.logJSON, "log-json", os.Getenv("AIRLOCK_LOG_JSON") == "1", "write logs as JSON lines ($AIRLOCK_LOG_JSON=1)")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	if g.logJSON {
		return slog.New(secret.NewJSONHandler(w, opts)), nil
	}
	return slog.New(secret.RedactingHandler(slog.NewTextHandler(w, opts))), nil
}

// loadConfig reads the config file. A missing default file is not an error (no connectors).
func (g *globals) loadConfig() (*fileConfig, string, error) {
	cfg := &fileConfig{}
	path, required, err := g.configPath()
	if err != nil {
		return nil, "", err
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !required:
	case err != nil:
		return nil, "", fmt.Errorf("reading the configuration: %w", err)
	default:
		if err := decodeConfig(path, data, cfg); err != nil {
			return nil, "", err
		}
	}
	base := filepath.Dir(path)
	stateDir := g.stateDir
	if stateDir == "" {
		stateDir = cfg.StateDir
		if stateDir != "" && !filepath.IsAbs(stateDir) {
			stateDir = filepath.Join(base, stateDir)
		}
	}
	if stateDir == "" {
		stateDir = ".airlock"
	}
	for i := range cfg.Connectors {
		c := &cfg.Connectors[i]
		if !filepath.IsAbs(c.Manifest) {
			c.Manifest = filepath.Join(base, c.Manifest)
		}
		if !filepath.IsAbs(c.Grant) {
			c.Grant = filepath.Join(base, c.Grant)
		}
	}
	return cfg, stateDir, nil
}

// openHost starts a host on the state store with every connector loaded: those granted in the
// store (installed bundles) and those the configuration file names. Close it with closeHost.
func (g *globals) openHost(ctx context.Context, e *env) (*host.Host, error) {
	rt, err := g.openRuntime(ctx, e, nil)
	if err != nil {
		return nil, err
	}
	return rt.h, nil
}

// hostRuntime is a running host with what it was built on.
type hostRuntime struct {
	h        *host.Host
	st       *store.Store
	admin    *admin.Admin
	cfg      *fileConfig
	logger   *slog.Logger
	notifier *notify.Notifier // nil unless notices are on (serve, with webhooks configured)
}

// openRuntime opens the state store, the secret sources and the audit sink, starts a host and
// loads the connectors. onToolsChanged, if set, is called when the tool list changes. The host
// owns the store: closing the host closes it.
func (g *globals) openRuntime(ctx context.Context, e *env, onToolsChanged func()) (*hostRuntime, error) {
	logger, err := g.logger(e.stderr)
	if err != nil {
		return nil, err
	}
	_, cfg, stateDir, err := g.stateDSN()
	if err != nil {
		return nil, err
	}
	g.notice = e.stderr
	st, err := g.openStore(ctx)
	if err != nil {
		return nil, err
	}
	secrets, ss, err := g.secrets(ctx, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	sink := audit.NewStoreSink(st, &audit.StoreSinkOptions{Logger: logger, FailOpen: cfg.AuditFailOpen, Trail: audit.TrailOf(st)})
	if cfg.AuditFailOpen {
		logger.Warn("audit_fail_open is set: calls keep running when the audit log cannot be written, and those records are lost")
	}
	cacheDir := "" // default: STATE_DIR/cache
	if d := os.Getenv("AIRLOCK_CACHE_DIR"); d != "" {
		cacheDir = filepath.Join(d, "compiled") // shared by every state directory on this machine
	}
	hc := host.Config{StateDir: stateDir, CacheDir: cacheDir, Logger: logger, Store: st, Secrets: secrets, Audit: sink,
		RedisURL: cmpOr(g.redis, cfg.Redis), Metrics: g.metrics, TracerProvider: g.tracer, RequireProfiles: g.requireProfiles,
		OnToolsChanged: onToolsChanged, OnClose: func() error { return errors.Join(sink.Close(), st.Close()) }}
	if !g.runJobs {
		hc.DeferredWorkers = -1 // a one-shot command queues deferred calls and leaves them to serve
	}
	if ss != nil { // else OAuth tokens are sealed with a key of this process only
		hc.Sealer = ss
	}
	var notifier *notify.Notifier
	if g.notices {
		if notifier, err = startNotifier(g.config, cfg.Notify, secrets, logger); err != nil {
			sink.Close()
			st.Close()
			return nil, err
		}
		if notifier != nil {
			hc.OnNotice = notifier.Notify
		}
	}
	h, err := host.New(hc)
	if err != nil {
		closeNotifier(notifier, logger)
		sink.Close()
		st.Close()
		return nil, err
	}
	rt := &hostRuntime{h: h, st: st, admin: admin.New(st, h, logger), cfg: cfg, logger: logger, notifier: notifier}
	rt.admin.SetConfigured(g.configured())
	if ss != nil {
		rt.admin.SetSecretStore(ss) // the web console's and admin API's secrets pages
	}
	if err := rt.admin.Sync(ctx); err != nil {
		// Each connector that failed is stopped (fail closed); the others serve.
		logger.Error("connectors from the state store that could not be loaded do not serve; the others do", "err", err)
	}
	for _, c := range cfg.Connectors {
		if err := loadConfigured(ctx, h, c.Manifest, c.Grant); err != nil {
			h.Close(ctx)
			closeNotifier(notifier, logger)
			return nil, err
		}
	}
	return rt, nil
}

// configured returns a lookup of the connectors the configuration file loads, by name, with
// their manifest and grant (read again at each lookup, so an edited file counts).
func (g *globals) configured() func(name string) (*manifest.Manifest, *manifest.Grant, bool) {
	return func(name string) (*manifest.Manifest, *manifest.Grant, bool) {
		cfg, _, err := g.loadConfig()
		if err != nil {
			return nil, nil, false
		}
		for _, c := range cfg.Connectors {
			m, err := manifest.Load(c.Manifest)
			if err != nil || m.Name != name {
				continue
			}
			gr, err := manifest.LoadGrant(c.Grant)
			if err != nil {
				return nil, nil, false
			}
			return m, gr, true
		}
		return nil, nil, false
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func loadConfigured(ctx context.Context, h *host.Host, manifestPath, grantPath string) error {
	m, err := manifest.Load(manifestPath)
	if err != nil {
		return err
	}
	gr, err := manifest.LoadGrant(grantPath)
	if err != nil {
		return err
	}
	return h.Load(ctx, m, gr)
}
