// Package admin is what admins do to a running airlock: grant a connector (all it asks for, or
// a subset), revoke it, approve an upgrade that asks for more, approve or deny the calls that wait
// for a human, and read and verify the audit trail. Every change is recorded in the state store
// (host/store) with who made it, then applied to the host at once; other processes and replicas
// sharing the store pick it up with [Admin.Watch].
//
// Nothing here is reachable from an agent: the MCP server exposes tools only, and the admin HTTP
// API ([Admin.Handler]) accepts admin tokens only, which agent tokens can never pass for. Each
// admin token has a [Role], and each route the least role it needs (viewer, approver, granter,
// owner; cumulative); a request beyond the role is refused and audited.
//
//	a := admin.New(st, h, logger)
//	if err := a.Sync(ctx); err != nil { … }          // load every granted, active connector
//	rec, err := a.Grant(ctx, admin.GrantRequest{Connector: "slack", Grant: g, Admin: "alice"})
//	err = a.Revoke(ctx, "slack", []string{"post_message"}, "alice", "incident 42")
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

// Admin applies admins' decisions to a state store and, when it has one, a running host.
// Safe for concurrent use.
type Admin struct {
	st     *store.Store
	h      *host.Host // nil for a CLI that only records decisions
	logger *slog.Logger

	configured func(name string) (*manifest.Manifest, *manifest.Grant, bool)
	secrets    *secret.Store // the built-in secret store, when open (SetSecretStore)

	mu      sync.Mutex
	loaded  map[string]loadedState // connector → what the host runs, for Sync
	retryAt map[string]time.Time   // connector → when Sync tries again a state that failed

	profMu     sync.Mutex
	profStamp  string // the names and versions of the profiles the host has, for SyncProfiles
	profSynced bool
}

type loadedState struct {
	version, digest string
	grant           int
	revoked, failed bool
}

// SetConfigured tells the Admin which connectors a configuration file (airlock.yaml) loads
// outside the store, with their manifest and grant: such a connector can be revoked (the
// revocation is recorded in the store and overrides the file) and granted through the store
// although it is not installed there. fn must be safe for concurrent use.
func (a *Admin) SetConfigured(fn func(name string) (*manifest.Manifest, *manifest.Grant, bool)) {
	a.configured = fn
}

func (a *Admin) configuredOf(name string) (*manifest.Manifest, *manifest.Grant, bool) {
	if a.configured == nil {
		return nil, nil, false
	}
	return a.configured(name)
}

// New returns an Admin over st that applies changes to h (nil: record only).
func New(st *store.Store, h *host.Host, logger *slog.Logger) *Admin {
	if logger == nil {
		logger = slog.Default()
	}
	return &Admin{st: st, h: h, logger: logger, loaded: map[string]loadedState{}, retryAt: map[string]time.Time{}}
}

// Store returns the state store.
func (a *Admin) Store() *store.Store { return a.st }

// Connector is an installed connector version with its manifest parsed.
type Connector struct {
	store.Installed
	Manifest *manifest.Manifest
}

// installed returns the version of name a grant applies to: version if given, else the pending
// version if there is one (granting it approves the upgrade), else the active one.
func (a *Admin) installed(ctx context.Context, name, version string) (*Connector, error) {
	var in store.Installed
	var err error
	if version != "" {
		in, err = a.st.GetInstalled(ctx, name, version)
	} else {
		in, err = a.pendingOrActive(ctx, name)
	}
	if errors.Is(err, store.ErrNotFound) {
		if m, _, ok := a.configuredOf(name); ok && (version == "" || version == m.Version) {
			return &Connector{Installed: store.Installed{Name: name, Version: m.Version, Digest: m.Module.SHA256,
				Publisher: m.Publisher, Status: statusConfigured}, Manifest: m}, nil
		}
		return nil, fmt.Errorf("connector %s%s is not installed: install it with `airlock plugin install BUNDLE` (see `airlock plugin list`)", name, at(version))
	}
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(in.Name+".yaml", in.Manifest)
	if err != nil {
		return nil, fmt.Errorf("connector %s@%s: its stored manifest no longer parses: %w", in.Name, in.Version, err)
	}
	return &Connector{Installed: in, Manifest: m}, nil
}

func (a *Admin) pendingOrActive(ctx context.Context, name string) (store.Installed, error) {
	all, err := a.st.ListInstalled(ctx)
	if err != nil {
		return store.Installed{}, err
	}
	var active *store.Installed
	for i := range all {
		if all[i].Name != name {
			continue
		}
		switch all[i].Status {
		case "pending":
			return a.st.GetInstalled(ctx, name, all[i].Version)
		case "active":
			active = &all[i]
		}
	}
	if active == nil {
		return store.Installed{}, store.ErrNotFound
	}
	return a.st.GetInstalled(ctx, name, active.Version)
}

// active returns the active version of name with its manifest parsed.
func (a *Admin) active(ctx context.Context, name string) (*Connector, error) {
	in, err := a.st.ActiveInstalled(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("connector %s has no active version: install it with `airlock plugin install BUNDLE` (see `airlock plugin list`)", name)
	}
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(in.Name+".yaml", in.Manifest)
	if err != nil {
		return nil, fmt.Errorf("connector %s@%s: its stored manifest no longer parses: %w", in.Name, in.Version, err)
	}
	return &Connector{Installed: in, Manifest: m}, nil
}

// statusConfigured marks a Connector that the configuration file loads, not the store.
const statusConfigured = "configured"

func at(version string) string {
	if version == "" {
		return ""
	}
	return "@" + version
}

// Asks describes what a manifest asks an admin for, for review before granting.
type Asks struct {
	Connector   string          `json:"connector"`
	Version     string          `json:"version"`
	Publisher   string          `json:"publisher"`
	Digest      string          `json:"module_sha256"`
	Unsigned    bool            `json:"unsigned,omitempty"`
	Tools       []ToolAsk       `json:"tools"`
	Scopes      []string        `json:"scopes,omitempty"`
	Hosts       []string        `json:"hosts,omitempty"`
	Credentials []string        `json:"credentials,omitempty"` // "slot (kind) → hosts"
	Functions   []string        `json:"functions,omitempty"`   // "name (read-only|WRITES): SQL"
	Limits      manifest.Limits `json:"limits"`

	// Config describes each config key: its default and the values a grant may set, with the
	// rate limits each value brings.
	Config []string `json:"config,omitempty"`
}

// ToolAsk is one tool and what it needs.
type ToolAsk struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Scopes      []string `json:"scopes,omitempty"`
	Hints       []string `json:"hints,omitempty"`
	// Uses says what the tool's code may use while it runs (manifest tools[].uses), e.g.
	// "database: find_customer; network: none; credentials: none".
	Uses string `json:"uses,omitempty"`
}

// Review returns what connector name (at version, or its pending/active version) asks for, and
// the changes against the active version when version is an upgrade.
func (a *Admin) Review(ctx context.Context, name, version string) (*Asks, []manifest.Change, error) {
	c, err := a.installed(ctx, name, version)
	if err != nil {
		return nil, nil, err
	}
	asks := describe(c)
	var diff []manifest.Change
	if c.Status == "pending" {
		if act, err := a.st.ActiveInstalled(ctx, name); err == nil {
			old, err := manifest.Parse(act.Name+".yaml", act.Manifest)
			if err == nil {
				diff = manifest.Compare(old, c.Manifest)
			}
		}
	}
	return asks, diff, nil
}

func describe(c *Connector) *Asks {
	m := c.Manifest
	asks := &Asks{Connector: m.Name, Version: m.Version, Publisher: m.Publisher, Digest: c.Digest, Unsigned: c.Unsigned, Limits: m.Limits}
	scopes := map[string]bool{}
	for _, t := range m.Tools {
		var hints []string
		an := t.Annotations
		for _, h := range []struct {
			on   bool
			name string
		}{{an.ReadOnly, "read-only"}, {an.Destructive, "destructive"}, {an.Idempotent, "idempotent"}, {an.NeedsConfirmation, "needs-confirmation"}} {
			if h.on {
				hints = append(hints, h.name)
			}
		}
		if t.Function != "" {
			hints = append(hints, "runs database function "+t.Function)
		}
		asks.Tools = append(asks.Tools, ToolAsk{Name: t.Name, Description: t.Description, Scopes: t.Scopes, Hints: hints,
			Uses: m.DescribeBinding(&t)})
		for _, s := range t.Scopes {
			scopes[s] = true
		}
	}
	for s := range scopes {
		asks.Scopes = append(asks.Scopes, s)
	}
	slices.Sort(asks.Scopes)
	for _, r := range m.Network {
		desc := fmt.Sprintf("%s://%s:%d%s %s", r.Scheme, r.Host, r.Port, r.PathPrefix, strings.Join(r.Methods, ","))
		if r.RateLimit != nil {
			desc += fmt.Sprintf(" (at most %g/s)", r.RateLimit.PerSecond)
		}
		asks.Hosts = append(asks.Hosts, desc)
	}
	asks.Config = describeConfig(m)
	for _, cr := range m.Credentials {
		asks.Credentials = append(asks.Credentials, fmt.Sprintf("%s (%s) → %s", cr.Name, cr.Kind, strings.Join(cr.Hosts, ", ")))
	}
	if m.Database != nil {
		for _, f := range m.Database.Functions {
			mode := "read-only"
			if !f.ReadOnly {
				mode = "WRITES"
			}
			asks.Functions = append(asks.Functions, fmt.Sprintf("%s (%s, ≤%d rows, %d ms): %s", f.Name, mode, f.MaxRows, f.TimeoutMS, f.Statement()))
		}
	}
	return asks
}

// GrantRequest records an admin's grant for a connector.
type GrantRequest struct {
	Connector string
	// Version selects the installed version the grant is for; "" means the active one (or the
	// only installed version when none is active). Granting a pending version approves the
	// upgrade and activates it: that always takes naming the version.
	Version string
	Grant   *manifest.Grant
	Admin   string // who grants, recorded in the history
	Note    string
}

// Grant checks g against the connector's manifest (a grant naming anything the manifest does
// not declare, or looser limits, is refused), records it as the connector's current grant,
// activates the version it is for, and loads the connector into the host.
func (a *Admin) Grant(ctx context.Context, req GrantRequest) (store.GrantRecord, error) {
	if req.Grant == nil {
		return store.GrantRecord{}, errors.New("no grant given")
	}
	if req.Grant.Connector == "" {
		req.Grant.Connector = req.Connector
	}
	version := req.Version
	if version == "" {
		if act, err := a.st.ActiveInstalled(ctx, req.Connector); err == nil {
			version = act.Version // never approve a pending upgrade by accident
		}
	}
	c, err := a.installed(ctx, req.Connector, version)
	if err != nil {
		return store.GrantRecord{}, err
	}
	if err := host.CheckGrant(c.Manifest, req.Grant); err != nil {
		return store.GrantRecord{}, err
	}
	if _, err := a.CheckReferences(ctx, req.Grant); err != nil {
		return store.GrantRecord{}, err
	}
	data, err := json.Marshal(req.Grant)
	if err != nil {
		return store.GrantRecord{}, err
	}
	if c.Status != "active" && c.Status != statusConfigured {
		if err := a.st.Activate(ctx, c.Name, c.Version); err != nil {
			return store.GrantRecord{}, fmt.Errorf("activating %s@%s: %w", c.Name, c.Version, err)
		}
	}
	rec, err := a.st.PutGrant(ctx, req.Connector, data, req.Admin, req.Note)
	if err != nil {
		return store.GrantRecord{}, err
	}
	a.logger.Info("grant recorded", "connector", req.Connector, "version", c.Version, "grant_version", rec.Version, "admin", req.Admin)
	if err := audit.GrantChanged(ctx, a.st, req.Admin, "grant", req.Connector); err != nil {
		return rec, errors.Join(err, a.Sync(ctx))
	}
	return rec, a.Sync(ctx)
}

// Revoke withdraws tools from a connector's grant (all of them when tools is empty). It takes
// effect for every new call when it returns (on this process's host; other processes within
// their Watch interval); calls already running finish. A connector the configuration file loads
// can be revoked too: the revocation is recorded in the store and wins over the file.
func (a *Admin) Revoke(ctx context.Context, connector string, tools []string, admin, note string) error {
	cur, err := a.st.CurrentGrant(ctx, connector)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	inStore := err == nil && !cur.Revoked
	cm, cg, configured := a.configuredOf(connector)
	switch {
	case err == nil && cur.Revoked:
		return fmt.Errorf("connector %s is already revoked (see `airlock grants %s --history`)", connector, connector)
	case !inStore && !configured:
		return fmt.Errorf("connector %s has no grant to revoke (see `airlock grants`)", connector)
	}
	if len(tools) == 0 {
		if _, err := a.st.RevokeGrant(ctx, connector, admin, note); err != nil {
			return err
		}
		a.logger.Info("grant revoked", "connector", connector, "admin", admin)
		return errors.Join(audit.GrantChanged(ctx, a.st, admin, "revoke", connector), a.Sync(ctx))
	}
	// The grant applies to the active version: a pending upgrade must neither widen the grant
	// ("*" expanded to its new tools) nor block the revoke.
	m := cm
	if c, err := a.active(ctx, connector); err == nil {
		m = c.Manifest
	} else if !configured {
		return err
	}
	var g manifest.Grant
	if inStore {
		if err := json.Unmarshal(cur.Grant, &g); err != nil {
			return fmt.Errorf("connector %s: the stored grant is unreadable: %w", connector, err)
		}
	} else {
		// Only the file grants it: record what the file permits, less the tools. Values
		// (credentials, config, upstreams, the database reference) and limits stay the file's.
		g = *Permissions(cg)
	}
	granted := g.Tools
	if slices.Contains(granted, manifest.All) {
		granted = nil
		for _, t := range m.Tools {
			granted = append(granted, t.Name)
		}
	}
	for _, t := range tools {
		if _, ok := m.Tool(t); !ok {
			return fmt.Errorf("connector %s has no tool %q", connector, t)
		}
	}
	g.Tools = slices.DeleteFunc(slices.Clone(granted), func(t string) bool { return slices.Contains(tools, t) })
	data, err := json.Marshal(&g)
	if err != nil {
		return err
	}
	if _, err := a.st.PutGrant(ctx, connector, data, admin, strings.TrimSpace("revoke "+strings.Join(tools, ",")+" "+note)); err != nil {
		return err
	}
	a.logger.Info("tools revoked", "connector", connector, "tools", tools, "admin", admin)
	return errors.Join(audit.GrantChanged(ctx, a.st, admin, "revoke", connector), a.Sync(ctx))
}

// Sync makes the host run what the store decides: the agent profiles (SyncProfiles), the
// active, granted connectors, with their current grants; for a connector the configuration file loads, the store's grant restricts the
// file's and a revocation recorded in the store stops it (the most restrictive decision wins,
// host.MergeGrants). A state that failed to apply is tried again after a minute or when it
// changes.
func (a *Admin) Sync(ctx context.Context) error {
	if a.h == nil {
		return nil
	}
	perr := a.SyncProfiles(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	grants, err := a.st.ListGrants(ctx)
	if err != nil {
		return errors.Join(perr, fmt.Errorf("reading grants: %w", err))
	}
	errs := []error{perr}
	seen := map[string]bool{}
	for _, rec := range grants {
		name := rec.Connector
		seen[name] = true
		cur := loadedState{grant: rec.Version, revoked: rec.Revoked}
		var in store.Installed
		if !rec.Revoked {
			in, err = a.st.ActiveInstalled(ctx, name)
			switch {
			case errors.Is(err, store.ErrNotFound): // a grant for a configuration-file connector
			case err != nil:
				errs = append(errs, err)
				continue
			default:
				cur.version, cur.digest = in.Version, in.Digest
			}
		}
		if prev, ok := a.loaded[name]; ok {
			if prev == cur {
				continue
			}
			if prev == (loadedState{version: cur.version, digest: cur.digest, grant: cur.grant, revoked: cur.revoked, failed: true}) && time.Now().Before(a.retryAt[name]) {
				continue
			}
		}
		if err := a.load(ctx, name, in, rec); err != nil {
			if !errors.As(err, new(appliedError)) {
				// Fail closed: the host must not keep serving a grant the store no longer holds.
				_ = a.h.SetInstalled(ctx, name, &host.Installed{Err: err})
			}
			errs = append(errs, fmt.Errorf("connector %s: %w", name, err))
			cur.failed = true
			a.retryAt[name] = time.Now().Add(time.Minute)
		}
		a.loaded[name] = cur
	}
	for name := range a.loaded {
		if !seen[name] {
			if err := a.h.SetInstalled(ctx, name, nil); err != nil {
				errs = append(errs, err)
			}
			delete(a.loaded, name)
		}
	}
	return errors.Join(errs...)
}

// load hands the host what the store says about name: a revocation, a grant for an installed
// version, or a grant alone (for a connector the configuration file loads).
func (a *Admin) load(ctx context.Context, name string, in store.Installed, rec store.GrantRecord) error {
	if rec.Revoked {
		return applied(a.h.SetInstalled(ctx, name, &host.Installed{Revoked: true}))
	}
	var g manifest.Grant
	if err := json.Unmarshal(rec.Grant, &g); err != nil {
		return fmt.Errorf("the stored grant is unreadable: %w", err)
	}
	if in.Name == "" {
		return applied(a.h.SetInstalled(ctx, name, &host.Installed{Grant: &g}))
	}
	if in.Module == nil {
		full, err := a.st.GetInstalled(ctx, in.Name, in.Version)
		if err != nil {
			return err
		}
		in = full
	}
	m, err := manifest.Parse(in.Name+".yaml", in.Manifest)
	if err != nil {
		return err
	}
	if in.Unsigned {
		a.logger.Warn("UNSIGNED connector loaded: it was installed with --allow-unsigned, for development only; every audit record of its calls says unsigned",
			"connector", in.Name, "version", in.Version, "module_sha256", in.Digest)
	}
	return applied(a.h.LoadInstalled(ctx, m, in.Module, &g, host.Origin{Publisher: in.Publisher, Unsigned: in.Unsigned}))
}

// appliedError is an error the host returned after failing closed itself.
type appliedError struct{ error }

func (e appliedError) Unwrap() error { return e.error }

func applied(err error) error {
	if err == nil {
		return nil
	}
	return appliedError{err}
}

// Watch re-syncs the host with the store every interval until ctx ends, so decisions made by
// another process (the CLI, another replica's admin API) take effect here. A problem is logged
// when it appears or changes, not at every interval.
func (a *Admin) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	lastPurge := time.Now()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			err := a.Sync(ctx)
			switch {
			case ctx.Err() != nil:
			case err != nil && err.Error() != lastErr:
				a.logger.Warn("syncing with the state store", "err", err)
				lastErr = err.Error()
			case err == nil && lastErr != "":
				a.logger.Info("in sync with the state store again")
				lastErr = ""
			}
			if now.Sub(lastPurge) >= time.Minute { // expired approvals and idempotency records
				lastPurge = now
				if _, err := a.st.PurgeExpired(ctx, now); err != nil && ctx.Err() == nil {
					a.logger.Warn("purging expired records", "err", err)
				}
			}
		}
	}
}
