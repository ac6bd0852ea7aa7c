package host_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/fakesalesforce"
)

// sfCanary is the Salesforce access token: it must reach the fake and nothing else.
const sfCanary = "00DCANARY!AQ8AQSfTokenCanary9x7"

const sfInstance = "https://acme.my.salesforce.com"

// sfHost loads the Salesforce connector against a fake Salesforce. Until the host's OAuth slots
// expose connection metadata, the slot is a static bearer filled with sfCanary and the instance
// URL comes from the instance_url setting (the documented static-token path).
func sfHost(t *testing.T, config map[string]string) (*host.Host, *hosttest.Recorder, *fakesalesforce.Server) {
	t.Helper()
	fake := fakesalesforce.New()
	fake.AddToken(sfCanary)
	u, stop := fake.Start()
	t.Cleanup(stop)
	m, wasm := hosttest.Connector(t, "./plugins/salesforce", "manifests/salesforce.yaml")
	for i := range m.Credentials {
		if m.Credentials[i].Name == "salesforce" {
			m.Credentials[i].Kind, m.Credentials[i].OAuth = manifest.KindBearer, nil
		}
	}
	src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return sfCanary, n == "SF_TOKEN" }}}
	h, rec := hosttest.New(t, host.Config{Secrets: src})
	cfg := map[string]string{"instance_url": sfInstance}
	for k, v := range config {
		cfg[k] = v
	}
	g := &manifest.Grant{Connector: "salesforce", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials:    manifest.SecretRefs(map[string]string{"salesforce": "env:SF_TOKEN"}),
		Config:         cfg,
		PrivateTargets: []string{"127.0.0.1/32"},
		Upstreams:      map[string]string{sfInstance: u}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec, fake
}

// sfLeaks fails the test when the access token, in any common form, appears in a result, the
// audit log or the logs.
func sfLeaks(t *testing.T, rec *hosttest.Recorder, results ...*host.Result) {
	t.Helper()
	forms := []string{sfCanary, base64.StdEncoding.EncodeToString([]byte(sfCanary)), url.QueryEscape(sfCanary)}
	events, _ := json.Marshal(rec.Audit.Events())
	logs := rec.Logs()
	for _, f := range forms {
		for i, r := range results {
			if b, _ := json.Marshal(r); strings.Contains(string(b), f) {
				t.Errorf("the token leaked into result %d", i)
			}
		}
		if strings.Contains(string(events), f) {
			t.Error("the token leaked into the audit log")
		}
		if strings.Contains(logs, f) {
			t.Error("the token leaked into the logs")
		}
	}
	if strings.Contains(logs, "secret value in a tool result was redacted") {
		t.Error("a tool result held the token (redacted on the way out)")
	}
}

func sfCall(t *testing.T, h *host.Host, tool string, args any) *host.Result {
	t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	return h.Call(context.Background(), host.CallRequest{Tool: "salesforce." + tool, Arguments: b, Agent: "test-agent"})
}

func TestSalesforceEndToEnd(t *testing.T) {
	h, rec, fake := sfHost(t, nil)
	var results []*host.Result
	ok := func(tool string, args any, out any) {
		t.Helper()
		res := sfCall(t, h, tool, args)
		results = append(results, res)
		if !res.OK {
			t.Fatalf("%s: %+v", tool, res.Error)
		}
		if err := json.Unmarshal(res.Data, out); err != nil {
			t.Fatalf("%s returned %s: %v", tool, res.Data, err)
		}
	}

	var q struct {
		Records []map[string]any
		Count   int
		More    bool
	}
	ok("soql_query", map[string]any{"object": "Opportunity", "fields": []string{"Id", "Name", "StageName", "Account.Name"},
		"where":    []any{map[string]any{"field": "IsClosed", "op": "=", "value": false}},
		"order_by": []any{map[string]any{"field": "Amount", "direction": "DESC"}}}, &q)
	if q.Count != 2 || q.More || q.Records[0]["Id"] != fakesalesforce.OppNegotiation {
		t.Errorf("open opportunities = %+v", q)
	}

	var got struct{ Record map[string]any }
	ok("get_record", map[string]any{"object": "Account", "id": fakesalesforce.Acme, "fields": []string{"Name", "Industry"}}, &got)
	if got.Record["Name"] != "Acme Corporation" {
		t.Errorf("get_record = %v", got.Record)
	}

	var created struct{ ID string }
	ok("create_record", map[string]any{"object": "Contact", "fields": map[string]any{"LastName": "Runner", "AccountId": fakesalesforce.Acme}}, &created)
	var updated struct{ Updated bool }
	ok("update_record", map[string]any{"object": "Contact", "id": created.ID, "fields": map[string]any{"Title": "Sprinter"}}, &updated)
	if r, _ := fake.Record("Contact", created.ID); r["Title"] != "Sprinter" || r["AccountId"] != fakesalesforce.Acme {
		t.Errorf("contact in Salesforce = %v", r)
	}

	var note struct{ ID string }
	ok("add_note", map[string]any{"parent_id": fakesalesforce.Acme, "title": "Call", "body": "Wants anvils."}, &note)
	if r, _ := fake.Record("Note", note.ID); r["ParentId"] != fakesalesforce.Acme {
		t.Errorf("note in Salesforce = %v", r)
	}

	// Every API request carried the injected token; the plugin never set Authorization itself.
	for _, r := range fake.Requests() {
		if r.Header.Get("Authorization") != "Bearer "+sfCanary {
			t.Errorf("%s %s reached Salesforce with Authorization %q", r.Method, r.Path, r.Header.Get("Authorization"))
		}
	}
	if fake.Writes() != 3 {
		t.Errorf("writes = %d, want 3 (create, update, note)", fake.Writes())
	}

	// The audit log has one request event per outbound request, injected, without query strings.
	var requests int
	for _, e := range rec.Audit.Events() {
		if e.Kind == "request" {
			requests++
			if e.Credential != "salesforce" || !e.Injected || strings.Contains(e.URL, "?") {
				t.Errorf("request event = %+v", e)
			}
		}
	}
	if requests != len(fake.Requests()) {
		t.Errorf("audit has %d request events, the fake saw %d requests", requests, len(fake.Requests()))
	}
	sfLeaks(t, rec, results...)
}

// Injection attempts through the host stay data.
func TestSalesforceInjectionThroughHost(t *testing.T) {
	h, rec, fake := sfHost(t, nil)
	for _, attack := range []string{"' OR Name != '", `\' OR Name != \'`, "x'\nOR Id != null OR Name = 'y"} {
		res := sfCall(t, h, "soql_query", map[string]any{"object": "Account", "fields": []string{"Id", "Name"},
			"where": []any{map[string]any{"field": "Name", "op": "=", "value": attack}}})
		if !res.OK {
			t.Fatalf("%q: %+v", attack, res.Error)
		}
		var out struct{ Count int }
		json.Unmarshal(res.Data, &out)
		if out.Count != 0 {
			t.Errorf("Name = %q matched %d accounts: the value was read as SOQL", attack, out.Count)
		}
	}
	// Identifiers outside the strict pattern never reach the plugin (schema) or Salesforce.
	before := len(fake.Requests())
	for _, args := range []map[string]any{
		{"object": "Account", "fields": []string{"Id FROM User WHERE Id != null"}},
		{"object": "User", "fields": []string{"Id"}},
		{"object": "Account", "fields": []string{"Id"}, "where": []any{map[string]any{"field": "Name", "op": "OR", "value": "x"}}},
	} {
		res := sfCall(t, h, "soql_query", args)
		if res.OK || res.Error.Category != abi.Correctable {
			t.Errorf("%v = %+v, want a correctable refusal", args, res.Error)
		}
	}
	if n := len(fake.Requests()) - before; n != 0 {
		t.Errorf("%d refused queries reached Salesforce", n)
	}
	sfLeaks(t, rec)
}

func TestSalesforcePagingThroughHost(t *testing.T) {
	h, _, fake := sfHost(t, nil)
	fake.SetBatchSize(3)
	for i := range 20 {
		fake.Add("Account", map[string]any{"Name": fmt.Sprintf("Paged %02d", i)})
	}
	res := sfCall(t, h, "soql_query", map[string]any{"object": "Account", "fields": []string{"Name"}, "limit": 10,
		"where": []any{map[string]any{"field": "Name", "op": "LIKE", "value": "Paged%"}}, "order_by": []any{map[string]any{"field": "Name"}}})
	if !res.OK {
		t.Fatalf("%+v", res.Error)
	}
	var out struct {
		Records []map[string]any
		Count   int
		More    bool
	}
	json.Unmarshal(res.Data, &out)
	if out.Count != 10 || !out.More || out.Records[9]["Name"] != "Paged 09" {
		t.Errorf("count %d, more %v, last %v; want 10 records up to Paged 09 and more", out.Count, out.More, out.Records[len(out.Records)-1])
	}
	if res.Meta.Requests != 4 { // 11 rows asked for, 3 per page
		t.Errorf("requests = %d, want 4 pages", res.Meta.Requests)
	}
}

func TestSalesforceErrorsThroughHost(t *testing.T) {
	h, rec, fake := sfHost(t, nil)
	tests := []struct {
		name     string
		tool     string
		args     map[string]any
		setup    func()
		code     string
		category abi.Category
		contains string
	}{
		{"invalid field", "soql_query", map[string]any{"object": "Account", "fields": []string{"Id", "Revenue__c"}},
			nil, "invalid_field", abi.Correctable, "Revenue__c"},
		{"not found", "get_record", map[string]any{"object": "Case", "id": "500D00000000042AAA"},
			nil, "not_found", abi.Correctable, "500D00000000042AAA"},
		{"required field", "create_record", map[string]any{"object": "Opportunity", "fields": map[string]any{"Name": "x"}},
			nil, "required_field_missing", abi.Correctable, "StageName"},
		{"session revoked", "get_record", map[string]any{"object": "Account", "id": fakesalesforce.Acme},
			func() { fake.RevokeToken(sfCanary) }, "credential_rejected", abi.Fatal, "reconnect"},
	}
	var results []*host.Result
	for _, tt := range tests {
		if tt.setup != nil {
			tt.setup()
		}
		res := sfCall(t, h, tt.tool, tt.args)
		results = append(results, res)
		if res.OK || res.Error.Code != tt.code || res.Error.Category != tt.category || !strings.Contains(res.Error.Message, tt.contains) {
			t.Errorf("%s: %+v, want %s/%s containing %q", tt.name, res.Error, tt.code, tt.category, tt.contains)
		}
	}
	if fake.Writes() != 0 {
		t.Errorf("failed calls wrote %d records", fake.Writes())
	}
	sfLeaks(t, rec, results...)
}

// An exhausted daily quota is reported as retryable later and is not retried by the host.
func TestSalesforceQuotaExhausted(t *testing.T) {
	h, rec, fake := sfHost(t, nil)
	fake.SetAPILimit(50)
	fake.SetAPIUsage(50)
	before := len(fake.Requests())
	res := sfCall(t, h, "get_record", map[string]any{"object": "Account", "id": fakesalesforce.Acme})
	// The host recognises the exhausted quota itself (and pauses the connection); the
	// connector's own mapping says the same when the host passes the answer through.
	if res.OK || res.Error.Category != abi.Retryable ||
		!(strings.Contains(res.Error.Message, "quota") || strings.Contains(res.Error.Message, "API request allowance")) {
		t.Fatalf("result = %+v, want a retryable error about the org's API quota", res.Error)
	}
	if n := len(fake.Requests()) - before; n != 1 {
		t.Errorf("Salesforce saw %d requests, want 1: REQUEST_LIMIT_EXCEEDED must not be retried", n)
	}
	sfLeaks(t, rec, res)
}

func TestSalesforceOpportunityStage(t *testing.T) {
	h, rec, fake := sfHost(t, nil)

	// Closed deals stay closed: only the read reaches Salesforce.
	before := len(fake.Requests())
	res := sfCall(t, h, "update_opportunity_stage", map[string]any{"id": fakesalesforce.OppClosedWon, "stage": "Negotiation/Review"})
	if res.OK || res.Error.Code != "invalid_transition" || res.Error.Category != abi.Correctable {
		t.Errorf("moving a Closed Won deal = %+v, want a correctable invalid_transition", res.Error)
	}
	if reqs := fake.Requests()[before:]; len(reqs) != 1 || reqs[0].Method != "GET" {
		t.Errorf("Salesforce saw %d requests, want only the read", len(reqs))
	}

	// A valid move: read, then write guarded by If-Unmodified-Since and an idempotency key.
	before = len(fake.Requests())
	res2 := sfCall(t, h, "update_opportunity_stage", map[string]any{"id": fakesalesforce.OppProspecting, "stage": "Proposal/Price Quote"})
	if !res2.OK {
		t.Fatalf("valid transition: %+v", res2.Error)
	}
	var out struct {
		PreviousStage string `json:"previous_stage"`
		Stage         string
		Changed       bool
	}
	json.Unmarshal(res2.Data, &out)
	if out.PreviousStage != "Prospecting" || out.Stage != "Proposal/Price Quote" || !out.Changed {
		t.Errorf("result = %s", res2.Data)
	}
	reqs := fake.Requests()[before:]
	if len(reqs) != 2 || reqs[0].Method != "GET" || reqs[1].Method != "PATCH" {
		t.Fatalf("requests = %d, want GET then PATCH", len(reqs))
	}
	if reqs[1].Header.Get("If-Unmodified-Since") == "" || reqs[1].Header.Get("Idempotency-Key") == "" {
		t.Errorf("PATCH headers %v lack If-Unmodified-Since or Idempotency-Key", reqs[1].Header)
	}
	if r, _ := fake.Record("Opportunity", fakesalesforce.OppProspecting); r["StageName"] != "Proposal/Price Quote" {
		t.Errorf("stage in Salesforce = %v", r["StageName"])
	}
	sfLeaks(t, rec, res, res2)
}
