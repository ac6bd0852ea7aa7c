package fakesalesforce

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testToken = "00Dtest!token"

func do(t *testing.T, s *Server, method, path, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	r := httptest.NewRequest(method, "https://acme.my.salesforce.com"+path, strings.NewReader(body))
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w.Result(), w.Body.Bytes()
}

func api(t *testing.T, s *Server, method, path, body string) (int, []byte) {
	t.Helper()
	res, b := do(t, s, method, path, body, map[string]string{"Authorization": "Bearer " + testToken})
	return res.StatusCode, b
}

func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	var errs []sfError
	if err := json.Unmarshal(b, &errs); err != nil || len(errs) == 0 {
		t.Fatalf("body %s is not a Salesforce error array", b)
	}
	return errs[0].ErrorCode
}

func newServer() *Server {
	s := New()
	s.AddToken(testToken)
	return s
}

func q(soql string) string { return "/services/data/v61.0/query?q=" + url.QueryEscape(soql) }

// jwt signs claims with key (RS256), or with the given alg header and no valid signature.
func jwt(t *testing.T, key *rsa.PrivateKey, alg string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestJWTBearer(t *testing.T) {
	t.Parallel()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "3MVGconsumer", "sub": "bot@acme.example", "aud": DefaultAudience, "exp": now.Add(2 * time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	tests := []struct {
		name      string
		assertion string
		wantErr   string // OAuth error, "" for success
	}{
		{"valid", jwt(t, key, "RS256", claims(nil)), ""},
		{"aud as list", jwt(t, key, "RS256", claims(func(c map[string]any) { c["aud"] = []string{"x", DefaultAudience} })), ""},
		{"signed by another key", jwt(t, other, "RS256", claims(nil)), "invalid_grant"},
		{"alg none", jwt(t, key, "none", claims(nil)), "invalid_grant"},
		{"unknown consumer", jwt(t, key, "RS256", claims(func(c map[string]any) { c["iss"] = "3MVGother" })), "invalid_client_id"},
		{"other user", jwt(t, key, "RS256", claims(func(c map[string]any) { c["sub"] = "admin@acme.example" })), "invalid_grant"},
		{"wrong audience", jwt(t, key, "RS256", claims(func(c map[string]any) { c["aud"] = "https://evil.example" })), "invalid_grant"},
		{"expired", jwt(t, key, "RS256", claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })), "invalid_grant"},
		{"too far ahead", jwt(t, key, "RS256", claims(func(c map[string]any) { c["exp"] = now.Add(time.Hour).Unix() })), "invalid_grant"},
		{"exactly 3 minutes", jwt(t, key, "RS256", claims(func(c map[string]any) { c["exp"] = now.Add(3 * time.Minute).Unix() })), ""},
		{"3.5 minutes ahead", jwt(t, key, "RS256", claims(func(c map[string]any) { c["exp"] = now.Add(210 * time.Second).Unix() })), "invalid_grant"},
		{"no exp", jwt(t, key, "RS256", claims(func(c map[string]any) { delete(c, "exp") })), "invalid_grant"},
		{"garbage", "a.b.c", "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			s.SetClock(func() time.Time { return now })
			s.RegisterJWTClient("3MVGconsumer", "bot@acme.example", &key.PublicKey)
			form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {tt.assertion}}
			res, body := do(t, s, "POST", tokenPath, form.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			var m map[string]any
			json.Unmarshal(body, &m)
			if tt.wantErr != "" {
				if res.StatusCode != 400 || m["error"] != tt.wantErr || m["error_description"] == "" {
					t.Errorf("= %d %s, want 400 %s", res.StatusCode, body, tt.wantErr)
				}
				return
			}
			if res.StatusCode != 200 || m["token_type"] != "Bearer" || m["instance_url"] != DefaultInstanceURL || m["issued_at"] == "" || m["signature"] == "" || m["id"] == "" {
				t.Fatalf("= %d %s", res.StatusCode, body)
			}
			if _, ok := m["expires_in"]; ok {
				t.Error("the token response has expires_in; Salesforce sends none")
			}
			access, _ := m["access_token"].(string)
			r, _ := do(t, s, "GET", q("SELECT Id FROM Account"), "", map[string]string{"Authorization": "Bearer " + access})
			if r.StatusCode != 200 {
				t.Errorf("the issued token is refused: %d", r.StatusCode)
			}
		})
	}
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	s := New()
	s.RegisterClient("3MVGcc", "s3cret")
	ct := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	cc := "grant_type=client_credentials&client_id=3MVGcc&client_secret=s3cret"
	// Salesforce serves the flow only on a My Domain, not on the shared login hosts.
	for _, login := range []string{DefaultAudience, "https://test.salesforce.com"} {
		s.SetAudience(login)
		if res, body := do(t, s, "POST", tokenPath, cc, ct); res.StatusCode != 400 || !strings.Contains(string(body), "not supported on this domain") {
			t.Errorf("client credentials on %s = %d %s, want 400 request not supported on this domain", login, res.StatusCode, body)
		}
	}
	s.SetAudience("https://acme.my.salesforce.com")
	form := func(id, sec string) string {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {sec}}.Encode()
	}
	if res, body := do(t, s, "POST", tokenPath, form("3MVGcc", "s3cret"), ct); res.StatusCode != 200 || !strings.Contains(string(body), "access_token") {
		t.Errorf("form credentials = %d %s", res.StatusCode, body)
	}
	basic := map[string]string{"Content-Type": "application/x-www-form-urlencoded",
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("3MVGcc:s3cret"))}
	if res, body := do(t, s, "POST", tokenPath, "grant_type=client_credentials", basic); res.StatusCode != 200 {
		t.Errorf("basic credentials = %d %s", res.StatusCode, body)
	}
	for _, f := range []string{form("3MVGcc", "wrong"), form("", ""), form("other", "s3cret"), "grant_type=password"} {
		if res, body := do(t, s, "POST", tokenPath, f, ct); res.StatusCode != 400 || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s = %d %s, want 400 with an OAuth error", f, res.StatusCode, body)
		}
	}
	if res, _ := do(t, s, "GET", tokenPath, "", nil); res.StatusCode == 200 {
		t.Error("GET on the token endpoint succeeded")
	}
	if n := s.TokensIssued(); n != 2 {
		t.Errorf("TokensIssued = %d, want 2", n)
	}
}

func TestSessions(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := New()
	s.SetClock(func() time.Time { return now })
	a, b := s.IssueToken(), s.IssueToken()
	get := func(token string) (*http.Response, []byte) {
		return do(t, s, "GET", q("SELECT Id FROM Account"), "", map[string]string{"Authorization": "Bearer " + token})
	}
	if res, _ := get(a); res.StatusCode != 200 {
		t.Fatalf("fresh token = %d", res.StatusCode)
	}
	s.RevokeToken(a)
	res, body := get(a)
	if res.StatusCode != 401 || errorCode(t, body) != "INVALID_SESSION_ID" || res.Header.Get("Sforce-Limit-Info") != "" {
		t.Errorf("revoked token = %d %s", res.StatusCode, body)
	}
	for _, h := range []string{"", "Basic " + b, "Bearer", "Bearer wrong"} {
		res, _ := do(t, s, "GET", q("SELECT Id FROM Account"), "", map[string]string{"Authorization": h})
		if res.StatusCode != 401 {
			t.Errorf("Authorization %q = %d, want 401", h, res.StatusCode)
		}
	}
	now = now.Add(DefaultSessionTimeout)
	if res, _ := get(b); res.StatusCode != 401 {
		t.Errorf("token past the session timeout = %d, want 401", res.StatusCode)
	}
	reqs := s.Requests()
	if last := reqs[len(reqs)-1]; last.Token != b || last.Authorized || last.Status != 401 || last.Header.Get("Authorization") != "Bearer "+b {
		t.Errorf("last request record = %+v", last)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	s := newServer()
	s.SetAPILimit(3)
	for i := 1; i <= 3; i++ {
		r, _ := do(t, s, "GET", q("SELECT Id FROM Account"), "", map[string]string{"Authorization": "Bearer " + testToken})
		if want := "api-usage=" + string(rune('0'+i)) + "/3; per-app-api-usage=" + string(rune('0'+i)) + "/3(appName=airlock)"; r.StatusCode != 200 || r.Header.Get("Sforce-Limit-Info") != want {
			t.Errorf("request %d: %d, Sforce-Limit-Info %q, want %q", i, r.StatusCode, r.Header.Get("Sforce-Limit-Info"), want)
		}
	}
	r, body := do(t, s, "GET", "/services/data/v61.0/sobjects/Account/"+Acme, "", map[string]string{"Authorization": "Bearer " + testToken})
	if r.StatusCode != 403 || errorCode(t, body) != "REQUEST_LIMIT_EXCEEDED" || !strings.HasPrefix(r.Header.Get("Sforce-Limit-Info"), "api-usage=3/3;") {
		t.Errorf("over the limit = %d %s %v", r.StatusCode, body, r.Header)
	}
	if s.APIUsage() != 3 {
		t.Errorf("usage = %d, want 3 (refused requests are not counted)", s.APIUsage())
	}
}

func TestQuery(t *testing.T) {
	t.Parallel()
	s := newServer()
	tests := []struct {
		soql  string
		names []string
	}{
		{"SELECT Name FROM Account ORDER BY Name", []string{"Acme Corporation", "Globex", "Initech"}},
		{"select name from account where industry = 'energy'", []string{"Globex"}},
		{"SELECT Name FROM Account WHERE AnnualRevenue > 5000000 AND NOT Name LIKE 'G%' ", []string{"Acme Corporation"}},
		{"SELECT Name FROM Account WHERE Name = 'Globex' OR (BillingCity IN ('Austin') AND Industry != NULL) ORDER BY Name DESC", []string{"Initech", "Globex"}},
		{"SELECT Name FROM Account WHERE Name NOT IN ('Globex', 'Initech')", []string{"Acme Corporation"}},
		{`SELECT Name FROM Account WHERE Name = '\' OR Name != \''`, nil},
		{`SELECT Name FROM Account WHERE Name = '' OR Name != ''`, []string{"Acme Corporation", "Globex", "Initech"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate < 2024-02-01 AND IsClosed = TRUE ORDER BY CloseDate", []string{"Acme Rockets", "Initech TPS Reports"}},
		{"SELECT Name FROM Opportunity WHERE Account.Name = 'Acme Corporation' ORDER BY Amount DESC LIMIT 1", []string{"Acme Rockets"}},
		{"SELECT Name FROM Account WHERE CreatedDate = 2024-01-15T09:00:00Z LIMIT 2", []string{"Acme Corporation", "Globex"}},
		{"SELECT Name FROM Account WHERE Name LIKE 'acme\\_%'", nil},
	}
	for _, tt := range tests {
		res, names, ok := queryNames(t, s, tt.soql)
		if ok && (strings.Join(names, "|") != strings.Join(tt.names, "|") || res.TotalSize != len(tt.names) || !res.Done) {
			t.Errorf("%s = %v (totalSize %d), want %v", tt.soql, names, res.TotalSize, tt.names)
		}
	}

	bad := []struct{ soql, code string }{
		{"SELECT Nope FROM Account", "INVALID_FIELD"},
		{"SELECT Id FROM Account WHERE Amount = 5", "INVALID_FIELD"},
		{"SELECT Id FROM Account WHERE AnnualRevenue = '5'", "INVALID_FIELD"},
		{"SELECT Id FROM Opportunity WHERE CloseDate = '2024-01-01'", "INVALID_FIELD"},
		{"SELECT Id FROM Contact WHERE Owner.Name = 'x'", "INVALID_FIELD"},
		{"SELECT Id FROM Widget__c", "INVALID_TYPE"},
		{"SELECT Id FROM Account WHERE", "MALFORMED_QUERY"},
		{"SELECT Id FROM Account WHERE Name = 'x", "MALFORMED_QUERY"},
		{"SELECT Id FROM Account WHERE Name = 'a\\qb'", "MALFORMED_QUERY"},
		{"SELECT Id, id FROM Account", "MALFORMED_QUERY"},
		{"SELECT Id FROM Account; DELETE", "MALFORMED_QUERY"},
		{"DELETE FROM Account", "MALFORMED_QUERY"},
		{"", "MALFORMED_QUERY"},
	}
	for _, tt := range bad {
		status, body := api(t, s, "GET", q(tt.soql), "")
		if status != 400 || errorCode(t, body) != tt.code {
			t.Errorf("%s = %d %s, want 400 %s", tt.soql, status, body, tt.code)
		}
	}
	if status, body := api(t, s, "GET", "/services/data/v12.0/query?q=SELECT+Id+FROM+Account", ""); status != 410 {
		t.Errorf("retired version = %d %s, want 410", status, body)
	}
}

// TestAPIVersions: Salesforce retired versions 7.0 to 30.0 in Summer '25 (410 Gone) and serves
// 31.0 up to the current release (67.0, Summer '26).
func TestAPIVersions(t *testing.T) {
	t.Parallel()
	s := newServer()
	for v, want := range map[string]int{"v20.0": 410, "v25.0": 410, "v30.0": 410, "v31.0": 200, "v61.0": 200,
		"v64.0": 200, "v65.0": 200, "v66.0": 200, "v67.0": 200, "v68.0": 404, "v99.0": 404} {
		if status, body := api(t, s, "GET", "/services/data/"+v+"/query?q=SELECT+Id+FROM+Account", ""); status != want {
			t.Errorf("%s = %d %s, want %d", v, status, body, want)
		}
	}
}

// TestQueryDocumentedSOQL: what Salesforce documents and accepts, the fake accepts: \uXXXX and
// upper-case escapes, every date literal, relationships beyond Account., the Order and Group
// objects.
func TestQueryDocumentedSOQL(t *testing.T) {
	t.Parallel()
	s := newServer()
	now := time.Date(2024, 3, 20, 12, 0, 0, 0, time.UTC) // a Wednesday
	s.SetClock(func() time.Time { return now })
	s.Add("Opportunity", map[string]any{"Name": "March deal", "StageName": "Prospecting", "CloseDate": "2024-03-05", "AccountId": Globex})
	s.Add("Opportunity", map[string]any{"Name": "Last week", "StageName": "Prospecting", "CloseDate": "2024-03-12", "AccountId": Globex})
	s.Add("Opportunity", map[string]any{"Name": "Next quarter", "StageName": "Prospecting", "CloseDate": "2024-05-02", "AccountId": Globex})
	s.Add("Account", map[string]any{"Name": "Caf\u00e9 \"Ü\""})
	tests := []struct {
		soql  string
		names []string
	}{
		{`SELECT Name FROM Account WHERE Name = 'Caf\u00e9 \"\u00dc\"'`, []string{"Caf\u00e9 \"Ü\""}},
		{`SELECT Name FROM Account WHERE Name = 'Globex\N' OR Name = 'Initech'`, []string{"Initech"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate = THIS_MONTH ORDER BY Name", []string{"Globex Doomsday Device", "Last week", "March deal"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate = LAST_WEEK", []string{"Last week"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate = N_DAYS_AGO:15", []string{"March deal"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate = NEXT_QUARTER ORDER BY Name", []string{"Acme Anvils", "Next quarter"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate = N_QUARTERS_AGO:1", []string{"Acme Rockets"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate = LAST_N_FISCAL_YEARS:1", []string{"Acme Rockets"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate = N_MONTHS_AGO:2", []string{"Initech TPS Reports"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate > NEXT_N_DAYS:30 ORDER BY CloseDate", []string{"Next quarter", "Acme Anvils"}},
		{"SELECT Name FROM Contact WHERE Account.Name = 'Globex'", []string{"Hank Scorpio"}},
		{"SELECT Name FROM Group WHERE Type = 'Regular'", []string{"Sales Team"}},
	}
	for _, tt := range tests {
		if _, names, ok := queryNames(t, s, tt.soql); ok && strings.Join(names, "|") != strings.Join(tt.names, "|") {
			t.Errorf("%s = %v, want %v", tt.soql, names, tt.names)
		}
	}

	// Nested relationships come back nested.
	status, body := api(t, s, "GET", q("SELECT Subject, Contact.Name, Contact.Account.Name FROM Case"), "")
	var res struct {
		Records []struct {
			Contact struct {
				Name    string
				Account struct{ Name string }
			}
		}
	}
	if err := json.Unmarshal(body, &res); status != 200 || err != nil || len(res.Records) != 1 ||
		res.Records[0].Contact.Name != "Wile E. Coyote" || res.Records[0].Contact.Account.Name != "Acme Corporation" {
		t.Errorf("Case with Contact.Account.Name = %d %s", status, body)
	}
	status, body = api(t, s, "GET", q("SELECT Id, OrderNumber, Account.Name FROM Order WHERE Status = 'Draft'"), "")
	if status != 200 || !strings.Contains(string(body), `"Name":"Acme Corporation"`) || !strings.Contains(string(body), AcmeOrder) {
		t.Errorf("Order query = %d %s", status, body)
	}

	bad := []struct{ soql, code string }{
		{"SELECT Id FROM Opportunity WHERE CloseDate = N_N_DAYS:3", "INVALID_FIELD"},
		{"SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_DAYS_AGO:3", "INVALID_FIELD"},
		{"SELECT Id FROM Account WHERE Name = 'a\\u00zz'", "MALFORMED_QUERY"},
		{"SELECT Id FROM Account WHERE Name = 'a\\u12'", "MALFORMED_QUERY"},
		{"SELECT Id FROM Contact WHERE Owner.Name = 'x'", "INVALID_FIELD"},
		{"SELECT Group FROM Account", "MALFORMED_QUERY"},
	}
	for _, tt := range bad {
		status, body := api(t, s, "GET", q(tt.soql), "")
		if status != 400 || errorCode(t, body) != tt.code {
			t.Errorf("%s = %d %s, want 400 %s", tt.soql, status, body, tt.code)
		}
	}
}

// queryNames runs soql and returns the result and the records' Name values; ok is false (and
// the test failed) when the query did not succeed or a record has no attributes.
func queryNames(t *testing.T, s *Server, soql string) (QueryResult, []string, bool) {
	t.Helper()
	status, body := api(t, s, "GET", q(soql), "")
	var res QueryResult
	if err := json.Unmarshal(body, &res); status != 200 || err != nil {
		t.Errorf("%s = %d %s", soql, status, body)
		return res, nil, false
	}
	var names []string
	for _, r := range res.Records {
		name, _ := r["Name"].(string)
		names = append(names, name)
		if attrs, _ := r["attributes"].(map[string]any); attrs["type"] == nil {
			t.Errorf("%s: record without attributes", soql)
			return res, nil, false
		}
	}
	return res, names, true
}

func TestQueryPaging(t *testing.T) {
	t.Parallel()
	s := newServer()
	s.SetBatchSize(2)
	for range 3 {
		s.Add("Account", map[string]any{"Name": "Extra"})
	}
	status, body := api(t, s, "GET", q("SELECT Id FROM Account"), "")
	var page QueryResult
	json.Unmarshal(body, &page)
	seen := map[string]bool{}
	pages := 1
	for {
		if status != 200 || page.TotalSize != 6 {
			t.Fatalf("page %d = %d %s", pages, status, body)
		}
		for _, r := range page.Records {
			seen[r["Id"].(string)] = true
		}
		if page.Done {
			break
		}
		if !strings.HasPrefix(page.NextRecordsURL, "/services/data/v61.0/query/01gD") {
			t.Fatalf("nextRecordsUrl = %s", page.NextRecordsURL)
		}
		status, body = api(t, s, "GET", page.NextRecordsURL, "")
		page = QueryResult{}
		json.Unmarshal(body, &page)
		pages++
	}
	if pages != 3 || len(seen) != 6 {
		t.Errorf("%d pages, %d distinct records; want 3 and 6", pages, len(seen))
	}
	for _, loc := range []string{"01gD00000000000099-2", "01gD00000000000001-0", "01gD00000000000001-99", "x"} {
		if status, body := api(t, s, "GET", "/services/data/v61.0/query/"+loc, ""); status != 400 || errorCode(t, body) != "INVALID_QUERY_LOCATOR" {
			t.Errorf("locator %s = %d %s", loc, status, body)
		}
	}
}

func TestSObjects(t *testing.T) {
	t.Parallel()
	s := newServer()
	base := "/services/data/v61.0/sobjects/"
	status, body := api(t, s, "GET", base+"Account/"+Acme+"?fields=Name,Industry", "")
	var rec map[string]any
	json.Unmarshal(body, &rec)
	if status != 200 || rec["Name"] != "Acme Corporation" || rec["Id"] != Acme || rec["Website"] != nil || rec["attributes"] == nil {
		t.Errorf("GET = %d %s", status, body)
	}
	if status, _ := api(t, s, "GET", base+"Account/"+Acme[:15], ""); status != 200 {
		t.Errorf("GET by 15-character ID = %d", status)
	}
	for path, code := range map[string]string{
		base + "Account/001D00000000099AAA": "NOT_FOUND", base + "Account/" + Coyote: "NOT_FOUND",
		base + "Widget/" + Acme: "NOT_FOUND", base + "Account/" + Acme + "?fields=Nope": "INVALID_FIELD",
	} {
		if _, body := api(t, s, "GET", path, ""); errorCode(t, body) != code {
			t.Errorf("GET %s = %s, want %s", path, body, code)
		}
	}

	status, body = api(t, s, "POST", base+"Opportunity", `{"Name":"New","StageName":"Prospecting","CloseDate":"2025-01-31","AccountId":"`+Globex+`"}`)
	var created CreateResult
	json.Unmarshal(body, &created)
	if status != 201 || !created.Success || !strings.HasPrefix(created.ID, "006") || created.Errors == nil {
		t.Fatalf("POST = %d %s", status, body)
	}
	writes := s.Writes()
	for body, code := range map[string]string{
		`{"Name":"x"}`: "REQUIRED_FIELD_MISSING",
		`{"Name":"x","StageName":"Won","CloseDate":"2025-01-31"}`:                                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
		`{"Name":"x","StageName":"Prospecting","CloseDate":"soon"}`:                                      "JSON_PARSER_ERROR",
		`{"Name":"x","StageName":"Prospecting","CloseDate":"2025-01-31","IsWon":true}`:                   "INVALID_FIELD_FOR_INSERT_UPDATE",
		`{"Name":"x","StageName":"Prospecting","CloseDate":"2025-01-31","Nope":1}`:                       "INVALID_FIELD",
		`{"Name":"x","StageName":"Prospecting","CloseDate":"2025-01-31","Amount":"lots"}`:                "JSON_PARSER_ERROR",
		`{"Name":"x","StageName":"Prospecting","CloseDate":"2025-01-31","AccountId":"` + Coyote + `"}`:   "INVALID_CROSS_REFERENCE_KEY",
		`{"Name":"` + strings.Repeat("n", 256) + `","StageName":"Prospecting","CloseDate":"2025-01-31"}`: "STRING_TOO_LONG",
		`[1]`: "JSON_PARSER_ERROR",
	} {
		if status, got := api(t, s, "POST", base+"Opportunity", body); status != 400 || errorCode(t, got) != code {
			t.Errorf("POST %.60s = %d %s, want 400 %s", body, status, got, code)
		}
	}
	if s.Writes() != writes {
		t.Error("a refused POST counted as a write")
	}

	// PATCH, then If-Unmodified-Since.
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	if status, body := api(t, s, "PATCH", base+"Opportunity/"+OppProspecting, `{"StageName":"Closed Won"}`); status != 204 || len(body) != 0 {
		t.Errorf("PATCH = %d %s", status, body)
	}
	if r, _ := s.Record("Opportunity", OppProspecting); r["IsClosed"] != true || r["IsWon"] != true || r["LastModifiedDate"] != "2025-03-01T12:00:00.000+0000" {
		t.Errorf("after PATCH: %v", r)
	}
	hdr := func(since time.Time) map[string]string {
		return map[string]string{"Authorization": "Bearer " + testToken, "If-Unmodified-Since": since.Format(http.TimeFormat)}
	}
	if res, body := do(t, s, "PATCH", base+"Opportunity/"+OppProspecting, `{"Amount":1}`, hdr(now.Add(-time.Second))); res.StatusCode != 412 || errorCode(t, body) != "PRECONDITION_FAILED" {
		t.Errorf("stale If-Unmodified-Since = %d %s", res.StatusCode, body)
	}
	if res, _ := do(t, s, "PATCH", base+"Opportunity/"+OppProspecting, `{"Amount":1}`, hdr(now)); res.StatusCode != 204 {
		t.Errorf("current If-Unmodified-Since = %d", res.StatusCode)
	}
	if status, _ := api(t, s, "DELETE", base+"Opportunity/"+OppProspecting, ""); status != 405 {
		t.Errorf("DELETE = %d, want 405", status)
	}
}

// What the server remembers stays bounded however many requests it serves.
func TestBounded(t *testing.T) {
	t.Parallel()
	s := newServer()
	s.SetAPILimit(1 << 30)
	s.SetBatchSize(1)
	for range MaxCursors + 10 {
		api(t, s, "GET", q("SELECT Id FROM Account"), "")
	}
	s.mu.Lock()
	cursors := len(s.cursors)
	s.mu.Unlock()
	if cursors > MaxCursors {
		t.Errorf("%d cursors kept, want at most %d", cursors, MaxCursors)
	}
	for range 2*MaxKept + 10 - len(s.Requests()) {
		api(t, s, "GET", "/nowhere", "")
	}
	if n := len(s.Requests()); n > 2*MaxKept {
		t.Errorf("%d requests kept, want at most %d", n, 2*MaxKept)
	}
}
