package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/internal/fakesalesforce"
	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdktest"
)

const (
	token    = "00DCANARY!sf-token-7f3a9"
	instance = "https://acme.my.salesforce.com"
)

// newHost returns a fake airlock host whose upstream is a fake Salesforce, with the access token
// filling the salesforce slot as the host injects it and the connection's instance URL set.
func newHost(t *testing.T) (*pdktest.Host, *fakesalesforce.Server) {
	t.Helper()
	s := fakesalesforce.New()
	s.AddToken(token)
	h := pdktest.New(t)
	h.Serve(s)
	h.SetCredential(credential, pdktest.Bearer(token))
	h.SetConfig(map[string]string{connectionInstanceKey: instance})
	return h, s
}

// soqlOf returns the SOQL of a query request the connector sent.
func soqlOf(t *testing.T, r pdk.HTTPRequest) string {
	t.Helper()
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("q")
}

func checkRequest(t *testing.T, r pdk.HTTPRequest, method, prefix string) {
	t.Helper()
	if r.Method != method || !strings.HasPrefix(r.URL, prefix) || r.Credential != credential || len(r.Headers["Authorization"]) != 0 {
		t.Errorf("request = %s %s (credential %q, headers %v), want %s %s… with the salesforce slot", r.Method, r.URL, r.Credential, r.Headers, method, prefix)
	}
	if strings.Contains(string(r.Body), token) || strings.Contains(r.URL, token) {
		t.Error("the request holds the token: the plugin must never see it")
	}
}

func TestSOQLQuery(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t)
	h.SetInput(map[string]any{
		"object": "account", "fields": []string{"Id", "Name", "AnnualRevenue"},
		"where":    []any{map[string]any{"field": "Industry", "op": "IN", "value": []string{"Energy", "Technology"}}},
		"order_by": []any{map[string]any{"field": "Name", "direction": "DESC"}},
	})
	var got queryResult
	if toolErr := h.CallJSON(soqlQuery, &got); toolErr != nil {
		t.Fatalf("soql_query: %v", toolErr)
	}
	want := queryResult{Object: "Account", Count: 2, Records: []map[string]any{
		{"Id": fakesalesforce.Initech, "Name": "Initech", "AnnualRevenue": 4.5e6},
		{"Id": fakesalesforce.Globex, "Name": "Globex", "AnnualRevenue": 9.8e7},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result mismatch (-want +got):\n%s", diff)
	}
	reqs := h.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	checkRequest(t, reqs[0], "GET", instance+"/services/data/v61.0/query?q=")
	if q := soqlOf(t, reqs[0]); q != "SELECT Id, Name, AnnualRevenue FROM Account WHERE Industry IN ('Energy', 'Technology') ORDER BY Name DESC LIMIT 201" {
		t.Errorf("SOQL = %s", q)
	}
}

func TestSOQLQueryRelationship(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t)
	h.SetInput(map[string]any{"object": "Contact", "fields": []string{"Name", "Account.Name"},
		"where": []any{map[string]any{"field": "Account.Name", "op": "LIKE", "value": "acme%"}}})
	var got queryResult
	if toolErr := h.CallJSON(soqlQuery, &got); toolErr != nil {
		t.Fatalf("soql_query: %v", toolErr)
	}
	want := []map[string]any{{"Name": "Wile E. Coyote", "Account": map[string]any{"Name": "Acme Corporation"}}}
	if diff := cmp.Diff(want, got.Records); diff != "" {
		t.Errorf("records mismatch (-want +got), attributes must be stripped:\n%s", diff)
	}
}

// Injection attempts through values stay data: Salesforce (the fake parses SOQL with its
// escapes) looks for a record with that literal name and finds none — or exactly the one that
// has it.
func TestSOQLInjectionStaysData(t *testing.T) {
	t.Parallel()
	attacks := []string{
		"' OR Name != '",
		`\' OR Name != \'`,
		"x' OR Id != null OR Name = 'y",
		"Acme%' OR Name LIKE '%",
		"a\nOR Name != ''",
		`\`,
		"') OR (Name != '",
	}
	for _, attack := range attacks {
		h, s := newHost(t)
		for _, op := range []string{"=", "LIKE", "IN"} {
			var value any = attack
			if op == "IN" {
				value = []string{attack}
			}
			h.SetInput(map[string]any{"object": "Account", "fields": []string{"Id", "Name"},
				"where": []any{map[string]any{"field": "Name", "op": op, "value": value}}})
			var got queryResult
			if toolErr := h.CallJSON(soqlQuery, &got); toolErr != nil {
				t.Fatalf("%s %q: %v", op, attack, toolErr)
			}
			if got.Count != 0 {
				t.Errorf("Name %s %q matched %d records: the value was read as SOQL", op, attack, got.Count)
			}
		}
		// A record that really has that name is found, and only it.
		id := s.Add("Account", map[string]any{"Name": attack})
		h.SetInput(map[string]any{"object": "Account", "fields": []string{"Id", "Name"},
			"where": []any{map[string]any{"field": "Name", "op": "=", "value": attack}}})
		var got queryResult
		if toolErr := h.CallJSON(soqlQuery, &got); toolErr != nil {
			t.Fatalf("%q: %v", attack, toolErr)
		}
		if got.Count != 1 || got.Records[0]["Id"] != id {
			t.Errorf("Name = %q found %v, want only the record with that name", attack, got.Records)
		}
	}
}

func TestSOQLPaging(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		accounts  int // added to the 3 seed accounts
		limit     any
		wantCount int
		wantMore  bool
		wantReqs  int
		wantLimit string
	}{
		{"within one page", 0, 10, 3, false, 2, "LIMIT 11"}, // batch 2: 3 rows are 2 pages
		{"cap reached, more exist", 10, 5, 5, true, 3, "LIMIT 6"},
		{"exactly the limit", 2, 5, 5, false, 3, "LIMIT 6"},
		{"limit above the row cap", 0, 5000, 3, false, 2, "LIMIT 2001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, s := newHost(t)
			s.SetBatchSize(2)
			for i := range tt.accounts {
				s.Add("Account", map[string]any{"Name": "Extra " + string(rune('A'+i))})
			}
			h.SetInput(map[string]any{"object": "Account", "fields": []string{"Id", "Name"}, "limit": tt.limit,
				"order_by": []any{map[string]any{"field": "Name"}}})
			var got queryResult
			if toolErr := h.CallJSON(soqlQuery, &got); toolErr != nil {
				t.Fatalf("soql_query: %v", toolErr)
			}
			if got.Count != tt.wantCount || len(got.Records) != tt.wantCount || got.More != tt.wantMore {
				t.Errorf("count %d (%d records), more %v; want %d, %v", got.Count, len(got.Records), got.More, tt.wantCount, tt.wantMore)
			}
			reqs := h.Requests()
			if len(reqs) != tt.wantReqs {
				t.Errorf("requests = %d, want %d", len(reqs), tt.wantReqs)
			}
			if q := soqlOf(t, reqs[0]); !strings.HasSuffix(q, tt.wantLimit) {
				t.Errorf("SOQL %s does not end in %s", q, tt.wantLimit)
			}
			for _, r := range reqs[1:] {
				checkRequest(t, r, "GET", instance+"/services/data/v61.0/query/01gD")
			}
			seen := map[any]bool{}
			for _, r := range got.Records {
				if seen[r["Id"]] {
					t.Errorf("record %v returned twice", r["Id"])
				}
				seen[r["Id"]] = true
			}
		})
	}
}

// A nextRecordsUrl that points anywhere else than a query locator is not followed.
func TestSOQLRefusesForeignNextRecordsURL(t *testing.T) {
	t.Parallel()
	for _, next := range []string{"https://evil.example/services/data/v61.0/query/01gD0000000001-2", "/services/data/v61.0/sobjects/User/005", "//evil.example/x"} {
		h := pdktest.New(t)
		h.SetConfig(map[string]string{connectionInstanceKey: instance})
		h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse {
			return pdktest.Response(200, map[string]any{"totalSize": 5, "done": false, "nextRecordsUrl": next, "records": []any{}})
		})
		h.SetInput(map[string]any{"object": "Account", "fields": []string{"Id"}})
		_, toolErr := h.Call(soqlQuery)
		if toolErr == nil || toolErr.Code != "unexpected_response" || len(h.Requests()) != 1 {
			t.Errorf("nextRecordsUrl %s: error %+v after %d requests; want unexpected_response after 1", next, toolErr, len(h.Requests()))
		}
	}
}

func TestToolErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		tool      func() error
		args      map[string]any
		setup     func(*pdktest.Host, *fakesalesforce.Server)
		code      string
		category  pdk.Category
		contains  string
		noRequest bool
	}{
		{name: "invalid field in query", tool: soqlQuery, args: map[string]any{"object": "Account", "fields": []string{"Id", "Revenue__c"}},
			code: "invalid_field", category: pdk.CategoryCorrectable, contains: "field Revenue__c"},
		{name: "invalid field in condition", tool: soqlQuery, args: map[string]any{"object": "Account", "fields": []string{"Id"},
			"where": []any{map[string]any{"field": "Nope", "op": "=", "value": "x"}}},
			code: "invalid_field", category: pdk.CategoryCorrectable, contains: "field Nope"},
		{name: "date without type", tool: soqlQuery, args: map[string]any{"object": "Opportunity", "fields": []string{"Id"},
			"where": []any{map[string]any{"field": "CloseDate", "op": "<", "value": "2024-06-30"}}},
			code: "invalid_field", category: pdk.CategoryCorrectable, contains: "CloseDate"},
		{name: "object not allowed", tool: soqlQuery, args: map[string]any{"object": "User", "fields": []string{"Id"}},
			code: "object_not_allowed", category: pdk.CategoryCorrectable, contains: "Account, Contact, Lead, Opportunity, Case", noRequest: true},
		{name: "object removed by the grant", tool: soqlQuery, args: map[string]any{"object": "Contact", "fields": []string{"Id"}},
			setup: func(h *pdktest.Host, _ *fakesalesforce.Server) {
				h.SetConfig(map[string]string{connectionInstanceKey: instance, "objects": "Account"})
			},
			code: "object_not_allowed", category: pdk.CategoryCorrectable, noRequest: true},
		{name: "not found", tool: getRecord, args: map[string]any{"object": "Account", "id": "001D00000000099AAA"},
			code: "not_found", category: pdk.CategoryCorrectable, contains: "no Account record with ID 001D00000000099AAA"},
		{name: "bad ID", tool: getRecord, args: map[string]any{"object": "Account", "id": "001' OR 1=1"},
			code: pdk.CodeInvalidArguments, category: pdk.CategoryCorrectable, noRequest: true},
		{name: "quota exhausted", tool: getRecord, args: map[string]any{"object": "Account", "id": fakesalesforce.Acme},
			setup: func(_ *pdktest.Host, s *fakesalesforce.Server) { s.SetAPILimit(100); s.SetAPIUsage(100) },
			code:  "quota_exhausted", category: pdk.CategoryRetryable, contains: "api-usage=100/100"},
		{name: "session revoked", tool: getRecord, args: map[string]any{"object": "Account", "id": fakesalesforce.Acme},
			setup: func(_ *pdktest.Host, s *fakesalesforce.Server) { s.RevokeToken(token) },
			code:  "credential_rejected", category: pdk.CategoryFatal, contains: "reconnect"},
		{name: "required field missing", tool: createRecord, args: map[string]any{"object": "Contact", "fields": map[string]any{"FirstName": "Road"}},
			code: "required_field_missing", category: pdk.CategoryCorrectable, contains: "fields: LastName"},
		{name: "read-only field", tool: updateRecord, args: map[string]any{"object": "Opportunity", "id": fakesalesforce.OppProspecting, "fields": map[string]any{"IsWon": true}},
			code: "invalid_field_for_insert_update", category: pdk.CategoryCorrectable, contains: "fields: IsWon"},
		{name: "bad picklist", tool: updateRecord, args: map[string]any{"object": "Case", "id": fakesalesforce.CaseAnvil, "fields": map[string]any{"Status": "Exploded"}},
			code: "invalid_or_null_for_restricted_picklist", category: pdk.CategoryCorrectable, contains: "Exploded"},
		{name: "Id in fields", tool: createRecord, args: map[string]any{"object": "Account", "fields": map[string]any{"Id": "001D00000000001AAA"}},
			code: pdk.CodeInvalidArguments, category: pdk.CategoryCorrectable, noRequest: true},
		{name: "field name injection", tool: createRecord, args: map[string]any{"object": "Account", "fields": map[string]any{"Name\":\"x": "y"}},
			code: pdk.CodeInvalidArguments, category: pdk.CategoryCorrectable, noRequest: true},
		{name: "not connected", tool: getRecord, args: map[string]any{"object": "Account", "id": fakesalesforce.Acme},
			setup: func(h *pdktest.Host, _ *fakesalesforce.Server) { h.SetConfig(nil) },
			code:  "not_connected", category: pdk.CategoryFatal, noRequest: true},
		{name: "instance not https", tool: getRecord, args: map[string]any{"object": "Account", "id": fakesalesforce.Acme},
			setup: func(h *pdktest.Host, _ *fakesalesforce.Server) {
				h.SetConfig(map[string]string{connectionInstanceKey: "http://acme.my.salesforce.com"})
			},
			code: "bad_config", category: pdk.CategoryFatal, noRequest: true},
		{name: "instance with a path", tool: getRecord, args: map[string]any{"object": "Account", "id": fakesalesforce.Acme},
			setup: func(h *pdktest.Host, _ *fakesalesforce.Server) {
				h.SetConfig(map[string]string{connectionInstanceKey: "https://evil.example/x?y"})
			},
			code: "bad_config", category: pdk.CategoryFatal, noRequest: true},
		{name: "bad API version", tool: getRecord, args: map[string]any{"object": "Account", "id": fakesalesforce.Acme},
			setup: func(h *pdktest.Host, _ *fakesalesforce.Server) {
				h.SetConfig(map[string]string{connectionInstanceKey: instance, "api_version": "v61.0/../../x"})
			},
			code: "bad_config", category: pdk.CategoryFatal, noRequest: true},
		{name: "unknown API version", tool: soqlQuery, args: map[string]any{"object": "Account", "fields": []string{"Id"}},
			setup: func(h *pdktest.Host, _ *fakesalesforce.Server) {
				h.SetConfig(map[string]string{connectionInstanceKey: instance, "api_version": "v99.0"})
			},
			code: "not_found", category: pdk.CategoryCorrectable, contains: "api_version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, s := newHost(t)
			if tt.setup != nil {
				tt.setup(h, s)
			}
			h.SetInput(tt.args)
			_, toolErr := h.Call(tt.tool)
			if toolErr == nil {
				t.Fatal("the call succeeded, want an error")
			}
			if toolErr.Code != tt.code || toolErr.Category != tt.category || !strings.Contains(toolErr.Message, tt.contains) {
				t.Errorf("tool error = %+v, want code %s, category %s, message containing %q", toolErr, tt.code, tt.category, tt.contains)
			}
			if n := len(h.Requests()); tt.noRequest && n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
			if s.Writes() != 0 {
				t.Errorf("a failed call wrote %d records", s.Writes())
			}
			if strings.Contains(toolErr.Message, token) {
				t.Error("the tool error contains the token")
			}
		})
	}
}

// The static instance_url setting is used only when the connection supplies none.
func TestInstanceURLPrecedence(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t)
	h.SetConfig(map[string]string{staticInstanceKey: "https://static.my.salesforce.com"})
	h.SetInput(map[string]any{"object": "Account", "id": fakesalesforce.Acme})
	if _, toolErr := h.Call(getRecord); toolErr != nil {
		t.Fatalf("get_record with a static instance_url: %v", toolErr)
	}
	h.SetConfig(map[string]string{staticInstanceKey: "https://static.my.salesforce.com", connectionInstanceKey: instance})
	if _, toolErr := h.Call(getRecord); toolErr != nil {
		t.Fatal(toolErr)
	}
	reqs := h.Requests()
	if !strings.HasPrefix(reqs[0].URL, "https://static.my.salesforce.com/") || !strings.HasPrefix(reqs[1].URL, instance+"/") {
		t.Errorf("requests went to %s and %s; want the static URL, then the connection's", reqs[0].URL, reqs[1].URL)
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	// Salesforce answers REQUEST_LIMIT_EXCEEDED both for the daily allocation and for too many
	// concurrent long-running requests; only the first is "hours". Sforce-Limit-Info separates
	// its items with ";".
	limitInfo := map[string][]string{"Sforce-Limit-Info": {"per-app-api-usage=17/250(appName=airlock); api-usage=100020/100000"}}
	tests := []struct {
		name     string
		resp     pdk.HTTPResponse
		code     string
		category pdk.Category
		retryMS  int64
		contains string
	}{
		{"503", pdktest.Response(503, `[{"message":"down","errorCode":"SERVER_UNAVAILABLE"}]`), pdk.CodeUnavailable, pdk.CategoryRetryable, 0, ""},
		{"daily request limit", pdk.HTTPResponse{Status: 403, Headers: limitInfo,
			Body: []byte(`[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`)},
			"quota_exhausted", pdk.CategoryRetryable, 0, "allowance (api-usage=100020/100000), which"},
		{"concurrent long-running requests", pdk.HTTPResponse{Status: 403, Headers: limitInfo,
			Body: []byte(`[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`)},
			pdk.CodeRateLimited, pdk.CategoryRetryable, 5000, "a few seconds"},
		{"retired API version", pdktest.Response(410, `[{"message":"This API version is no longer supported.","errorCode":"API_VERSION_RETIRED"}]`),
			"api_version_retired", pdk.CategoryCorrectable, 0, "api_version"},
		{"429 with Retry-After", pdk.HTTPResponse{Status: 429, Headers: map[string][]string{"Retry-After": {"30"}}}, pdk.CodeRateLimited, pdk.CategoryRetryable, 30_000, ""},
		{"insufficient access", pdktest.Response(403, `[{"message":"no","errorCode":"INSUFFICIENT_ACCESS_OR_READONLY"}]`), "permission_denied", pdk.CategoryCorrectable, 0, ""},
		{"401 without body", pdk.HTTPResponse{Status: 401}, "credential_rejected", pdk.CategoryFatal, 0, ""},
		{"not JSON", pdktest.Response(200, "<html>"), "unexpected_response", pdk.CategoryFatal, 0, ""},
		{"unknown 4xx code", pdktest.Response(400, `[{"message":"m","errorCode":"SOMETHING_NEW"}]`), "something_new", pdk.CategoryCorrectable, 0, ""},
		{"300", pdktest.Response(300, `[]`), "unexpected_response", pdk.CategoryFatal, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := pdktest.New(t)
			h.SetConfig(map[string]string{connectionInstanceKey: instance})
			h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse { return tt.resp })
			h.SetInput(map[string]any{"object": "Account", "id": fakesalesforce.Acme})
			_, toolErr := h.Call(getRecord)
			if toolErr == nil || toolErr.Code != tt.code || toolErr.Category != tt.category || toolErr.RetryAfterMS != tt.retryMS ||
				!strings.Contains(toolErr.Message, tt.contains) {
				t.Errorf("tool error = %+v, want code %s, category %s, retry_after_ms %d, message containing %q",
					toolErr, tt.code, tt.category, tt.retryMS, tt.contains)
			}
		})
	}

	// A host refusal passes through unchanged.
	refusal := &pdk.Error{Code: pdk.CodeEgressDenied, Category: pdk.CategoryFatal, Message: "acme.my.salesforce.com is not granted"}
	h := pdktest.New(t)
	h.SetConfig(map[string]string{connectionInstanceKey: instance})
	h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse { return pdk.HTTPResponse{Error: refusal} })
	h.SetInput(map[string]any{"object": "Account", "fields": []string{"Id"}})
	if _, toolErr := h.Call(soqlQuery); !cmp.Equal(toolErr, refusal) {
		t.Errorf("egress refusal: tool error = %+v, want %+v unchanged", toolErr, refusal)
	}
}

func TestGetRecord(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t)
	h.SetInput(map[string]any{"object": "Opportunity", "id": fakesalesforce.OppClosedWon, "fields": []string{"Name", "StageName", "Amount"}})
	var got recordResult
	if toolErr := h.CallJSON(getRecord, &got); toolErr != nil {
		t.Fatal(toolErr)
	}
	want := recordResult{Object: "Opportunity", ID: fakesalesforce.OppClosedWon, Record: map[string]any{
		"Id": fakesalesforce.OppClosedWon, "Name": "Initech TPS Reports", "StageName": "Closed Won", "Amount": 20000.0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	checkRequest(t, h.Requests()[0], "GET", instance+"/services/data/v61.0/sobjects/Opportunity/"+fakesalesforce.OppClosedWon+"?fields=Name%2CStageName%2CAmount")
}

func TestCreateAndUpdateRecord(t *testing.T) {
	t.Parallel()
	h, s := newHost(t)
	h.SetInput(map[string]any{"object": "Contact", "fields": map[string]any{"FirstName": "Road", "LastName": "Runner",
		"Email": "beep@acme.example", "AccountId": fakesalesforce.Acme}})
	var created writeResult
	if toolErr := h.CallJSON(createRecord, &created); toolErr != nil {
		t.Fatal(toolErr)
	}
	rec, ok := s.Record("Contact", created.ID)
	if !ok || rec["Name"] != "Road Runner" || rec["AccountId"] != fakesalesforce.Acme || !created.Created {
		t.Fatalf("created %+v; fake has %v", created, rec)
	}
	post := h.Requests()[0]
	checkRequest(t, post, "POST", instance+"/services/data/v61.0/sobjects/Contact")
	if post.IdempotencyKey != "" {
		t.Errorf("create sent idempotency key %q: the host could replay it and create a duplicate", post.IdempotencyKey)
	}

	update := map[string]any{"object": "Contact", "id": created.ID, "fields": map[string]any{"Title": "Sprinter", "Email": nil}}
	for range 2 {
		h.SetInput(update)
		var updated writeResult
		if toolErr := h.CallJSON(updateRecord, &updated); toolErr != nil || !updated.Updated {
			t.Fatalf("update_record = %+v, %v", updated, toolErr)
		}
	}
	rec, _ = s.Record("Contact", created.ID)
	if rec["Title"] != "Sprinter" || rec["Email"] != nil {
		t.Errorf("after update the contact is %v", rec)
	}
	reqs := h.Requests()
	p1, p2 := reqs[1], reqs[2]
	checkRequest(t, p1, "PATCH", instance+"/services/data/v61.0/sobjects/Contact/"+created.ID)
	if p1.IdempotencyKey == "" || p1.IdempotencyKey != p2.IdempotencyKey {
		t.Errorf("idempotency keys %q and %q; want the same non-empty key for the same update", p1.IdempotencyKey, p2.IdempotencyKey)
	}
	h.SetInput(map[string]any{"object": "Contact", "id": created.ID, "fields": map[string]any{"Title": "Coach"}})
	h.Call(updateRecord)
	if k := h.Requests()[3].IdempotencyKey; k == p1.IdempotencyKey {
		t.Error("a different update has the same idempotency key")
	}
}

func TestUpdateOpportunityStage(t *testing.T) {
	t.Parallel()
	t.Run("read then write", func(t *testing.T) {
		t.Parallel()
		h, s := newHost(t)
		h.SetInput(map[string]any{"id": fakesalesforce.OppProspecting, "stage": "qualification"})
		var got stageResult
		if toolErr := h.CallJSON(updateOpportunityStage, &got); toolErr != nil {
			t.Fatal(toolErr)
		}
		want := stageResult{ID: fakesalesforce.OppProspecting, Name: "Acme Anvils", PreviousStage: "Prospecting", Stage: "Qualification", Changed: true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
		if rec, _ := s.Record("Opportunity", fakesalesforce.OppProspecting); rec["StageName"] != "Qualification" {
			t.Errorf("stage in Salesforce = %v", rec["StageName"])
		}
		reqs := h.Requests()
		if len(reqs) != 2 || reqs[0].Method != "GET" || reqs[1].Method != "PATCH" {
			t.Fatalf("requests = %+v, want GET then PATCH", reqs)
		}
		patch := reqs[1]
		if patch.IdempotencyKey == "" || pdk.Header(patch.Headers, "If-Unmodified-Since") != "Mon, 15 Jan 2024 09:00:00 GMT" {
			t.Errorf("PATCH has key %q and If-Unmodified-Since %q; want a key and the read's LastModifiedDate",
				patch.IdempotencyKey, pdk.Header(patch.Headers, "If-Unmodified-Since"))
		}
		if string(patch.Body) != `{"StageName":"Qualification"}` {
			t.Errorf("PATCH body = %s", patch.Body)
		}
	})

	refusals := []struct {
		name, id, stage, code, contains string
		requests                        int
	}{
		{"from Closed Won", fakesalesforce.OppClosedWon, "Prospecting", "invalid_transition", "already closed as Closed Won", 1},
		{"from Closed Lost to Closed Won", fakesalesforce.OppClosedLost, "Closed Won", "invalid_transition", "already closed as Closed Lost", 1},
		{"unknown stage", fakesalesforce.OppProspecting, "Won Big", "unknown_stage", "Prospecting, Qualification", 0},
		{"stage injection", fakesalesforce.OppProspecting, "Closed Won','IsWon':'true", "unknown_stage", "not an opportunity stage", 0},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, s := newHost(t)
			h.SetInput(map[string]any{"id": tt.id, "stage": tt.stage})
			_, toolErr := h.Call(updateOpportunityStage)
			if toolErr == nil || toolErr.Code != tt.code || toolErr.Category != pdk.CategoryCorrectable || !strings.Contains(toolErr.Message, tt.contains) {
				t.Errorf("tool error = %+v, want correctable %s containing %q", toolErr, tt.code, tt.contains)
			}
			if n := len(h.Requests()); n != tt.requests || s.Writes() != 0 {
				t.Errorf("%d requests, %d writes; want %d requests (reads only) and no write", n, s.Writes(), tt.requests)
			}
		})
	}

	t.Run("same stage is not written", func(t *testing.T) {
		t.Parallel()
		h, s := newHost(t)
		h.SetInput(map[string]any{"id": fakesalesforce.OppNegotiation, "stage": "Negotiation/Review"})
		var got stageResult
		if toolErr := h.CallJSON(updateOpportunityStage, &got); toolErr != nil || got.Changed {
			t.Fatalf("result %+v, %v; want changed false", got, toolErr)
		}
		if len(h.Requests()) != 1 || s.Writes() != 0 {
			t.Errorf("%d requests, %d writes; want the read only", len(h.Requests()), s.Writes())
		}
	})

	t.Run("changed by someone else meanwhile", func(t *testing.T) {
		t.Parallel()
		h, s := newHost(t)
		// Before the connector's PATCH arrives, someone edits the opportunity.
		h.Serve(beforePatch(s, func() {
			patch(t, s, fakesalesforce.OppProspecting, `{"StageName":"Value Proposition"}`)
		}))
		h.SetInput(map[string]any{"id": fakesalesforce.OppProspecting, "stage": "Qualification"})
		_, toolErr := h.Call(updateOpportunityStage)
		if toolErr == nil || toolErr.Code != "conflict" || toolErr.Category != pdk.CategoryRetryable || !strings.Contains(toolErr.Message, "Value Proposition") {
			t.Errorf("tool error = %+v, want a retryable conflict naming the new stage", toolErr)
		}
		if rec, _ := s.Record("Opportunity", fakesalesforce.OppProspecting); rec["StageName"] != "Value Proposition" {
			t.Errorf("stage = %v: the connector overwrote a concurrent change", rec["StageName"])
		}
	})

	t.Run("replayed write", func(t *testing.T) {
		t.Parallel()
		h, s := newHost(t)
		// The first PATCH lands but its answer is lost; the host replays it with the same key.
		h.Serve(beforePatch(s, func() {
			patch(t, s, fakesalesforce.OppProspecting, `{"StageName":"Qualification"}`)
		}))
		h.SetInput(map[string]any{"id": fakesalesforce.OppProspecting, "stage": "Qualification"})
		var got stageResult
		if toolErr := h.CallJSON(updateOpportunityStage, &got); toolErr != nil || !got.Changed || got.Stage != "Qualification" {
			t.Errorf("result %+v, %v; want success: the stage is in place", got, toolErr)
		}
	})
}

// beforePatch serves s, running fn once before the first PATCH is served.
func beforePatch(s *fakesalesforce.Server, fn func()) http.Handler {
	done := false
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && !done {
			done = true
			fn()
		}
		s.ServeHTTP(w, r)
	})
}

// patch updates a record in the fake directly, one second later than anything before.
func patch(t *testing.T, s *fakesalesforce.Server, id, body string) {
	t.Helper()
	r := httptest.NewRequest("PATCH", instance+"/services/data/v61.0/sobjects/Opportunity/"+id, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent {
		b, _ := io.ReadAll(w.Body)
		t.Fatalf("direct PATCH = %d %s", w.Code, b)
	}
}

func TestAddNote(t *testing.T) {
	t.Parallel()
	h, s := newHost(t)
	body := "Called Wile.\nHe wants 40 more anvils ' OR 1=1 -- and a \"discount\"."
	h.SetInput(map[string]any{"parent_id": fakesalesforce.Acme, "title": "Call notes", "body": body})
	var got noteResult
	if toolErr := h.CallJSON(addNote, &got); toolErr != nil {
		t.Fatal(toolErr)
	}
	rec, ok := s.Record("Note", got.ID)
	if !ok || rec["ParentId"] != fakesalesforce.Acme || rec["Title"] != "Call notes" || rec["Body"] != body || got.ParentID != fakesalesforce.Acme {
		t.Fatalf("note %+v; fake has %v", got, rec)
	}
	r := h.Requests()[0]
	checkRequest(t, r, "POST", instance+"/services/data/v61.0/sobjects/Note")
	if r.IdempotencyKey != "" {
		t.Error("add_note sent an idempotency key: a replay would add a second note")
	}
	var sent map[string]any
	json.Unmarshal(r.Body, &sent)
	if sent["Body"] != body {
		t.Errorf("the body was altered on the way: %q", sent["Body"])
	}

	for _, tt := range []struct {
		name, parent, objects, code string
	}{
		{"unknown object prefix", "a0BD00000000001AAA", "", "object_not_allowed"},
		{"user record", "005D00000000001AAA", "", "object_not_allowed"},
		{"object not allowed", fakesalesforce.Coyote, "Account", "object_not_allowed"},
		{"no such parent", "001D00000000077AAA", "", "invalid_cross_reference_key"},
	} {
		h.SetConfig(map[string]string{connectionInstanceKey: instance})
		if tt.objects != "" {
			h.SetConfig(map[string]string{connectionInstanceKey: instance, "objects": tt.objects})
		}
		h.SetInput(map[string]any{"parent_id": tt.parent, "title": "x"})
		_, toolErr := h.Call(addNote)
		if toolErr == nil || toolErr.Code != tt.code || toolErr.Category != pdk.CategoryCorrectable {
			t.Errorf("%s: tool error = %+v, want correctable %s", tt.name, toolErr, tt.code)
		}
	}
	if s.Writes() != 1 {
		t.Errorf("writes = %d, want only the first note", s.Writes())
	}
	if !bytes.Contains(h.Requests()[0].Body, []byte(`"ParentId"`)) {
		t.Error("the note was not sent with ParentId")
	}
}

// TestOrderAndGroupObjects: the standard Order and Group objects can be allowed and queried;
// their names are not SOQL reserved words in the FROM position.
func TestOrderAndGroupObjects(t *testing.T) {
	t.Parallel()
	h, _ := newHost(t)
	h.SetConfig(map[string]string{connectionInstanceKey: instance, "objects": "Account,Order,Group"})
	for object, fields := range map[string][]string{"Order": {"Id", "OrderNumber", "Account.Name"}, "Group": {"Id", "Name"}} {
		h.SetInput(map[string]any{"object": object, "fields": fields})
		out, toolErr := h.Call(soqlQuery)
		if toolErr != nil {
			t.Fatalf("soql_query on %s: %v", object, toolErr)
		}
		var res struct {
			Count int `json:"count"`
		}
		if err := json.Unmarshal(out, &res); err != nil || res.Count != 1 {
			t.Errorf("soql_query on %s = %s, want one record", object, out)
		}
	}
}
