package host_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/oauthtest"
)

// noticeLog collects what a host hands Config.OnNotice.
type noticeLog struct {
	mu  sync.Mutex
	got []host.Notice
}

func (l *noticeLog) add(n host.Notice) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, n)
}

func (l *noticeLog) events(event string) []host.Notice {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(l.got), func(n host.Notice) bool { return n.Event != event })
}

// A connection whose refresh the provider refuses (invalid_grant) is marked needs_reauth and
// notified once, naming the connector, slot and subject and saying how to reconnect; the calls
// after it, which fail without asking the provider, notify nothing more.
func TestNeedsReauthNotifies(t *testing.T) {
	ctx := context.Background()
	idp := oauthtest.New(t)
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var log noticeLog
	api := newUpstream(t)
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	for i := range m.Credentials {
		if m.Credentials[i].Name == "token" {
			m.Credentials[i].Kind = manifest.KindOAuth2AuthorizationCode
			m.Credentials[i].OAuth = &manifest.OAuth{AuthorizeURL: "https://login.example.test/auth", TokenURL: "https://login.example.test/token", Scopes: []string{"api"}}
		}
	}
	key := make([]byte, 32)
	rand.Read(key)
	sealer, err := secret.OpenStore(ctx, &secret.MemoryBackend{}, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("WEB_CLIENT_SECRET", oauthtest.ClientSecret)
	h, _ := hosttest.New(t, host.Config{Store: st, Sealer: sealer, OnNotice: log.add})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"*"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: map[string]manifest.CredentialGrant{"token": {ClientID: oauthtest.WebClientID, ClientSecret: "env:WEB_CLIENT_SECRET"}},
		Upstreams:   map[string]string{"https://api.example.test": api.URL, "https://login.example.test": idp.URL}}
	if err := h.LoadModule(ctx, m, wasm, g); err != nil {
		t.Fatal(err)
	}
	// A connection whose access token expired and whose refresh token the provider no longer
	// knows (revoked at the provider): the refresh is refused with invalid_grant.
	sealed, err := sealer.Seal("airlock/connection/v1\x00hostile\x00token\x00acme",
		[]byte(`{"access_token":"expired-access","refresh_token":"revoked-refresh","expiry":"2001-01-01T00:00:00Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutConnection(ctx, store.Connection{Connector: "hostile", Slot: "token", Subject: "acme", Status: "connected", Token: sealed}); err != nil {
		t.Fatal(err)
	}
	args, _ := json.Marshal(abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/v1/x", Credential: "token"})
	for range 3 {
		h.Call(ctx, host.CallRequest{Tool: "hostile.fetch", Arguments: args, Agent: "bot", Subject: "acme"})
	}
	got := log.events(host.NoticeConnectionNeedsReauth)
	if len(got) != 1 {
		t.Fatalf("%d needs_reauth notices, want 1: %+v", len(got), log.got)
	}
	if n := got[0]; n.Connector != "hostile" || n.Slot != "token" || n.Subject != "acme" || n.ID == "" || n.Created.IsZero() ||
		!strings.Contains(n.Detail, "invalid_grant") || !strings.Contains(n.Detail, "airlock connect hostile --subject acme") ||
		strings.Contains(n.Detail, "revoked-refresh") {
		t.Errorf("notice %+v: want connector hostile, slot token, subject acme and how to reconnect", n)
	}
}
