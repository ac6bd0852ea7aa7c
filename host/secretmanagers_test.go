package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/1Password/connect-sdk-go/onepassword"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/dopplertest"
	"github.com/airlock-dev/airlock/internal/opconnecttest"
)

// secretManager is a secret manager as a grant's user sees it: a reference to one secret, a
// way to rotate it there, and the manager's own access token.
type secretManager struct {
	scheme  string
	ref     string // the grant's reference to the secret
	missing string // a reference to a secret that does not exist
	denied  string // a reference the manager's token may not read
	token   string // the manager's own access token
	src     func(ttl time.Duration) secret.Source
	rotate  func(value string)
}

func secretManagers(t *testing.T) []secretManager {
	const opTok, dopTok = "op-connect-TOKEN-canary-e2e", "dp.st.prd.TOKEN-canary-e2e"
	conn := opconnecttest.Start(t, opTok)
	vault, item := opconnecttest.ID("vprod"), opconnecttest.ID("islack")
	conn.AddVault(vault, "Production", true)
	conn.AddVault(opconnecttest.ID("vhr"), "HR", false)
	conn.AddItem(&onepassword.Item{ID: item, Title: "Slack bot", Vault: onepassword.ItemVault{ID: vault},
		Fields: []*onepassword.ItemField{{ID: "credential", Type: "CONCEALED", Label: "credential"}}})
	dop := dopplertest.Start(t)
	dop.SetTokens(map[string]string{dopTok: "backend/prd"})
	creds := func(name, tok string) secret.Source {
		return secret.Env{Lookup: func(n string) (string, bool) { return tok, n == name }}
	}
	return []secretManager{
		{
			scheme: "op", ref: "op://Production/Slack bot/credential", token: opTok,
			missing: "op://Production/Slack bot/password", denied: "op://" + opconnecttest.ID("vhr") + "/Payroll/password",
			src: func(ttl time.Duration) secret.Source {
				o, err := secret.NewOnePassword(&secret.OnePasswordConfig{Host: conn.URL, Token: "env:OP_CONNECT_TOKEN", Secrets: creds("OP_CONNECT_TOKEN", opTok), CacheTTL: ttl})
				if err != nil {
					t.Fatal(err)
				}
				return o
			},
			rotate: func(v string) { conn.SetField(vault, item, "credential", v) },
		},
		{
			scheme: "doppler", ref: "doppler:backend/prd/SLACK_BOT_TOKEN", token: dopTok,
			missing: "doppler:backend/prd/MISSING", denied: "doppler:backend/stg/SLACK_BOT_TOKEN",
			src: func(ttl time.Duration) secret.Source {
				d, err := secret.NewDoppler(&secret.DopplerConfig{API: dop.URL, Token: "env:DOPPLER_TOKEN", Secrets: creds("DOPPLER_TOKEN", dopTok), CacheTTL: ttl})
				if err != nil {
					t.Fatal(err)
				}
				return d
			},
			rotate: func(v string) { dop.Set("backend/prd", "SLACK_BOT_TOKEN", v) },
		},
	}
}

// rotatingUpstream accepts the bearer tokens it is told to, and echoes the Authorization header
// it received in its body (a careless upstream), so the scrubbing is seen in results.
type rotatingUpstream struct {
	*httptest.Server
	mu    sync.Mutex
	valid map[string]bool
	seen  []string
}

func newRotatingUpstream(t *testing.T) *rotatingUpstream {
	u := &rotatingUpstream{valid: map[string]bool{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		defer u.mu.Unlock()
		auth := r.Header.Get("Authorization")
		u.seen = append(u.seen, auth)
		if !u.valid[strings.TrimPrefix(auth, "Bearer ")] {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":"invalid_auth","got":%q}`, auth)
			return
		}
		fmt.Fprintf(w, `{"ok":true,"you_sent":%q}`, auth)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *rotatingUpstream) accept(tokens ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	clear(u.valid)
	for _, t := range tokens {
		u.valid[t] = true
	}
}

func (u *rotatingUpstream) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.seen
	u.seen = nil
	return s
}

// loadWithGrant loads the hostile connector with a grant written as an admin writes it, its
// credential "token" naming ref.
func loadWithGrant(t *testing.T, h *host.Host, ref, upstream string) {
	t.Helper()
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	g, err := manifest.ParseGrant("hostile.grant.yaml", fmt.Appendf(nil, `connector: hostile
tools: ["*"]
scopes: [test]
hosts: ["*"]
credentials:
  token: %q
upstreams:
  "https://api.example.test": %q
`, ref, upstream))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
}

// A grant names its credential in 1Password or Doppler. The host reads it there, injects it,
// scrubs it from what the upstream echoes; when the secret is rotated and the upstream refuses
// the old value with 401, the host reads the manager again at once — past both its own cache
// and the source's, each kept for an hour here — and replays the request once with the new
// value. Neither value nor the manager's token reaches a result, the audit log or the logs.
func TestSecretManagerRotationAfter401EndToEnd(t *testing.T) {
	for _, sm := range secretManagers(t) {
		t.Run(sm.scheme, func(t *testing.T) {
			v1, v2 := "xoxb-"+sm.scheme+"-one-canary-1111", "xoxb-"+sm.scheme+"-two-canary-2222"
			sm.rotate(v1)
			up := newRotatingUpstream(t)
			up.accept(v1)
			h, rec := hosttest.New(t, host.Config{Secrets: secret.Mux{sm.scheme: sm.src(time.Hour)}, SecretTTL: time.Hour})
			loadWithGrant(t, h, sm.ref, up.URL)
			req := abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/v1/x", Credential: "token"}
			var results []string

			resp := fetch(t, h, req)
			results = append(results, string(resp.Body))
			if resp.Status != 200 || !strings.Contains(string(resp.Body), secret.Redacted) {
				t.Fatalf("first call: status %d, body %s; want 200 with the echoed token scrubbed", resp.Status, resp.Body)
			}
			if got := up.take(); len(got) != 1 || got[0] != "Bearer "+v1 {
				t.Fatalf("upstream saw %q, want the value from %s", got, sm.ref)
			}

			// Rotated in the manager; the upstream now refuses the old value.
			sm.rotate(v2)
			up.accept(v2)
			resp = fetch(t, h, req)
			results = append(results, string(resp.Body))
			if resp.Status != 200 {
				t.Fatalf("call after rotation: status %d, want the 401 answered by one replay with the new value", resp.Status)
			}
			if got, want := up.take(), []string{"Bearer " + v1, "Bearer " + v2}; strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("upstream saw %q, want %q (one replay with the new value)", got, want)
			}

			// The manager keeps the old value (a rotation not done yet): the 401 reaches the
			// plugin after one re-read, with no replay and no loop.
			up.accept("something-else")
			resp = fetch(t, h, req)
			results = append(results, string(resp.Body))
			if got := up.take(); resp.Status != 401 || len(got) != 1 {
				t.Errorf("refused and not rotated: status %d, upstream saw %d requests; want 401 after one", resp.Status, len(got))
			}

			b, _ := json.Marshal(rec.Audit.Events())
			for _, leak := range []string{v1, v2, sm.token} {
				for where, text := range map[string]string{"a result": strings.Join(results, "\n"), "the audit log": string(b), "the logs": rec.Logs()} {
					if strings.Contains(text, leak) {
						t.Errorf("%s contains %q", where, leak)
					}
				}
			}
		})
	}
}

// With a short TTL everywhere, a value rotated in the manager is used on the next call without
// any 401: the upstream accepts both values during the rotation.
func TestSecretManagerRotationAfterTTLEndToEnd(t *testing.T) {
	for _, sm := range secretManagers(t) {
		t.Run(sm.scheme, func(t *testing.T) {
			v1, v2 := "key-"+sm.scheme+"-ttl-one-3333", "key-"+sm.scheme+"-ttl-two-4444"
			sm.rotate(v1)
			up := newRotatingUpstream(t)
			up.accept(v1, v2)
			h, _ := hosttest.New(t, host.Config{Secrets: secret.Mux{sm.scheme: sm.src(-1)}, SecretTTL: time.Nanosecond})
			loadWithGrant(t, h, sm.ref, up.URL)
			req := abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/v1/x", Credential: "token"}
			fetch(t, h, req)
			sm.rotate(v2)
			fetch(t, h, req)
			if got, want := up.take(), []string{"Bearer " + v1, "Bearer " + v2}; strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("upstream saw %q, want %q: the rotated value on the next call after the TTL", got, want)
			}
		})
	}
}

// A grant naming a missing secret, or one the manager's token may not read: the tools answer
// credential_unavailable with a message saying what is wrong and where, without the token.
func TestSecretManagerUnavailableEndToEnd(t *testing.T) {
	for _, sm := range secretManagers(t) {
		for _, tc := range []struct {
			name, ref, want string
		}{
			{"missing", sm.missing, map[string]string{"op": `no field "password"`, "doppler": "there is no secret MISSING"}[sm.scheme]},
			{"denied", sm.denied, map[string]string{"op": "give the Connect token access to that vault", "doppler": "a Doppler service token reads only the one project and config"}[sm.scheme]},
		} {
			t.Run(sm.scheme+"/"+tc.name, func(t *testing.T) {
				up := newRotatingUpstream(t)
				h, rec := hosttest.New(t, host.Config{Secrets: secret.Mux{sm.scheme: sm.src(-1)}})
				loadWithGrant(t, h, tc.ref, up.URL)
				args, _ := json.Marshal(abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/v1/x", Credential: "token"})
				res := call(h, "hostile.fetch", string(args))
				if res.OK || res.Error == nil {
					t.Fatalf("call with %s succeeded, want credential_unavailable", tc.ref)
				}
				msg := res.Error.Code + ": " + res.Error.Message
				for _, want := range []string{"credential_unavailable", tc.want, tc.ref, "in the secret manager"} {
					if !strings.Contains(msg, want) {
						t.Errorf("error = %s\nwant it to contain %q", msg, want)
					}
				}
				if got := up.take(); len(got) != 0 {
					t.Errorf("the upstream was called without a credential: %q", got)
				}
				b, _ := json.Marshal(rec.Audit.Events())
				for _, text := range []string{msg, string(b), rec.Logs()} {
					if strings.Contains(text, sm.token) {
						t.Errorf("the manager's token leaked: %s", text)
					}
				}
			})
		}
	}
}
