package admin

import (
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

// TokenVerifier checks an admin token (host/mcp.StoreAdmins, adapted by cmd/airlock).
type TokenVerifier interface {
	// Verify returns the admin the token belongs to. ok is false for an unknown or revoked
	// token; an expired one gives an error wrapping store.ErrExpired; any other error means
	// the tokens cannot be read.
	Verify(token string) (c Caller, ok bool, err error)
}

// HashVerifier is a [TokenVerifier] that also checks an admin token known only by its SHA-256
// (hex, lower case), as the web console's sessions keep it (host/mcp.Agents.VerifySHA256). Its
// answers are those of Verify for the token with that hash.
type HashVerifier interface {
	TokenVerifier
	VerifySHA256(sumHex string) (c Caller, ok bool, err error)
}

// Caller is the admin an admin API request comes from.
type Caller struct {
	Name string
	Role Role
}

// maxBody bounds request bodies of the admin API.
const maxBody = 1 << 20

// Handler returns the admin HTTP API (JSON), every route behind an admin bearer token and the
// least role it needs (see [Role]; the table is routeRoles):
//
//	GET    /admin/v1/connectors                      installed connectors and versions
//	GET    /admin/v1/connectors/{name}/review        what it asks for (?version=), and the diff of a pending upgrade
//	POST   /admin/v1/connectors/{name}/versions/{version}/reject  discard a pending upgrade
//	GET    /admin/v1/grants                          current grants
//	GET    /admin/v1/grants/{connector}/history      every version of a connector's grant
//	PUT    /admin/v1/grants/{connector}              record a grant (body: the grant as JSON; ?version= to approve an upgrade)
//	DELETE /admin/v1/grants/{connector}              revoke it (?tools=a,b for some tools only)
//	GET    /admin/v1/profiles                        agent profiles (current versions)
//	GET    /admin/v1/profiles/{name}                 one profile (?history=1: every version)
//	PUT    /admin/v1/profiles/{name}                 set it (body: the profile as JSON; ?note=)
//	DELETE /admin/v1/profiles/{name}                 delete it (its members are in no profile any more)
//	GET    /admin/v1/approvals                       approval requests (?status=pending)
//	POST   /admin/v1/approvals/{id}/approve          let that exact call run once
//	POST   /admin/v1/approvals/{id}/deny             refuse it (body: {"reason": "…"})
//	GET    /admin/v1/audit                           audit records, newest first, a page at a time (?connector= &tool= &agent= &subject= &session= &conversation= &user= &decision= &kind= &since= &until= &after= &limit= &cursor=)
//	GET    /admin/v1/audit/verify                    check the hash chain
//	GET    /admin/v1/metrics                         airlock's counters (JSON): rate-limit waits and refusals, retries, breaker opens, Redis fallbacks
//	GET    /admin/v1/admins                          admin tokens: name, role, created, last use, expiry (owner)
//	PUT    /admin/v1/admins/{name}/role              change an admin's role (owner; body: {"role": "approver"})
//	POST   /admin/v1/admins                          issue an admin token, shown once (owner; body: {"name": "bob", "role": "viewer", "ttl": "720h"})
//	DELETE /admin/v1/admins/{name}                   revoke an admin token (owner)
//	GET    /admin/v1/agents                          agent tokens: name, subject, created, last use, expiry
//	POST   /admin/v1/agents                          issue an agent token, shown once (owner; body: {"name": "bot", "subject": "acme", "ttl": "720h"})
//	DELETE /admin/v1/agents/{name}                   revoke an agent token (owner)
//	GET    /admin/v1/secrets                         names in the built-in secret store, never values (granter)
//	PUT    /admin/v1/secrets/{name}                  set or replace a secret (owner; body: {"value": "…"}; write-only)
//	GET    /admin/v1/connections                     connected accounts: status, last refresh error, never a token
//	POST   /admin/v1/connections/{connector}/connect start connecting an account (granter; body: {"subject": "alice"}): the authorization URL to open
//	DELETE /admin/v1/connections/{connector}/{slot}/{subject}  disconnect it: its tokens are deleted (granter)
//
// Bodies follow one convention (views.go): snake_case names, manifests, grants and arguments
// as JSON objects, no zero dates. Errors are {"error": "…"} with a 4xx or 5xx status; a missing, wrong or revoked token gets
// 401 and nothing else, an expired one 401 saying so; a role that does not allow the route
// gets 403 naming the role it needs, and the refusal is recorded in the audit trail.
func (a *Admin) Handler(tokens TokenVerifier) http.Handler {
	mux := http.NewServeMux()
	for pattern, h := range a.routes() {
		mux.HandleFunc(pattern, h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer") // the scheme is case-insensitive (RFC 9110)
		c, valid, err := Caller{}, false, error(nil)
		if ok {
			c, valid, err = tokens.Verify(strings.TrimSpace(token))
		}
		if errors.Is(err, store.ErrExpired) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="airlock-admin", error="invalid_token", error_description="the token has expired"`)
			writeErr(w, http.StatusUnauthorized, "your admin token has expired: ask an owner for a new one "+
				"(airlock admin revoke NAME, then airlock admin add NAME --role ROLE --ttl 720h)")
			return
		}
		if err != nil {
			a.logger.Error("admin token store", "err", err)
			writeErr(w, http.StatusServiceUnavailable, "the admin token store cannot be read")
			return
		}
		if !valid {
			w.Header().Set("WWW-Authenticate", `Bearer realm="airlock-admin"`)
			writeErr(w, http.StatusUnauthorized, "an admin token is required: an owner creates one with `airlock admin add NAME --role ROLE`")
			return
		}
		if _, pattern := mux.Handler(r); pattern != "" && !a.authorize(w, r, c, pattern) {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		mux.ServeHTTP(w, r.WithContext(withAdmin(r.Context(), c.Name)))
	})
}

// routes are the admin API's handlers by pattern; each pattern has its line in routeRoles.
func (a *Admin) routes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"GET /admin/v1/connectors":                                   a.apiConnectors,
		"GET /admin/v1/connectors/{name}/review":                     a.apiReview,
		"POST /admin/v1/connectors/{name}/versions/{version}/reject": a.apiRejectUpgrade,
		"GET /admin/v1/grants":                                       a.apiGrants,
		"GET /admin/v1/grants/{connector}/history":                   a.apiGrantHistory,
		"PUT /admin/v1/grants/{connector}":                           a.apiPutGrant,
		"DELETE /admin/v1/grants/{connector}":                        a.apiRevoke,
		"GET /admin/v1/profiles":                                     a.apiProfiles,
		"GET /admin/v1/profiles/{name}":                              a.apiProfile,
		"PUT /admin/v1/profiles/{name}":                              a.apiPutProfile,
		"DELETE /admin/v1/profiles/{name}":                           a.apiDeleteProfile,
		"GET /admin/v1/approvals":                                    a.apiApprovals,
		"POST /admin/v1/approvals/{id}/approve":                      a.apiDecide,
		"POST /admin/v1/approvals/{id}/deny":                         a.apiDecide,
		"GET /admin/v1/audit":                                        a.apiAudit,
		"GET /admin/v1/audit/verify":                                 a.apiVerify,
		"GET /admin/v1/metrics":                                      serveMetrics,
		"GET /admin/v1/admins":                                       a.apiAdmins,
		"PUT /admin/v1/admins/{name}/role":                           a.apiSetRole,
		"POST /admin/v1/admins":                                      a.apiIssueToken,
		"DELETE /admin/v1/admins/{name}":                             a.apiRevokeToken,
		"GET /admin/v1/agents":                                       a.apiTokens,
		"POST /admin/v1/agents":                                      a.apiIssueToken,
		"DELETE /admin/v1/agents/{name}":                             a.apiRevokeToken,
		"GET /admin/v1/secrets":                                      a.apiSecrets,
		"PUT /admin/v1/secrets/{name}":                               a.apiSetSecret,
		"GET /admin/v1/connections":                                  a.apiAccounts,
		"POST /admin/v1/connections/{connector}/connect":             a.apiConnect,
		"DELETE /admin/v1/connections/{connector}/{slot}/{subject}":  a.apiDisconnect,
	}
}

// serveMetrics writes airlock's own expvar counters (airlock_*) as one JSON object. expvar's
// process-wide "cmdline" and "memstats" are never served: the command line may hold a DSN
// with its password (--state postgres://user:password@…), and memory statistics are nobody's
// business outside the host.
func serveMetrics(w http.ResponseWriter, _ *http.Request) {
	out := map[string]json.RawMessage{}
	expvar.Do(func(kv expvar.KeyValue) {
		if strings.HasPrefix(kv.Key, "airlock_") {
			out[kv.Key] = json.RawMessage(secret.RedactURLs(kv.Value.String()))
		}
	})
	writeJSON(w, http.StatusOK, out)
}

func (a *Admin) apiConnectors(w http.ResponseWriter, r *http.Request) {
	list, err := a.st.ListInstalled(r.Context())
	reply(w, ConnectorViews(list), err)
}

func (a *Admin) apiReview(w http.ResponseWriter, r *http.Request) {
	asks, diff, err := a.Review(r.Context(), r.PathValue("name"), r.URL.Query().Get("version"))
	reply(w, map[string]any{"asks": asks, "changes": diff}, err)
}

func (a *Admin) apiGrants(w http.ResponseWriter, r *http.Request) {
	list, err := a.st.ListGrants(r.Context())
	reply(w, GrantViews(list), err)
}

func (a *Admin) apiGrantHistory(w http.ResponseWriter, r *http.Request) {
	list, err := a.st.GrantHistory(r.Context(), r.PathValue("connector"))
	reply(w, GrantViews(list), err)
}

func (a *Admin) apiPutGrant(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeErr(w, http.StatusRequestEntityTooLarge, "the grant is larger than 1 MiB")
		return
	}
	g, err := manifest.ParseGrant("grant.json", body)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	rec, err := a.Grant(r.Context(), GrantRequest{Connector: r.PathValue("connector"), Version: r.URL.Query().Get("version"),
		Grant: g, Admin: adminFrom(r.Context()), Note: r.URL.Query().Get("note")})
	reply(w, grantView(rec), err)
}

func (a *Admin) apiRevoke(w http.ResponseWriter, r *http.Request) {
	var tools []string
	if t := r.URL.Query().Get("tools"); t != "" {
		tools = strings.Split(t, ",")
	}
	err := a.Revoke(r.Context(), r.PathValue("connector"), tools, adminFrom(r.Context()), r.URL.Query().Get("note"))
	reply(w, map[string]any{"revoked": r.PathValue("connector"), "tools": tools}, err)
}

func (a *Admin) apiApprovals(w http.ResponseWriter, r *http.Request) {
	list, err := a.Approvals(r.Context(), r.URL.Query().Get("status"))
	reply(w, ApprovalViews(list), err)
}

func (a *Admin) apiDecide(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var ap store.Approval
	var err error
	if strings.HasSuffix(r.URL.Path, "/approve") {
		ap, err = a.Approve(r.Context(), id, adminFrom(r.Context()))
	} else {
		var body struct {
			Reason string `json:"reason"`
		}
		if r.ContentLength != 0 {
			if derr := json.NewDecoder(r.Body).Decode(&body); derr != nil {
				writeErr(w, http.StatusBadRequest, "the body must be JSON such as {\"reason\": \"not during the freeze\"}")
				return
			}
		}
		ap, err = a.Deny(r.Context(), id, adminFrom(r.Context()), body.Reason)
	}
	reply(w, NewApprovalView(ap), err)
}

func (a *Admin) apiAudit(w http.ResponseWriter, r *http.Request) {
	f, err := ParseAuditFilter(r.URL.Query().Get, nil)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultAuditPage
	case limit > MaxAuditPage:
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("limit %d: a page holds at most %d records; follow next_cursor for more", limit, MaxAuditPage))
		return
	}
	f.NewestFirst, f.Limit = true, limit+1 // one more tells whether there is a next page
	recs, err := a.st.QueryAudit(r.Context(), f)
	reply(w, NewAuditPage(recs, limit), err)
}

func (a *Admin) apiVerify(w http.ResponseWriter, r *http.Request) {
	n, err := audit.VerifyStore(r.Context(), a.st) // keys, MACs and checkpoints when a trail is attached
	var br *store.AuditBreak
	if errors.As(err, &br) {
		writeJSON(w, http.StatusConflict, map[string]any{"ok": false, "checked": n, "first_bad_seq": br.Seq, "reason": br.Reason})
		return
	}
	reply(w, map[string]any{"ok": true, "checked": n}, err)
}

// ParseAuditFilter reads an audit filter from named values (query parameters or flags):
// connector, tool, agent, subject, session, conversation, user (the who-asked labels of
// calls), decision, kind, since, until (RFC 3339 or a duration back from now such as 1h), after
// (a sequence number), cursor (an audit page's next_cursor: records before that page's last)
// and limit.
func ParseAuditFilter(get func(string) string, now func() time.Time) (store.AuditFilter, error) {
	if now == nil {
		now = time.Now
	}
	f := store.AuditFilter{Connector: get("connector"), Tool: get("tool"), Agent: get("agent"), Subject: get("subject"),
		// The labels are looked up as the host records them (host.Label).
		Session: host.Label(get("session")), Conversation: host.Label(get("conversation")), User: host.Label(get("user")),
		Decision: get("decision"), Kind: get("kind")}
	parseTime := func(name string) (time.Time, error) {
		v := get(name)
		if v == "" {
			return time.Time{}, nil
		}
		if d, err := time.ParseDuration(v); err == nil {
			return now().Add(-d), nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s %q: give an RFC 3339 time (2026-11-23T10:00:00Z) or a duration back from now (90m)", name, v)
		}
		return t, nil
	}
	var err error
	if f.Since, err = parseTime("since"); err != nil {
		return f, err
	}
	if f.Until, err = parseTime("until"); err != nil {
		return f, err
	}
	for _, n := range []struct {
		name string
		dst  *int64
	}{{"after", &f.AfterSeq}} {
		if v := get(n.name); v != "" {
			if *n.dst, err = strconv.ParseInt(v, 10, 64); err != nil || *n.dst < 0 {
				return f, fmt.Errorf("%s %q: give a record sequence number", n.name, v)
			}
		}
	}
	if v := get("cursor"); v != "" {
		if f.BeforeSeq, err = parseAuditCursor(v); err != nil {
			return f, err
		}
	}
	if v := get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 0 {
			return f, fmt.Errorf("limit %q: give a number of records", v)
		}
	}
	switch f.Decision {
	case "", "ok", "error", "denied", "unknown":
	default:
		return f, fmt.Errorf("decision %q: use ok, error, denied or unknown (calls a crash interrupted)", f.Decision)
	}
	return f, nil
}

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrConflict):
		writeErr(w, http.StatusConflict, err.Error())
	default:
		writeErr(w, http.StatusBadRequest, err.Error())
	}
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": secret.RedactURLs(msg)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
