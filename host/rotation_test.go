package host_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
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
)

// An upstream rotates its key and refuses the old one with 401; the admin rewrote the mounted
// secret file. The host reads the file again at once (not after its TTL) and replays the
// request once, so the call succeeds with the new key.
func TestRotatedFileSecretAfter401(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "token")
	os.WriteFile(keyFile, []byte("key-one-AAAA"), 0o600)
	var mu sync.Mutex
	valid, seen := "key-one-AAAA", []string{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer "+valid {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(up.Close)

	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, rec := hosttest.New(t, host.Config{Secrets: secret.Mux{"file": secret.File{}}, SecretTTL: time.Hour})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"*"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "file:" + keyFile}),
		Upstreams:   map[string]string{"https://api.example.test": up.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	req := abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/v1/x", Credential: "token"}
	if resp := fetch(t, h, req); resp.Status != 200 {
		t.Fatalf("first request: status %d", resp.Status)
	}
	mu.Lock()
	valid = "key-two-BBBB"
	mu.Unlock()
	os.WriteFile(keyFile, []byte("key-two-BBBB"), 0o600)
	if resp := fetch(t, h, req); resp.Status != 200 {
		t.Fatalf("request after rotation: status %d, want the 401 answered by a replay with the new key", resp.Status)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"Bearer key-one-AAAA", "Bearer key-one-AAAA", "Bearer key-two-BBBB"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("upstream saw %q, want %q (one replay with the new key)", seen, want)
	}
	b, _ := json.Marshal(rec.Audit.Events())
	for _, k := range []string{"key-one-AAAA", "key-two-BBBB"} {
		if strings.Contains(string(b), k) || strings.Contains(rec.Logs(), k) {
			t.Errorf("%s reached the audit log or the logs", k)
		}
	}
}
