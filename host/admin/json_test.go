package admin_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

// jsonRequests is a request per admin API route that answers with a body worth checking (a
// success, not a 404), in an order where each finds what it needs. {approval} and {other} are
// replaced by two pending approvals' IDs, {cursor} by the next_cursor of the page before.
var jsonRequests = []struct {
	pattern, method, path, body string
}{
	{"GET /admin/v1/connectors", "GET", "/admin/v1/connectors", ""},
	{"GET /admin/v1/connectors/{name}/review", "GET", "/admin/v1/connectors/slack/review", ""},
	{"GET /admin/v1/grants", "GET", "/admin/v1/grants", ""},
	{"GET /admin/v1/grants/{connector}/history", "GET", "/admin/v1/grants/slack/history", ""},
	{"PUT /admin/v1/profiles/{name}", "PUT", "/admin/v1/profiles/support", `{"members":["support-bot"],"tools":["slack.list_*"]}`},
	{"GET /admin/v1/profiles", "GET", "/admin/v1/profiles", ""},
	{"GET /admin/v1/profiles/{name}", "GET", "/admin/v1/profiles/support", ""},
	{"GET /admin/v1/profiles/{name}", "GET", "/admin/v1/profiles/support?history=1", ""},
	{"GET /admin/v1/approvals", "GET", "/admin/v1/approvals", ""},
	{"POST /admin/v1/approvals/{id}/approve", "POST", "/admin/v1/approvals/{approval}/approve", ""},
	{"POST /admin/v1/approvals/{id}/deny", "POST", "/admin/v1/approvals/{other}/deny", `{"reason":"not now"}`},
	{"GET /admin/v1/approvals", "GET", "/admin/v1/approvals?status=approved", ""},
	{"GET /admin/v1/audit", "GET", "/admin/v1/audit?limit=2", ""},
	{"GET /admin/v1/audit", "GET", "/admin/v1/audit?limit=2&cursor={cursor}", ""},
	{"GET /admin/v1/audit/verify", "GET", "/admin/v1/audit/verify", ""},
	{"GET /admin/v1/metrics", "GET", "/admin/v1/metrics", ""},
	{"GET /admin/v1/admins", "GET", "/admin/v1/admins", ""},
	{"PUT /admin/v1/admins/{name}/role", "PUT", "/admin/v1/admins/viewer-admin/role", `{"role":"approver"}`},
	{"PUT /admin/v1/grants/{connector}", "PUT", "/admin/v1/grants/slack", "GRANT"},
	{"DELETE /admin/v1/grants/{connector}", "DELETE", "/admin/v1/grants/slack?tools=post_message", ""},
	{"GET /admin/v1/grants", "GET", "/admin/v1/grants", ""},
	{"DELETE /admin/v1/profiles/{name}", "DELETE", "/admin/v1/profiles/support", ""},
	{"DELETE /admin/v1/grants/{connector}", "DELETE", "/admin/v1/grants/slack", ""},
	{"GET /admin/v1/grants/{connector}/history", "GET", "/admin/v1/grants/slack/history", ""},
	{"GET /admin/v1/agents", "GET", "/admin/v1/agents", ""},
	{"POST /admin/v1/agents", "POST", "/admin/v1/agents", `{"name":"json-bot","subject":"acme","ttl":"24h"}`},
	{"DELETE /admin/v1/agents/{name}", "DELETE", "/admin/v1/agents/json-bot", ""},
	{"POST /admin/v1/admins", "POST", "/admin/v1/admins", `{"name":"json-admin","role":"viewer"}`},
	{"DELETE /admin/v1/admins/{name}", "DELETE", "/admin/v1/admins/json-admin", ""},
	{"PUT /admin/v1/secrets/{name}", "PUT", "/admin/v1/secrets/json_secret", `{"value":"not-a-real-secret"}`},
	{"GET /admin/v1/secrets", "GET", "/admin/v1/secrets", ""},
	{"GET /admin/v1/connections", "GET", "/admin/v1/connections", ""},
	{"POST /admin/v1/connectors/{name}/versions/{version}/reject", "POST", "/admin/v1/connectors/slack/versions/2.0.0/reject", ""},
}

// jsonExempt are the routes whose success needs an OAuth provider the test does not run; they
// answer a one-key object of strings ({"authorization_url": …}, {"disconnected": …}), and the
// console's browser test drives both end to end (host/console TestBrowserAccounts).
var jsonExempt = map[string]bool{
	"POST /admin/v1/connections/{connector}/connect":            true,
	"DELETE /admin/v1/connections/{connector}/{slot}/{subject}": true,
}

// freeForm are the fields whose values are someone else's JSON, kept as they are: JSON Schemas
// and examples from a manifest, an agent's arguments, an audit event's detail, the counters of
// /metrics (named after what they count). Their keys are not the API's names.
var freeForm = map[string]bool{"input_schema": true, "output_schema": true, "examples": true, "arguments": true,
	"detail": true, "result": true, "screening": true}

// identKey is a key that names a field (as opposed to data used as a key: a URL in upstreams,
// a credential slot's name); such a key must be snake_case, so it has no capital letter.
var identKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// Every admin API route answers in the one documented convention: snake_case keys, manifests,
// grants and arguments as JSON objects (never base64), no zero-value dates, errors as
// {"error": "…"}. Every route must have a request here, so a new route cannot regress.
func TestAdminAPIJSONConvention(t *testing.T) {
	ctx := context.Background()
	e := approvalEnv(t, "")
	e.install(t, "slack", "2.0.0", store.InstalledPending, e.slackYAML(t, slackV2), e.slackW) // a review with changes
	approval := pendingID(t, e.call("slack.post_message", argsA))
	other := pendingID(t, e.call("slack.post_message", argsB))
	if err := e.sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c, tokens, _ := roleAdmins(t, e)
	ss, err := secret.OpenStore(ctx, &secret.MemoryBackend{}, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	e.a.SetSecretStore(ss)
	grant, err := json.Marshal(e.slackGrant())
	if err != nil {
		t.Fatal(err)
	}

	covered := map[string]bool{}
	cursor := ""
	for _, r := range jsonRequests {
		covered[r.pattern] = true
		path := strings.NewReplacer("{approval}", approval, "{other}", other, "{cursor}", cursor).Replace(r.path)
		body := strings.Replace(r.body, "GRANT", string(grant), 1)
		status, got := c.do(tokens[admin.Owner], r.method, path, body)
		if status != http.StatusOK {
			t.Errorf("%s %s = %d %s, want 200", r.method, path, status, got)
			continue
		}
		for _, problem := range checkConvention(got) {
			t.Errorf("%s %s: %s", r.method, path, problem)
		}
		if strings.HasPrefix(path, "/admin/v1/audit?") {
			page := auditPage(t, got)
			if len(page.Records) != 2 || page.NextCursor == "" {
				t.Errorf("GET %s = %d records, next cursor %q; want 2 and a cursor (the trail holds more)", path, len(page.Records), page.NextCursor)
			}
			cursor = page.NextCursor
		}
	}
	for _, p := range admin.Routes() {
		if !covered[p] && !jsonExempt[p] {
			t.Errorf("route %s has no request in jsonRequests: add one that succeeds, so its JSON is checked", p)
		}
	}

	// Errors are {"error": "…"} and nothing else.
	for _, path := range []string{"/admin/v1/connectors/nope/review", "/admin/v1/audit?cursor=c1.bm90LWEtbnVtYmVy", "/admin/v1/audit?limit=100000"} {
		status, got := c.do(tokens[admin.Owner], "GET", path, "")
		var e map[string]any
		if err := json.Unmarshal(got, &e); err != nil || status < 400 || len(e) != 1 || e["error"] == nil {
			t.Errorf("GET %s = %d %s, want an error status and {\"error\": …}", path, status, got)
		}
	}
}

// checkConvention lists how the JSON body breaks the admin API's convention.
func checkConvention(body []byte) []string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return []string{fmt.Sprintf("the body is not JSON: %v", err)}
	}
	var problems []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				p := path + "." + k
				if identKey.MatchString(k) && strings.ToLower(k) != k {
					problems = append(problems, fmt.Sprintf("key %s is not snake_case", p))
				}
				switch k {
				case "manifest", "grant", "event":
					if _, ok := x.(map[string]any); !ok && x != nil {
						problems = append(problems, fmt.Sprintf("%s is %T, want a JSON object", p, x))
					}
				}
				if !freeForm[k] {
					walk(p, x)
				}
			}
		case []any:
			for i, x := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		case string:
			if strings.HasPrefix(v, "0001-01-01") {
				problems = append(problems, fmt.Sprintf("%s is the zero date %q: leave it out", path, v))
			}
			if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(v) >= 16 && utf8.Valid(b) &&
				bytes.ContainsAny(b, "{:\n") {
				problems = append(problems, fmt.Sprintf("%s is base64 (%.40q…): give the value as JSON", path, b))
			}
		}
	}
	walk("", v)
	slices.Sort(problems)
	return problems
}

// The check itself catches what the old bodies had: PascalCase, base64 and zero dates.
func TestCheckConventionCatchesOldBodies(t *testing.T) {
	old := fmt.Sprintf(`[{"ID":"ap_1","Args":%q,"Decided":"0001-01-01T00:00:00Z"}]`,
		base64.StdEncoding.EncodeToString([]byte(`{"channel":"C1"}`)))
	if got := checkConvention([]byte(old)); len(got) != 5 { // ID, Args and Decided keys; the zero date; base64 (Args)
		t.Errorf("checkConvention(old approvals) = %q, want 5 problems", got)
	}
	if got := checkConvention([]byte(`{"manifest":"bmFtZTogc2xhY2sKdmVyc2lvbjogMS4wLjAK"}`)); len(got) != 2 {
		t.Errorf("checkConvention(base64 manifest) = %q, want 2 problems (not an object, base64)", got)
	}
}
