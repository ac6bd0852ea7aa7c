// Package admin is what admins do to a running airlock: grant a connector (all it asks for, or
// a subset), revoke it, approve an upgrade that asks for more, approve or deny the calls that wait
// for a human, and read and verify the audit trail. Every change is recorded in the state store
// (host/store) with who made it, then applied to the host at once; other processes and replicas
// sharing the store pick it up with [Admin.Watch].
//
// Nothing here is reachable from an agent: the MCP server exposes tools only, and the admin HTTP
// API ([Admin.Handler]) accepts admin tokens only, which agent tokens can never pass for.
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
	"github.com/airlock-dev/airlock/host/store"
)

// Admin applies admins' decisions to a state store and, when it has one, a running host.
// Safe for concurrent use.
type Admin struct {
	st     *store.Store
	h      *host.Host // nil for a CLI that only records decisions
	logger *slog.Logger

	mu     sync.Mutex
	loaded map[string]loadedState // connector → what the host runs, for Sync
}

type loadedState struct {
	version, digest string
	grant           int
}

// New returns an Admin over st that applies changes to h (nil: record only).
func New(st *store.Store, h *host.Host, logger *slog.Logger) *Admin {
	if logger == nil {
		logger = slog.Default()
	}
	return &Admin{st: st, h: h, logger: logger, loaded: map[string]loadedState{}}
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

func at(version string) string {
	if version == "" {
		return ""
	}
	return "@" + version
}

// Asks describes what a manifest asks an admin for, for review before granting.
type Asks struct {
	Connector, Version, Publisher, Digest string
	Unsigned                              bool
	Tools                                 []ToolAsk
	Scopes, Hosts                         []string
	Credentials                           []string // "slot (kind) → hosts"
	Functions                             []string // "name (read-only|WRITES): SQL"
	Limits                                manifest.Limits
}

// ToolAsk is one tool and what it needs.
type ToolAsk struct {
	Name, Description string
	Scopes            []string
	Hints             []string
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
		asks.Tools = append(asks.Tools, ToolAsk{Name: t.Name, Description: t.Description, Scopes: t.Scopes, Hints: hints})
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
	for _, cr := range m.Credentials {
		asks.Credentials = append(asks.Credentials, fmt.Sprintf("%s (%s) → %s", cr.Name, cr.Kind, strings.Join(cr.Hosts, ", ")))
	}
	if m.Database != nil {
		for _, f := range m.Database.Functions {
			mode := "read-only"
			if !f.ReadOnly {
				mode = "WRITES"
			}
			asks.Functions = append(asks.Functions, fmt.Sprintf("%s (%s, ≤%d rows, %d ms): %s", f.Name, mode, f.MaxRows, f.TimeoutMS, f.SQL))
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
	data, err := json.Marshal(req.Grant)
	if err != nil {
		return store.GrantRecord{}, err
	}
	if c.Status != "active" {
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
// their Watch interval); calls already running finish.
func (a *Admin) Revoke(ctx context.Context, connector string, tools []string, admin, note string) error {
	cur, err := a.st.CurrentGrant(ctx, connector)
	if errors.Is(err, store.ErrNotFound) || err == nil && cur.Revoked {
		return fmt.Errorf("connector %s has no grant to revoke (see `airlock grants`)", connector)
	}
	if err != nil {
		return err
	}
	if len(tools) == 0 {
		if _, err := a.st.RevokeGrant(ctx, connector, admin, note); err != nil {
			return err
		}
		a.logger.Info("grant revoked", "connector", connector, "admin", admin)
		return errors.Join(audit.GrantChanged(ctx, a.st, admin, "revoke", connector), a.Sync(ctx))
	}
	var g manifest.Grant
	if err := json.Unmarshal(cur.Grant, &g); err != nil {
		return fmt.Errorf("connector %s: the stored grant is unreadable: %w", connector, err)
	}
	// The grant applies to the active version: a pending upgrade must neither widen the grant
	// ("*" expanded to its new tools) nor block the revoke.
	c, err := a.active(ctx, connector)
	if err != nil {
		return err
	}
	granted := g.Tools
	if slices.Contains(granted, manifest.All) {
		granted = nil
		for _, t := range c.Manifest.Tools {
			granted = append(granted, t.Name)
		}
	}
	for _, t := range tools {
		if _, ok := c.Manifest.Tool(t); !ok {
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

// Sync makes the host run exactly the active, granted connectors of the store: it loads what
// is new or changed (version, module or grant) and unloads what lost its grant. Connectors the
// host runs that the store does not know (from a configuration file) are left alone.
func (a *Admin) Sync(ctx context.Context) error {
	if a.h == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	grants, err := a.st.ListGrants(ctx)
	if err != nil {
		return fmt.Errorf("reading grants: %w", err)
	}
	want := map[string]store.GrantRecord{}
	for _, g := range grants {
		if !g.Revoked {
			want[g.Connector] = g
		}
	}
	var errs []error
	for name, st := range a.loaded {
		if _, ok := want[name]; !ok {
			if err := a.h.Unload(name); err != nil {
				a.logger.Warn("unload", "connector", name, "err", err)
			}
			delete(a.loaded, name)
			_ = st
		}
	}
	for name, rec := range want {
		in, err := a.st.ActiveInstalled(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue // granted but not installed (a grant for a configuration-file connector)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cur := loadedState{version: in.Version, digest: in.Digest, grant: rec.Version}
		if a.loaded[name] == cur {
			continue
		}
		if err := a.load(ctx, in, rec); err != nil {
			errs = append(errs, fmt.Errorf("connector %s: %w", name, err))
			// Fail closed: the host must not keep serving a grant the store no longer holds
			// (it may have been narrowed or revoked). The next Sync tries again.
			if _, ok := a.loaded[name]; ok {
				if uerr := a.h.Unload(name); uerr != nil {
					a.logger.Warn("unload", "connector", name, "err", uerr)
				}
				delete(a.loaded, name)
				a.logger.Error("connector unloaded: its current grant could not be applied", "connector", name, "err", err)
			}
			continue
		}
		a.loaded[name] = cur
	}
	return errors.Join(errs...)
}

func (a *Admin) load(ctx context.Context, in store.Installed, rec store.GrantRecord) error {
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
	var g manifest.Grant
	if err := json.Unmarshal(rec.Grant, &g); err != nil {
		return fmt.Errorf("the stored grant is unreadable: %w", err)
	}
	if in.Unsigned {
		a.logger.Warn("UNSIGNED connector loaded: it was installed with --allow-unsigned, for development only; every audit record of its calls says unsigned",
			"connector", in.Name, "version", in.Version, "module_sha256", in.Digest)
	}
	return a.h.LoadInstalled(ctx, m, in.Module, &g, host.Origin{Publisher: in.Publisher, Unsigned: in.Unsigned})
}

// Watch re-syncs the host with the store every interval until ctx ends, so decisions made by
// another process (the CLI, another replica's admin API) take effect here.
func (a *Admin) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	lastPurge := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := a.Sync(ctx); err != nil && ctx.Err() == nil {
				a.logger.Warn("syncing with the state store", "err", err)
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
