package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

// TokenView is an agent or admin token as the API and the console list it: never the token
// nor its hash.
type TokenView struct {
	Name     string     `json:"name"`
	Subject  string     `json:"subject,omitempty"` // agents: the tenant their calls act for
	Role     string     `json:"role,omitempty"`    // admins
	Created  time.Time  `json:"created"`
	LastUsed *time.Time `json:"last_used,omitempty"`
	Expires  *time.Time `json:"expires,omitempty"`
}

// holders returns the token holders of kind (store.TokenAgent or store.TokenAdmin).
func (a *Admin) holders(kind string) (*mcp.Agents, error) {
	switch kind {
	case store.TokenAgent:
		return mcp.StoreAgents(a.st), nil
	case store.TokenAdmin:
		return mcp.StoreAdmins(a.st), nil
	}
	return nil, fmt.Errorf("token kind %q: use agent or admin", kind)
}

// Tokens lists the tokens of kind kept in the state store, sorted by name.
func (a *Admin) Tokens(ctx context.Context, kind string) ([]TokenView, error) {
	if _, err := a.holders(kind); err != nil {
		return nil, err
	}
	list, err := a.st.ListTokens(ctx, kind)
	out := make([]TokenView, 0, len(list))
	for _, t := range list {
		v := TokenView{Name: t.Name, Subject: t.Subject, Role: t.Role, Created: t.Created}
		if !t.LastUsed.IsZero() {
			v.LastUsed = &t.LastUsed
		}
		if !t.Expires.IsZero() {
			v.Expires = &t.Expires
		}
		out = append(out, v)
	}
	return out, err
}

// IssueToken creates a token of kind for nt and returns it: it is shown to the caller once and
// kept only as its SHA-256. An admin token's role must be one of [Roles]. The issue is recorded
// with who made it (never the token).
func (a *Admin) IssueToken(ctx context.Context, kind string, nt mcp.NewToken, by string) (string, error) {
	h, err := a.holders(kind)
	if err != nil {
		return "", err
	}
	if kind == store.TokenAdmin {
		if _, err := ParseRole(nt.Role); err != nil {
			return "", err
		}
	} else {
		nt.Role = ""
	}
	token, err := h.Issue(nt)
	if errors.Is(err, mcp.ErrAgentExists) {
		return "", fmt.Errorf("%w: %w", err, store.ErrConflict)
	}
	if err != nil {
		return "", err
	}
	detail := map[string]string{"subject": nt.Subject, "role": nt.Role}
	if !nt.Expires.IsZero() {
		detail["expires"] = nt.Expires.UTC().Format(time.RFC3339)
	}
	return token, audit.Action(ctx, a.st, by, kind+" token issue", nt.Name, detail)
}

// RevokeToken revokes the token of kind named name: it stops working on its next request.
func (a *Admin) RevokeToken(ctx context.Context, kind, name, by string) error {
	if _, err := a.holders(kind); err != nil {
		return err
	}
	if err := a.st.RevokeToken(ctx, kind, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("there is no %s token named %s: %w", kind, name, store.ErrNotFound)
		}
		return err
	}
	return audit.Action(ctx, a.st, by, kind+" token revoke", name, nil)
}

// tokenKind is the token kind of an API request: admin tokens under /admin/v1/admins.
func tokenKind(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/admin/v1/admins") {
		return store.TokenAdmin
	}
	return store.TokenAgent
}

func (a *Admin) apiTokens(w http.ResponseWriter, r *http.Request) {
	list, err := a.Tokens(r.Context(), store.TokenAgent)
	reply(w, list, err)
}

func (a *Admin) apiIssueToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name    string `json:"name"`
		Subject string `json:"subject"`
		Role    string `json:"role"`
		TTL     string `json:"ttl"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErr(w, http.StatusBadRequest, `the body must be JSON such as {"name": "support-bot", "subject": "acme", "ttl": "720h"} (admins: "role" instead of "subject")`)
		return
	}
	nt := mcp.NewToken{Name: body.Name, Subject: body.Subject, Role: body.Role}
	if body.TTL != "" {
		d, err := time.ParseDuration(body.TTL)
		if err != nil || d <= 0 {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("ttl %q: give a positive duration such as 720h", body.TTL))
			return
		}
		nt.Expires = time.Now().Add(d)
	}
	token, err := a.IssueToken(r.Context(), tokenKind(r), nt, adminFrom(r.Context()))
	reply(w, map[string]string{"name": body.Name, "token": token}, err)
}

func (a *Admin) apiRevokeToken(w http.ResponseWriter, r *http.Request) {
	err := a.RevokeToken(r.Context(), tokenKind(r), r.PathValue("name"), adminFrom(r.Context()))
	reply(w, map[string]string{"revoked": r.PathValue("name")}, err)
}
