package admin_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
)

// wantRefused checks that a call was refused before it ran, with a reason an agent can act on.
func wantRefused(t *testing.T, res *host.Result, code string, reason ...string) {
	t.Helper()
	if res.OK {
		t.Fatalf("%s ran (data %s), want it refused with %s", res.Meta.Tool, res.Data, code)
	}
	if res.Error.Code != code {
		t.Fatalf("%s: error %+v, want code %s", res.Meta.Tool, res.Error, code)
	}
	for _, r := range reason {
		if !strings.Contains(res.Error.Message, r) {
			t.Errorf("%s: message %q does not say %q", res.Meta.Tool, res.Error.Message, r)
		}
	}
}

// Tools and scopes outside the grant are neither listed nor callable.
func TestGrantIntersectionToolsAndScopes(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	g := e.slackGrant()
	g.Tools = []string{"list_channels", "post_message"}      // channel_history: tool not granted
	g.Scopes = []string{"channels:read", "channels:history"} // post_message: scope chat:write not granted
	e.grant(t, "", g)

	if diff := cmp.Diff([]string{"slack.list_channels"}, e.toolNames()); diff != "" {
		t.Errorf("Tools() mismatch (-want +got):\n%s", diff)
	}
	if res := e.call("slack.list_channels", `{"limit":5}`); !res.OK {
		t.Fatalf("the granted tool failed: %+v", res.Error)
	}
	wantRefused(t, e.call("slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`), abi.CodeNotGranted, "chat:write", "admin")
	wantRefused(t, e.call("slack.channel_history", `{"channel":"C0GENERAL"}`), abi.CodeNotGranted, "not granted", "admin")
	wantRefused(t, e.call("slack.delete_everything", `{}`), abi.CodeUnknownTool, "slack.list_channels")
	if n := e.slackCalls("chat.postMessage") + e.slackCalls("conversations.history"); n != 0 {
		t.Errorf("the upstream received %d requests of tools outside the grant", n)
	}

	// A grant naming something the manifest does not declare is refused, and changes nothing.
	for _, bad := range []*manifest.Grant{
		{Connector: "slack", Tools: []string{"admin_grant"}},
		{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"admin"}},
		{Connector: "slack", Tools: []string{"*"}, Hosts: []string{"evil.example"}},
		{Connector: "slack", Tools: []string{"*"}, Limits: manifest.Limits{TimeoutMS: 10_000_000}},
	} {
		if _, err := e.a.Grant(context.Background(), admin.GrantRequest{Connector: "slack", Grant: bad, Admin: "alice"}); err == nil {
			t.Errorf("Grant(%+v) = nil error, want it refused", bad)
		}
	}
	hist, err := e.st.GrantHistory(context.Background(), "slack")
	if err != nil || len(hist) != 1 {
		t.Errorf("grant history after refused grants = %d versions (%v), want 1", len(hist), err)
	}
	if diff := cmp.Diff([]string{"slack.list_channels"}, e.toolNames()); diff != "" {
		t.Errorf("Tools() after refused grants mismatch (-want +got):\n%s", diff)
	}
}

// Hosts outside the grant are not reachable, and neither is the admin API on loopback.
func TestGrantIntersectionHosts(t *testing.T) {
	e := newEnv(t, envOptions{resolver: loopbackDNS{}})
	var apiHits, otherHits, adminHits atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { apiHits.Add(1); w.Write([]byte("ok")) }))
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHits.Add(1) }))
	adminAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { adminHits.Add(1) }))
	t.Cleanup(api.Close)
	t.Cleanup(other.Close)
	t.Cleanup(adminAPI.Close)

	_, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	e.install(t, "hostile", "0.0.1", store.InstalledActive, manifestYAML(t, "host/testdata/hostile.yaml", wasm, nil), wasm)
	e.grant(t, "", &manifest.Grant{Connector: "hostile", Tools: []string{"fetch"}, Scopes: []string{"test"},
		Hosts: []string{"api.example.test", "rebind.example.test"}, Upstreams: map[string]string{"https://api.example.test": api.URL}})

	fetch := func(method, url string) abi.HTTPResponse {
		t.Helper()
		args, _ := json.Marshal(abi.HTTPRequest{Method: method, URL: url, Body: []byte(`{"connector":"hostile","tools":["*"]}`)})
		res := e.call("hostile.fetch", string(args))
		if !res.OK {
			t.Fatalf("fetch %s: %+v", url, res.Error)
		}
		var resp abi.HTTPResponse
		if err := json.Unmarshal(res.Data, &resp); err != nil {
			t.Fatalf("fetch %s returned %s", url, res.Data)
		}
		return resp
	}
	if resp := fetch("GET", "https://api.example.test/x"); resp.Error != nil || resp.Status != 200 {
		t.Fatalf("the granted host: %+v", resp)
	}
	adminURL := strings.TrimPrefix(adminAPI.URL, "http://")
	_, port, _ := strings.Cut(adminURL, ":")
	for _, url := range []string{
		"https://other.example.test/x", // declared by the manifest, not granted
		"https://forbidden.example.test/x",
		"http://" + adminURL + "/admin/v1/grants/hostile",
		"http://localhost:" + port + "/admin/v1/grants/hostile",
		"http://[::1]:" + port + "/admin/v1/grants/hostile",
		"http://0x7f000001:" + port + "/admin/v1/grants/hostile",
		"http://rebind.example.test/admin/v1/grants/hostile",                // granted host, resolves to loopback
		"http://rebind.example.test:" + port + "/admin/v1/grants/hostile",   // and on the admin port
		"https://api.example.test@" + adminURL + "/admin/v1/grants/hostile", // userinfo trick
		"https://api.example.test:" + port + "/admin/v1/grants/hostile",     // granted host, other port
	} {
		for _, method := range []string{"GET", "PUT", "DELETE"} {
			resp := fetch(method, url)
			if resp.Error == nil || resp.Status != 0 || resp.Error.Code != abi.CodeEgressDenied && resp.Error.Code != abi.CodeBadRequest {
				t.Errorf("%s %s = %+v, want egress_denied (or bad_request for a malformed address)", method, url, resp)
			}
		}
	}
	if n, o := adminHits.Load(), otherHits.Load(); n != 0 || o != 0 {
		t.Errorf("requests outside the grant arrived: admin API %d, other.example.test %d", n, o)
	}
	cur, err := e.st.CurrentGrant(context.Background(), "hostile")
	if err != nil || cur.Version != 1 {
		t.Errorf("the grant changed: %+v, %v", cur, err)
	}
}

type loopbackDNS struct{}

// LookupNetIP resolves rebind.example.test to loopback, as a DNS-rebinding attacker would.
func (loopbackDNS) LookupNetIP(_ context.Context, _, name string) ([]netip.Addr, error) {
	if name == "rebind.example.test" {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, fmt.Errorf("no such host %s", name)
}

// Database functions outside the grant are neither listed nor callable.
func TestGrantIntersectionDatabaseFunctions(t *testing.T) {
	e := newEnv(t, envOptions{})
	path := filepath.Join(t.TempDir(), "crm.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, plan TEXT NOT NULL DEFAULT 'free')`,
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, total_cents INTEGER NOT NULL, status TEXT NOT NULL)`,
		`INSERT INTO customers (id, name, email) VALUES (1, 'Ada Lovelace', 'ada@example.com')`,
		`INSERT INTO orders (id, customer_id, total_cents, status) VALUES (10, 1, 1250, 'paid')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	e.setSecret("CRM_DB_DSN", "sqlite:"+path)
	m, wasm := hosttest.Connector(t, "./plugins/dbfunc", "manifests/dbfunc.yaml")
	e.install(t, m.Name, m.Version, store.InstalledActive, manifestYAML(t, "manifests/dbfunc.yaml", wasm, nil), wasm)
	e.grant(t, "", &manifest.Grant{Connector: "crm_db", Tools: []string{"*"},
		Database: &manifest.DatabaseGrant{DSN: "env:CRM_DB_DSN", Functions: []string{"find_customer", "set_order_status"}}})

	// set_order_status writes, and the grant does not allow writes.
	if diff := cmp.Diff([]string{"crm_db.find_customer"}, e.toolNames()); diff != "" {
		t.Errorf("Tools() mismatch (-want +got):\n%s", diff)
	}
	if res := e.call("crm_db.find_customer", `{"email":"ada@example.com"}`); !res.OK || !strings.Contains(string(res.Data), "Ada") {
		t.Fatalf("the granted function: %+v %s", res.Error, res.Data)
	}
	wantRefused(t, e.call("crm_db.customer_orders", `{"customer_id":1}`), abi.CodeNotGranted, "customer_orders", "not granted")
	wantRefused(t, e.call("crm_db.set_order_status", `{"order_id":10,"status":"cancelled"}`), abi.CodeNotGranted, "allow_writes")
	var status string
	if err := db.QueryRow(`SELECT status FROM orders WHERE id = 10`).Scan(&status); err != nil || status != "paid" {
		t.Errorf("order 10 status = %q (%v), want it unchanged", status, err)
	}
}

// A partial revoke while an upgrade is pending narrows what the active version serves, and
// is not blocked by what the pending version declares.
func TestRevokeToolsWhileUpgradePending(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	e.grant(t, "", e.slackGrant())
	// v2 adds a tool.
	v2 := e.slackYAML(t, func(s string) string {
		s = strings.Replace(s, "version: 1.0.0", "version: 2.0.0", 1)
		return s + `
  - name: add_reaction
    description: Add an emoji reaction to a message.
    scopes: [reactions:write]
    input_schema: {type: object}
`
	})
	e.install(t, "slack", "2.0.0", store.InstalledPending, v2, e.slackW)

	if err := e.a.Revoke(context.Background(), "slack", []string{"post_message"}, "alice", "incident 42"); err != nil {
		t.Fatalf("Revoke(post_message) with an upgrade pending: %v", err)
	}
	if slices.Contains(e.toolNames(), "slack.post_message") {
		t.Errorf("post_message is still listed after it was revoked: %v", e.toolNames())
	}
	wantRefused(t, e.call("slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`), abi.CodeNotGranted)
	if res := e.call("slack.list_channels", `{}`); !res.OK || res.Meta.Version != "1.0.0" {
		t.Errorf("list_channels after the revoke = %+v (version %s), want v1 serving", res.Error, res.Meta.Version)
	}
	// The pending version stays pending, and its new tool is not granted by the revoke.
	in, err := e.st.GetInstalled(context.Background(), "slack", "2.0.0")
	if err != nil || in.Status != store.InstalledPending {
		t.Errorf("v2 = %q (%v), want still pending", in.Status, err)
	}
	cur, _ := e.st.CurrentGrant(context.Background(), "slack")
	var g manifest.Grant
	json.Unmarshal(cur.Grant, &g)
	if slices.Contains(g.Tools, "add_reaction") || slices.Contains(g.Tools, "post_message") || slices.Contains(g.Tools, "*") {
		t.Errorf("grant after revoke = %v, want the v1 tools without post_message", g.Tools)
	}
}
