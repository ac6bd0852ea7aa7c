package host_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/awsfake"
)

// A grant names its credential as aws-sm:NAME#KEY. The host reads it from (a SigV4-checking
// fake of) Secrets Manager through the official SDK; the admin rotates the secret there
// (PutSecretValue) and the upstream starts refusing the old key with 401. Both caches — the
// host's and the AWS source's own — hold for an hour, yet the host re-reads the secret at once,
// past the source's cache, and replays the call once with the new key. Neither key reaches the
// result (the upstream echoes the header back), the logs or the audit.
func TestAWSSecretRotatedAfter401(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDHOST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "host-secret-access-key")
	fake := &awsfake.Server{Region: "eu-west-1", Keys: map[string]string{"AKIDHOST": "host-secret-access-key"}}
	sm := httptest.NewServer(fake)
	t.Cleanup(sm.Close)
	const one, two = "sk-AWS-CANARY-one-7f3a", "sk-AWS-CANARY-two-91bc"
	fake.PutSecret("prod/upstream", `{"api_key":"`+one+`","note":"x"}`)

	var mu sync.Mutex
	valid, seen := one, []string{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got := r.Header.Get("Authorization")
		seen = append(seen, got)
		if got != "Bearer "+valid {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"you_sent": got}) // a careless upstream
	}))
	t.Cleanup(up.Close)

	src, err := secret.NewAWS(context.Background(), &secret.AWSConfig{Region: "eu-west-1", Endpoint: sm.URL, CacheTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, rec := hosttest.New(t, host.Config{Secrets: secret.Mux{"aws-sm": src}, SecretTTL: time.Hour})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"*"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "aws-sm:prod/upstream#api_key"}),
		Upstreams:   map[string]string{"https://api.example.test": up.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	req := abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/v1/x", Credential: "token"}
	var results []abi.HTTPResponse
	resp := fetch(t, h, req)
	results = append(results, resp)
	if resp.Status != 200 {
		t.Fatalf("first request: status %d", resp.Status)
	}
	fake.PutSecret("prod/upstream", `{"api_key":"`+two+`","note":"x"}`) // rotation at the source
	mu.Lock()
	valid = two
	mu.Unlock()
	resp = fetch(t, h, req)
	results = append(results, resp)
	if resp.Status != 200 {
		t.Fatalf("request after rotation: status %d, want the 401 answered by a re-read and one replay (%d reads)", resp.Status, fake.Calls("GetSecretValue"))
	}
	resp = fetch(t, h, req)
	results = append(results, resp)
	if resp.Status != 200 {
		t.Fatalf("next request: status %d", resp.Status)
	}

	mu.Lock()
	want := []string{"Bearer " + one, "Bearer " + one, "Bearer " + two, "Bearer " + two}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("upstream saw %q, want %q (one replay with the new key, then the new key)", seen, want)
	}
	mu.Unlock()
	if n := fake.Calls("GetSecretValue"); n != 2 {
		t.Errorf("GetSecretValue called %d times, want 2 (first use, then once after the 401)", n)
	}
	events, _ := json.Marshal(rec.Audit.Events())
	res, _ := json.Marshal(results)
	for _, r := range results {
		res = append(res, r.Body...)
	}
	if !strings.Contains(string(res), secret.Redacted) {
		t.Errorf("results %s: the echoed header is not redacted, so the scrub was not exercised", res)
	}
	for _, k := range []string{one, two, "host-secret-access-key"} {
		if strings.Contains(string(res), k) || strings.Contains(string(events), k) || strings.Contains(rec.Logs(), k) {
			t.Errorf("%s reached a result, the audit log or the logs", k)
		}
	}
}
