package secret_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/dopplertest"
)

const (
	dopplerToken    = "dp.st.prd.canaryTOKENbackendPRD0001"
	dopplerDevToken = "dp.st.dev.canaryTOKENbackendDEV0002"
)

// newFakeDoppler starts a Doppler API whose token dopplerToken reads backend/prd and
// dopplerDevToken backend/dev.
func newFakeDoppler(t *testing.T) *dopplertest.Server {
	f := dopplertest.Start(t)
	f.SetTokens(map[string]string{dopplerToken: "backend/prd", dopplerDevToken: "backend/dev"})
	f.Set("backend/prd", "SLACK_BOT_TOKEN", canary)
	f.Set("backend/prd", "REF", "${SLACK_BOT_TOKEN}-x")
	f.Set("backend/prd", "EMPTY", "")
	f.Set("backend/dev", "SLACK_BOT_TOKEN", "dev-"+canary)
	return f
}

func newDoppler(t *testing.T, f *dopplertest.Server, ttl time.Duration, clock *fakeClock, tokens map[string]string) *secret.Doppler {
	t.Helper()
	cfg := &secret.DopplerConfig{
		API:      f.URL,
		Token:    "env:DOPPLER_TOKEN",
		Tokens:   tokens,
		Secrets:  staticSecrets(map[string]string{"DOPPLER_TOKEN": dopplerToken, "DOPPLER_DEV": dopplerDevToken, "DOPPLER_WRONG": dopplerToken}),
		CacheTTL: ttl,
	}
	if clock != nil {
		cfg.Now = clock.Now
	}
	d, err := secret.NewDoppler(cfg)
	if err != nil {
		t.Fatalf("NewDoppler: %v", err)
	}
	return d
}

var dopplerCanaries = [][]byte{[]byte(canary), []byte(dopplerToken), []byte(dopplerDevToken)}

func TestDopplerResolves(t *testing.T) {
	f := newFakeDoppler(t)
	d := newDoppler(t, f, -1, nil, map[string]string{"backend/dev": "env:DOPPLER_DEV"})
	ctx := context.Background()
	for _, tt := range []struct{ ref, want string }{
		{"doppler:backend/prd/SLACK_BOT_TOKEN", canary},
		{"doppler:backend/prd/REF", canary + "-x"}, // the computed value, references expanded
		{"doppler:backend/dev/SLACK_BOT_TOKEN", "dev-" + canary},
	} {
		if got, err := d.Resolve(ctx, tt.ref); err != nil || got.Expose() != tt.want {
			t.Errorf("Resolve(%q) = %v, want the secret's computed value", tt.ref, err)
		}
	}
	// Each config is read with its own service token.
	auth := strings.Join(f.Reads(), "|")
	if auth != "Bearer "+dopplerToken+"|Bearer "+dopplerToken+"|Bearer "+dopplerDevToken {
		t.Errorf("tokens sent: %q, want prd's twice then dev's", auth)
	}
	mux := secret.Mux{"doppler": d, "op": &secret.OnePassword{}}
	if _, err := mux.Resolve(ctx, "doppler:backend/prd/SLACK_BOT_TOKEN"); err != nil {
		t.Errorf("through a Mux: %v", err)
	}
	// A value without a scheme is answered with the syntax of each configured source.
	if _, err := mux.Resolve(ctx, "SLACK_BOT_TOKEN"); err == nil || !strings.Contains(err.Error(), "doppler:PROJECT/CONFIG/NAME or op://VAULT/ITEM/FIELD") {
		t.Errorf("Mux without a scheme: %v, want both syntaxes", err)
	}
}

func TestDopplerErrors(t *testing.T) {
	f := newFakeDoppler(t)
	d := newDoppler(t, f, -1, nil, map[string]string{"web/prd": "env:DOPPLER_WRONG"})
	ctx := context.Background()
	tests := []struct {
		ref  string
		is   error
		want []string
	}{
		{"doppler:backend/prd/MISSING", secret.ErrNotFound, []string{"there is no secret MISSING in project backend config prd (HTTP 404)"}},
		{"doppler:backend/prd/EMPTY", secret.ErrNotFound, []string{"secret EMPTY in project backend config prd is empty"}},
		// The default token is prd's service token: another config is a scope mismatch, and the
		// error says how to configure a token for it.
		{"doppler:backend/stg/SLACK_BOT_TOKEN", secret.ErrDenied, []string{
			"the token (reference env:DOPPLER_TOKEN) may not read project backend config stg (HTTP 403)",
			"a Doppler service token reads only the one project and config it was created in",
			`add it to airlock.yaml as doppler.tokens["backend/stg"] (a secret reference such as env:DOPPLER_TOKEN_BACKEND_STG)`}},
		// A dedicated token that is in fact another config's.
		{"doppler:web/prd/KEY", secret.ErrDenied, []string{
			`check that the token doppler.tokens["web/prd"] (reference env:DOPPLER_WRONG) was created in project web config prd`}},
	}
	for _, tt := range tests {
		_, err := d.Resolve(ctx, tt.ref)
		if !errors.Is(err, tt.is) {
			t.Errorf("Resolve(%q) = %v, want errors.Is %v", tt.ref, err, tt.is)
			continue
		}
		for _, w := range append(tt.want, tt.ref) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Resolve(%q) = %v\nwant it to contain %q", tt.ref, err, w)
			}
		}
		noLeak(t, tt.ref, err, dopplerCanaries...)
	}

	f.Limit(true)
	_, err := d.Resolve(ctx, "doppler:backend/prd/SLACK_BOT_TOKEN")
	if err == nil || !strings.Contains(err.Error(), "rate-limiting the token (HTTP 429) reading doppler:backend/prd/SLACK_BOT_TOKEN: retry after 12 s") ||
		errors.Is(err, secret.ErrNotFound) || errors.Is(err, secret.ErrDenied) {
		t.Errorf("429: %v", err)
	}
	noLeak(t, "429", err, dopplerCanaries...)

	// Invalid token: 401, ErrDenied naming the reference, never the token Doppler echoed.
	bad, _ := secret.NewDoppler(&secret.DopplerConfig{API: f.URL, Token: "env:T", CacheTTL: -1,
		Secrets: staticSecrets(map[string]string{"T": "dp.st.revoked-" + dopplerToken})})
	_, err = bad.Resolve(ctx, "doppler:backend/prd/SLACK_BOT_TOKEN")
	if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "refused the token (HTTP 401)") || !strings.Contains(err.Error(), "env:T") {
		t.Errorf("invalid token: %v", err)
	}
	noLeak(t, "401", err, append(dopplerCanaries, []byte("dp.st.revoked-"+dopplerToken))...)

	// No token configured.
	t.Setenv("DOPPLER_TOKEN", "")
	none, _ := secret.NewDoppler(&secret.DopplerConfig{API: f.URL})
	if _, err := none.Resolve(ctx, "doppler:backend/prd/SLACK_BOT_TOKEN"); !errors.Is(err, secret.ErrNotFound) || !strings.Contains(err.Error(), "env:DOPPLER_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	if _, err := secret.NewDoppler(&secret.DopplerConfig{Tokens: map[string]string{"backend": "env:X"}}); err == nil || !strings.Contains(err.Error(), "PROJECT/CONFIG") {
		t.Errorf("a tokens key without a config: %v", err)
	}
}

func TestDopplerRejectsMalformedReferences(t *testing.T) {
	f := newFakeDoppler(t)
	d := newDoppler(t, f, -1, nil, nil)
	for _, ref := range []string{
		"doppler:", "doppler:backend", "doppler:backend/prd", "doppler:backend/prd/", "doppler:backend//X",
		"doppler:/prd/X", "doppler:backend/prd/X/Y", "doppler:backend/prd/X?name=Y", "doppler:backend/prd/X&config=dev",
		"doppler:../prd/X", "doppler:backend/prd/1X", "doppler:backend/prd/A B", "doppler:backend/prd/X\x00",
		"doppler://backend/prd/X", "env:X", canary, "doppler:" + canary + "!/prd/X",
	} {
		_, err := d.Resolve(context.Background(), ref)
		if err == nil {
			t.Errorf("Resolve(%q) succeeded, want an error", ref)
			continue
		}
		if !errors.Is(err, secret.ErrBadReference) || !strings.Contains(err.Error(), "doppler:PROJECT/CONFIG/NAME") {
			t.Errorf("Resolve(%q) = %v, want ErrBadReference with the syntax", ref, err)
		}
		noLeak(t, "Resolve", err, dopplerCanaries...)
	}
	if len(f.Reads()) != 0 {
		t.Errorf("malformed references reached Doppler %d times", len(f.Reads()))
	}
}

func TestDopplerCacheAndRotation(t *testing.T) {
	f := newFakeDoppler(t)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	d := newDoppler(t, f, 30*time.Second, clock, nil)
	ctx := context.Background()
	const ref = "doppler:backend/prd/SLACK_BOT_TOKEN"
	for range 3 {
		if _, err := d.Resolve(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.Reads()) != 1 {
		t.Errorf("3 resolves within the TTL made %d reads, want 1", len(f.Reads()))
	}
	f.Set("backend/prd", "SLACK_BOT_TOKEN", "rotated-"+canary)
	if got, _ := d.Resolve(ctx, ref); got.Expose() != canary {
		t.Error("the rotated value was read within the TTL")
	}
	clock.Add(31 * time.Second)
	if got, err := d.Resolve(ctx, ref); err != nil || got.Expose() != "rotated-"+canary {
		t.Errorf("after the TTL: %v, want the rotated value", err)
	}
	f.Set("backend/prd", "SLACK_BOT_TOKEN", "again-"+canary)
	if got, err := d.Resolve(secret.WithFreshRead(ctx), ref); err != nil || got.Expose() != "again-"+canary {
		t.Errorf("fresh read: %v, want the newest value", err)
	}
	n := len(f.Reads())
	_, _ = d.Resolve(ctx, "doppler:backend/prd/MISSING")
	_, _ = d.Resolve(ctx, "doppler:backend/prd/MISSING")
	if len(f.Reads())-n != 2 {
		t.Errorf("two failing resolves made %d reads, want 2 (errors are not cached)", len(f.Reads())-n)
	}
}

func TestDopplerRereadsARenewedToken(t *testing.T) {
	f := newFakeDoppler(t)
	var mu sync.Mutex
	current := dopplerToken
	d, err := secret.NewDoppler(&secret.DopplerConfig{API: f.URL, Token: "env:TOKEN_FROM_AGENT_SINK", CacheTTL: -1,
		Secrets: secret.Env{Lookup: func(string) (string, bool) { mu.Lock(); defer mu.Unlock(); return current, true }}})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "doppler:backend/prd/SLACK_BOT_TOKEN"
	if _, err := d.Resolve(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	f.SetTokens(map[string]string{"dp.st.prd.renewed": "backend/prd"})
	mu.Lock()
	current = "dp.st.prd.renewed"
	mu.Unlock()
	if got, err := d.Resolve(context.Background(), ref); err != nil || got.Expose() != canary {
		t.Fatalf("after the token was renewed: %v", err)
	}
	f.SetTokens(nil)
	n := len(f.Reads())
	if _, err := d.Resolve(context.Background(), ref); !errors.Is(err, secret.ErrDenied) {
		t.Errorf("revoked: %v, want ErrDenied", err)
	}
	if len(f.Reads()) != n {
		t.Error("a revoked token was served")
	}
}

// The HTTP client is careful: no redirect is followed (it would carry the token), an answer is
// capped, a server that does not answer is given up on.
func TestDopplerHTTPHygiene(t *testing.T) {
	var mu sync.Mutex
	var elsewhere []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		elsewhere = append(elsewhere, r.Header.Get("Authorization"))
		mu.Unlock()
		writeJSON(w, 200, `{"name":"X","value":{"raw":"x","computed":"x"},"success":true}`)
	}))
	t.Cleanup(other.Close)
	redirect := httptest.NewServer(http.RedirectHandler(other.URL+"/v3/configs/config/secret", http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"name":"X","value":{"raw":"`))
		w.Write([]byte(strings.Repeat("a", 2<<20)))
	}))
	t.Cleanup(huge.Close)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>login</html>")) }))
	t.Cleanup(html.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for _, tt := range []struct {
		srv     *httptest.Server
		timeout time.Duration
		want    string
	}{
		{redirect, 0, "HTTP status 307"},
		{huge, 0, "larger than 1048576 bytes"},
		{hang, 300 * time.Millisecond, "no answer within 300ms"},
		{html, 0, "is not a Doppler secret"},
		{closed, 0, "cannot reach the server"},
	} {
		d, err := secret.NewDoppler(&secret.DopplerConfig{API: tt.srv.URL, Token: "env:T", CacheTTL: -1, Timeout: tt.timeout,
			Secrets: staticSecrets(map[string]string{"T": dopplerToken})})
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Resolve(context.Background(), "doppler:backend/prd/X")
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "doppler:backend/prd/X") {
			t.Errorf("%s: %v, want %q and the reference", tt.want, err, tt.want)
		}
		noLeak(t, tt.want, err, dopplerCanaries...)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(elsewhere) != 0 {
		t.Errorf("a redirect was followed, carrying %q", elsewhere)
	}
	if _, err := secret.NewDoppler(&secret.DopplerConfig{API: "ftp://doppler"}); err == nil {
		t.Error("NewDoppler accepted an ftp: address")
	}
}

// Many callers at once, while the secret rotates and the cache is bypassed now and then: every
// call gets one of the values, none fails (run with -race).
func TestSecretManagersConcurrent(t *testing.T) {
	dop := newFakeDoppler(t)
	conn := newFakeConnect(t)
	sources := map[string]secret.Source{
		"doppler:backend/prd/SLACK_BOT_TOKEN":  newDoppler(t, dop, time.Millisecond, nil, nil),
		"op://Production/Slack bot/credential": newOnePassword(t, conn, time.Millisecond, nil),
	}
	for ref, src := range sources {
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 20 {
			wg.Go(func() {
				for j := range 10 {
					ctx := context.Background()
					if j%3 == 0 {
						ctx = secret.WithFreshRead(ctx)
					}
					if i == 0 {
						dop.Set("backend/prd", "SLACK_BOT_TOKEN", fmt.Sprint("v", j))
						conn.SetField(opID("vprod"), opID("islack"), "credential", fmt.Sprint("v", j))
					}
					if v, err := src.Resolve(ctx, ref); err != nil || v.IsZero() {
						errs <- fmt.Errorf("%s: %v", ref, err)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}
