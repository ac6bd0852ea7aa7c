package host_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/fakesalesforce"
)

// TestSalesforceJWTBearerEndToEnd runs the shipped manifest unchanged: the host signs an RS256
// assertion with a key only it holds, exchanges it at the (routed) token endpoint, learns the
// instance URL from the token response, and the plugin reaches only that instance with the
// token injected. The private key and the token appear in no result, log or audit record.
func TestSalesforceJWTBearerEndToEnd(t *testing.T) {
	fake, u, m, wasm, src, keyPEM := sfJWTSetup(t, "integration@acme.example")
	h, rec := hosttest.New(t, host.Config{Secrets: src})
	g := &manifest.Grant{Connector: "salesforce", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: map[string]manifest.CredentialGrant{"salesforce": {
			ClientID: "3MVG9-consumer", Username: "integration@acme.example", PrivateKey: "env:SF_KEY"}},
		PrivateTargets: []string{"127.0.0.1/32"},
		Upstreams: map[string]string{
			"https://login.salesforce.com":    u, // the token endpoint
			fakesalesforce.DefaultInstanceURL: u, // the instance the token response names
		}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	var results []*host.Result
	for range 3 {
		res := h.Call(context.Background(), host.CallRequest{Tool: "salesforce.get_record", Agent: "a",
			Arguments: []byte(`{"object":"Account","id":"` + fakesalesforce.Acme + `","fields":["Name"]}`)})
		results = append(results, res)
		if !res.OK {
			t.Fatalf("get_record: %+v", res.Error)
		}
		if !strings.Contains(string(res.Data), "Acme Corporation") {
			t.Fatalf("get_record = %s", res.Data)
		}
	}
	if n := fake.TokensIssued(); n != 1 {
		t.Errorf("token endpoint issued %d tokens for 3 calls, want 1 (the token is cached)", n)
	}

	// Salesforce ends the session early (401 INVALID_SESSION_ID): the host mints a new token and
	// replays the request once; the agent never notices.
	fake.ExpireTokens()
	res := h.Call(context.Background(), host.CallRequest{Tool: "salesforce.get_record", Agent: "a",
		Arguments: []byte(`{"object":"Account","id":"` + fakesalesforce.Acme + `","fields":["Name"]}`)})
	results = append(results, res)
	if !res.OK {
		t.Fatalf("after the session expired: %+v", res.Error)
	}
	if n := fake.TokensIssued(); n != 2 {
		t.Errorf("token endpoint issued %d tokens, want 2 (one refresh after INVALID_SESSION_ID)", n)
	}
	seen := map[string]bool{}
	for _, r := range fake.Requests() {
		if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
			seen[strings.TrimPrefix(a, "Bearer ")] = true
		}
	}
	if len(seen) != 2 {
		t.Fatalf("the instance saw %d distinct bearer tokens, want 2 (before and after the refresh)", len(seen))
	}
	events, _ := json.Marshal(rec.Audit.Events())
	leaks := []string{"PRIVATE KEY", keyPEM[40:80]}
	for tok := range seen {
		leaks = append(leaks, tok)
	}
	for _, leak := range leaks {
		for i, r := range results {
			if b, _ := json.Marshal(r); strings.Contains(string(b), leak) {
				t.Errorf("result %d holds a secret", i)
			}
		}
		if strings.Contains(string(events), leak) || strings.Contains(rec.Logs(), leak) {
			t.Errorf("a secret (%.12q…) reached the audit log or the logs", leak)
		}
	}
}
