package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
)

// ProfileView is a version of an agent profile as the API and CLI show it.
type ProfileView struct {
	host.Profile
	Version int       `json:"version"`
	Admin   string    `json:"admin"`
	Note    string    `json:"note,omitempty"`
	Created time.Time `json:"created"`
	Deleted bool      `json:"deleted,omitempty"`
}

func profileView(r store.ProfileRecord) (ProfileView, error) {
	v := ProfileView{Profile: host.Profile{Name: r.Name}, Version: r.Version, Admin: r.Admin, Note: r.Note, Created: r.Created, Deleted: r.Deleted}
	if r.Deleted {
		return v, nil
	}
	if err := json.Unmarshal(r.Body, &v.Profile); err != nil {
		return v, fmt.Errorf("profile %s version %d: the stored profile is unreadable: %w", r.Name, r.Version, err)
	}
	v.Name = r.Name
	return v, nil
}

func profileViews(rs []store.ProfileRecord, err error) ([]ProfileView, error) {
	if err != nil {
		return nil, err
	}
	out := make([]ProfileView, 0, len(rs))
	var errs []error
	for _, r := range rs {
		v, err := profileView(r)
		errs = append(errs, err)
		out = append(out, v)
	}
	return out, errors.Join(errs...)
}

// Profiles returns the current version of every agent profile, sorted by name.
func (a *Admin) Profiles(ctx context.Context) ([]ProfileView, error) {
	return profileViews(a.st.ListProfiles(ctx))
}

// Profile returns the current version of profile name, or an error wrapping store.ErrNotFound.
func (a *Admin) Profile(ctx context.Context, name string) (ProfileView, error) {
	r, err := a.st.CurrentProfile(ctx, name)
	if err == nil && r.Deleted {
		err = fmt.Errorf("profile %s was deleted (see `airlock profile history %s`): %w", name, name, store.ErrNotFound)
	}
	if err != nil {
		return ProfileView{}, err
	}
	return profileView(r)
}

// ProfileHistory returns every version of profile name, oldest first.
func (a *Admin) ProfileHistory(ctx context.Context, name string) ([]ProfileView, error) {
	return profileViews(a.st.ProfileHistory(ctx, name))
}

// SetProfile checks p and records it as the current version of its profile, made by admin
// with note; the change is audited with its difference and applied to the host at once (other
// replicas: within their Watch interval, or milliseconds on PostgreSQL). An agent may be a
// member of one profile only: a member of another profile is refused.
func (a *Admin) SetProfile(ctx context.Context, p host.Profile, admin, note string) (store.ProfileRecord, error) {
	if err := p.Check(); err != nil {
		return store.ProfileRecord{}, err
	}
	others, err := a.Profiles(ctx)
	if err != nil {
		return store.ProfileRecord{}, err
	}
	for _, o := range others {
		if o.Name == p.Name {
			continue
		}
		for _, m := range p.Members {
			if slices.Contains(o.Members, m) {
				return store.ProfileRecord{}, fmt.Errorf("agent %s is already a member of profile %s, and an agent may be in one profile only: remove it there first (airlock profile set %s --remove-member %s)",
					m, o.Name, o.Name, m)
			}
		}
	}
	body, err := json.Marshal(p)
	if err != nil {
		return store.ProfileRecord{}, err
	}
	rec, err := a.st.PutProfile(ctx, p.Name, body, admin, note)
	if err != nil {
		return rec, err
	}
	a.logger.Info("profile recorded", "profile", p.Name, "version", rec.Version, "admin", admin)
	return rec, errors.Join(audit.ProfileChanged(ctx, a.st, admin, "profile set", p.Name), a.SyncProfiles(ctx))
}

// DeleteProfile deletes profile name: its members are in no profile any more (see
// host.Config.RequireProfiles for what that gives them). Audited and applied like SetProfile.
func (a *Admin) DeleteProfile(ctx context.Context, name, admin, note string) error {
	if _, err := a.st.DeleteProfile(ctx, name, admin, note); err != nil {
		return err
	}
	a.logger.Info("profile deleted", "profile", name, "admin", admin)
	return errors.Join(audit.ProfileChanged(ctx, a.st, admin, "profile delete", name), a.SyncProfiles(ctx))
}

// SyncProfiles hands the host the profiles the store holds, when they changed since the last
// time (Sync calls it too). A profile whose stored body is unreadable is logged and left out.
func (a *Admin) SyncProfiles(ctx context.Context) error {
	if a.h == nil {
		return nil
	}
	recs, err := a.st.ListProfiles(ctx)
	if err != nil {
		return fmt.Errorf("reading profiles: %w", err)
	}
	var stamp strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&stamp, "%s@%d;", r.Name, r.Version)
	}
	a.profMu.Lock()
	defer a.profMu.Unlock()
	if a.profStamp == stamp.String() && a.profSynced {
		return nil
	}
	views, err := profileViews(recs, nil)
	ps := make([]host.Profile, 0, len(views))
	for _, v := range views {
		ps = append(ps, v.Profile)
	}
	a.h.SetProfiles(ps)
	a.profStamp, a.profSynced = stamp.String(), true
	return err
}

// apiProfiles: GET /admin/v1/profiles.
func (a *Admin) apiProfiles(w http.ResponseWriter, r *http.Request) {
	list, err := a.Profiles(r.Context())
	reply(w, list, err)
}

// apiProfile: GET /admin/v1/profiles/{name} (?history=1 for every version).
func (a *Admin) apiProfile(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("history") != "" {
		list, err := a.ProfileHistory(r.Context(), r.PathValue("name"))
		reply(w, list, err)
		return
	}
	v, err := a.Profile(r.Context(), r.PathValue("name"))
	reply(w, v, err)
}

// apiPutProfile: PUT /admin/v1/profiles/{name} with the profile as JSON (its name is the
// path's).
func (a *Admin) apiPutProfile(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeErr(w, http.StatusRequestEntityTooLarge, "the profile is larger than 1 MiB")
		return
	}
	var p host.Profile
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("the body must be a profile as JSON, such as "+
			`{"members": ["support-bot"], "tools": ["slack.list_*"], "subjects": ["acme"], "quotas": {"per_agent": {"calls": 100, "period_s": 60}}}: %v`, err))
		return
	}
	name := r.PathValue("name")
	if p.Name != "" && p.Name != name {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("the body names profile %q but the path %q: leave the body's name out", p.Name, name))
		return
	}
	p.Name = name
	rec, err := a.SetProfile(r.Context(), p, adminFrom(r.Context()), r.URL.Query().Get("note"))
	if err != nil && rec.Version == 0 {
		reply(w, nil, err)
		return
	}
	v, verr := profileView(rec)
	reply(w, v, errors.Join(err, verr))
}

// apiDeleteProfile: DELETE /admin/v1/profiles/{name}.
func (a *Admin) apiDeleteProfile(w http.ResponseWriter, r *http.Request) {
	err := a.DeleteProfile(r.Context(), r.PathValue("name"), adminFrom(r.Context()), r.URL.Query().Get("note"))
	reply(w, map[string]any{"deleted": r.PathValue("name")}, err)
}
