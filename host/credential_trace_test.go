package host_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// TestTraceOfACredentialFetch: a call whose OAuth slot has no token yet fetches one from the
// token endpoint inside a "credential.refresh" span of the call's trace, which names the
// connector, slot, kind and outcome — and no attribute of any span holds the token or the
// client secret.
func TestTraceOfACredentialFetch(t *testing.T) {
	const accessToken, clientSecret = "at-TRACE-CANARY-5kq2", "cs-TRACE-CLIENT-SECRET-9zz"
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, sec, ok := r.BasicAuth(); !ok || id != "trace-client" || sec != clientSecret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"` + accessToken + `","token_type":"bearer","expires_in":3600}`))
	}))
	t.Cleanup(tokens.Close)
	api := newUpstream(t)

	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	for i := range m.Credentials {
		if m.Credentials[i].Name == "token" {
			m.Credentials[i].Kind = manifest.KindOAuth2ClientCredentials
			m.Credentials[i].OAuth = &manifest.OAuth{TokenURL: "https://login.example.test/oauth/token"}
		}
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return clientSecret, n == "CLIENT_SECRET" }}}
	h, _ := hosttest.New(t, host.Config{Secrets: src, Resolver: fakeDNS{}, TracerProvider: tp})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"*"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: map[string]manifest.CredentialGrant{"token": {ClientID: "trace-client", ClientSecret: "env:CLIENT_SECRET"}},
		Upstreams:   map[string]string{"https://api.example.test": api.URL, "https://login.example.test": tokens.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	args, _ := json.Marshal(abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/echo", Credential: "token"})
	if res := call(h, "hostile.fetch", string(args)); !res.OK {
		t.Fatalf("fetch: %+v", res.Error)
	}
	if got := api.seen(); len(got) != 1 || got[0] != "Bearer "+accessToken {
		t.Fatalf("the upstream saw %q, want the minted token: the call did not fetch one", got)
	}

	var fetch sdktrace.ReadOnlySpan
	names := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended() {
		names[s.Name()] = s
		if s.Name() == "credential.refresh" {
			fetch = s
		}
		for _, kv := range s.Attributes() {
			if v := kv.Value.String(); strings.Contains(v, accessToken) || strings.Contains(v, clientSecret) {
				t.Errorf("span %s attribute %s holds a secret", s.Name(), kv.Key)
			}
		}
	}
	if fetch == nil {
		t.Fatalf("no credential.refresh span among %v", spans.Ended())
	}
	if call := names["airlock.call"]; call == nil || fetch.SpanContext().TraceID() != call.SpanContext().TraceID() {
		t.Errorf("the credential.refresh span is not in the call's trace")
	}
	want := map[string]string{"airlock.connector": "hostile", "airlock.credential.slot": "token",
		"airlock.credential.kind": manifest.KindOAuth2ClientCredentials, "airlock.credential.outcome": "ok"}
	for _, kv := range fetch.Attributes() {
		if w, ok := want[string(kv.Key)]; ok {
			if kv.Value.String() != w {
				t.Errorf("credential.refresh %s = %q, want %q", kv.Key, kv.Value.String(), w)
			}
			delete(want, string(kv.Key))
		}
	}
	if len(want) > 0 {
		t.Errorf("credential.refresh lacks attributes %v", want)
	}
}
