package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// authRecorder records the Authorization header of every request before the fake sees it.
type authRecorder struct {
	next http.Handler
	mu   sync.Mutex
	seen []string
}

func (a *authRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.seen = append(a.seen, r.Header.Get("Authorization"))
	a.mu.Unlock()
	a.next.ServeHTTP(w, r)
}

func (a *authRecorder) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// A leaked key is rotated with `airlock secret set` while a server runs on the same SQLite
// state: the server's very next call sends the new key upstream; `airlock secret rm` stops the
// next call from sending any. Two host instances share the state file, as the CLI and a server do.
func TestSecretSetReachesRunningServer(t *testing.T) {
	w := newGrantWorld(t) // the CLI stored slack_bot = grantCanary
	w.install(t)
	rec := &authRecorder{next: w.fake}
	up := httptest.NewServer(rec)
	t.Cleanup(up.Close)
	routes := filepath.Join(w.dir, "routes.yaml")
	os.WriteFile(routes, []byte(fmt.Sprintf("connector: slack\nupstreams: {\"https://slack.com\": %q}\n", up.URL)), 0o600)
	w.must(t, exitOK, "grant", "slack", "--file", routes, "--tools", "*", "--scopes", "*", "--hosts", "*", "--credential", "bot_token=store:slack_bot")

	// The server: a host on the state file, as `airlock serve` opens it.
	var g globals
	fs := newFlagSet(&env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}, "serve", "", "")
	g.register(fs)
	if err := fs.Parse(w.g); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	rt, err := g.openRuntime(context.Background(), &env{stdout: &logs, stderr: &logs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.h.Close(context.Background()) })
	call := func() *host.Result {
		return rt.h.Call(context.Background(), host.CallRequest{Tool: "slack.list_channels", Arguments: json.RawMessage(`{}`)})
	}
	if res := call(); !res.OK {
		t.Fatalf("first call: %+v", res.Error)
	}
	if got := rec.list(); len(got) != 1 || got[0] != "Bearer "+grantCanary {
		t.Fatalf("upstream saw %q, want the first key", got)
	}

	// The CLI, another host instance on the same file, rotates the key.
	const rotated = "xoxb-rotated-after-leak-7777"
	withStdin(t, rotated+"\n")
	w.must(t, exitOK, "secret", "set", "slack_bot")
	call()
	if got := rec.list(); len(got) != 2 || got[1] != "Bearer "+rotated {
		t.Fatalf("upstream saw %q after `secret set`, want the rotated key on the very next call", got)
	}

	// Removing it stops the next call from sending anything, and says what to do.
	w.must(t, exitOK, "secret", "rm", "slack_bot")
	res := call()
	if res.OK || res.Error.Code != "credential_unavailable" || !strings.Contains(res.Error.Message, "airlock secret set slack_bot") {
		t.Fatalf("call after `secret rm` = %+v, want credential_unavailable telling the admin to set it", res.Error)
	}
	if got := rec.list(); len(got) != 2 {
		t.Fatalf("upstream saw %q: a request went out after the secret was removed", got)
	}
	if strings.Contains(logs.String(), rotated) || strings.Contains(logs.String(), grantCanary) {
		t.Errorf("a key reached the server's log: %s", logs.String())
	}
}

// BenchmarkStoreSecretRead is what a store: reference costs per outbound request that uses it:
// one indexed row read and an AES-GCM open (go test -bench StoreSecretRead ./cmd/airlock).
func BenchmarkStoreSecretRead(b *testing.B) {
	for _, backend := range []struct {
		name string
		dsn  func(b *testing.B) string
	}{
		{"sqlite", func(b *testing.B) string { return "sqlite:" + filepath.Join(b.TempDir(), "state.db") }},
		{"postgres", func(b *testing.B) string { return testenv.Postgres(b) }},
	} {
		b.Run(backend.name, func(b *testing.B) {
			ctx := context.Background()
			st, err := store.Open(ctx, backend.dsn(b))
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			key := make([]byte, 32)
			ss, err := secret.OpenStore(ctx, storeBackend{st}, key)
			if err != nil {
				b.Fatal(err)
			}
			if err := ss.Set(ctx, "bench_key", secret.New("xoxb-bench")); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := ss.Resolve(ctx, "store:bench_key"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
