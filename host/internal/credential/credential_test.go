package credential_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/airlock-dev/airlock/internal/testenv"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/internal/credential"
	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/oauthtest"
)

const connector = "acme"

// env is one test's OAuth server, clock, store and the outputs checked for leaks.
type env struct {
	t      *testing.T
	srv    *oauthtest.Server
	clock  *clock
	store  *credential.MemoryStore
	sealer *credential.EphemeralSealer
	scrub  *scrub.Scrubber
	logs   testenv.Buffer
	mu     sync.Mutex
	events []credential.Event
	texts  []string // error messages and other output that must hold no secret
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, srv: newOAuthServer(t), clock: newClock(), store: &credential.MemoryStore{},
		sealer: credential.NewEphemeralSealer(), scrub: scrub.New()}
	t.Cleanup(e.checkNoLeaks)
	return e
}

func (e *env) note(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.texts = append(e.texts, s)
}

// checkNoLeaks: no token, code, assertion or client secret in logs, events or error messages.
func (e *env) checkNoLeaks() {
	e.mu.Lock()
	ev, _ := json.Marshal(e.events)
	out := []string{e.logs.String(), string(ev), strings.Join(e.texts, "\n")}
	e.mu.Unlock()
	for _, v := range e.srv.Secrets() {
		if v == "" {
			continue
		}
		for _, o := range out {
			if strings.Contains(o, v) {
				e.t.Errorf("secret value %.12s… leaked into output:\n%s", v, o)
			}
		}
	}
}

func (e *env) slot(kind string) manifest.Credential {
	o := &manifest.OAuth{TokenURL: e.srv.TokenURL(), Scopes: []string{"api"}}
	switch kind {
	case manifest.KindOAuth2AuthorizationCode:
		o.AuthorizeURL = e.srv.AuthorizeURL()
		o.Scopes = []string{"api", "offline"}
	case manifest.KindOAuth2JWTBearer:
		o.Audience = e.srv.TokenURL()
	}
	return manifest.Credential{Name: "api", Kind: kind, Hosts: []string{"api.example.test"}, OAuth: o}
}

func (e *env) config(kind string) credential.Config {
	cfg := credential.Config{
		Connector: connector, Slot: e.slot(kind), ClientSecret: secret.New(clientSecret),
		Store: e.store, Sealer: e.sealer, Scrubber: e.scrub, Now: e.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnEvent: func(ev credential.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
		},
	}
	switch kind {
	case manifest.KindOAuth2ClientCredentials:
		cfg.ClientID = ccClientID
	case manifest.KindOAuth2AuthorizationCode:
		cfg.ClientID = webClientID
	case manifest.KindOAuth2JWTBearer:
		cfg.ClientID, cfg.Username, cfg.ClientSecret = jwtClientID, jwtUser, secret.Value{}
		cfg.PrivateKey = secret.New(pemKey(e.t, e.srv.RSAKey))
	}
	return cfg
}

func (e *env) provider(cfg credential.Config) *credential.Provider {
	e.t.Helper()
	p, err := credential.New(cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return p
}

func (e *env) cred(p *credential.Provider, subject string) credential.Credential {
	e.t.Helper()
	c, err := p.Credential(context.Background(), subject)
	if err != nil {
		e.t.Fatalf("Credential(%s): %v", subject, err)
	}
	if c.Token.IsZero() {
		e.t.Fatalf("Credential(%s) returned no token", subject)
	}
	return c
}

// connect runs Connect, driving the provider's authorize step like a browser would.
func (e *env) connect(p *credential.Provider, subject string) (*credential.ConnectResult, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var authURL string
	res, err := p.Connect(ctx, credential.ConnectOptions{Subject: subject, OnAuthURL: func(u string) {
		authURL = u
		go func() {
			resp, err := http.Get(u) // follows the 303 to the loopback callback
			if err == nil {
				resp.Body.Close()
			}
		}()
	}})
	if err != nil {
		e.t.Fatalf("Connect(%s): %v", subject, err)
	}
	return res, authURL
}

// stored opens the sealed token set of subject's connection.
func (e *env) stored(subject string) (access, refresh string, c credential.Connection) {
	e.t.Helper()
	c, err := e.store.GetConnection(context.Background(), connector, "api", subject)
	if err != nil {
		e.t.Fatalf("GetConnection: %v", err)
	}
	if len(c.Token) == 0 {
		return "", "", c
	}
	plain, err := e.sealer.Open("airlock/connection/v1\x00"+connector+"\x00api\x00"+subject, c.Token)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	var ts struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(plain, &ts); err != nil {
		e.t.Fatal(err)
	}
	return ts.AccessToken, ts.RefreshToken, c
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	p := e.provider(e.config(manifest.KindOAuth2ClientCredentials))
	a := e.cred(p, "alice")
	b := e.cred(p, "bob") // shared: the grant names one client for every subject
	if a.Token.Expose() != b.Token.Expose() {
		t.Errorf("client-credentials tokens differ between subjects; want one shared token")
	}
	if got := e.srv.Count("client_credentials"); got != 1 {
		t.Errorf("token endpoint hits = %d, want 1 (cached)", got)
	}
	if len(a.Hosts) != 1 || a.Hosts[0] != "api.example.test" {
		t.Errorf("Hosts = %v, want [api.example.test]", a.Hosts)
	}
	if !e.scrub.Contains([]byte(a.Token.Expose())) || !e.scrub.Contains([]byte(clientSecret)) {
		t.Errorf("the access token or client secret is not registered with the scrubber")
	}
}

func TestClientCredentialsRefusedIsNotHammered(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(manifest.KindOAuth2ClientCredentials)
	cfg.ClientSecret = secret.New("canary-wrong-secret-9Xq")
	p := e.provider(cfg)
	_, _ = p.Credential(context.Background(), "default")
	perAttempt := e.srv.Count("client_credentials") // x/oauth2 may try Basic, then form fields
	for range 5 {
		_, err := p.Credential(context.Background(), "default")
		if !errors.Is(err, credential.ErrRefused) {
			t.Fatalf("Credential = %v, want ErrRefused", err)
		}
		e.note(err.Error())
		if strings.Contains(err.Error(), "canary-wrong-secret") {
			t.Errorf("error quotes the client secret: %v", err)
		}
	}
	if got := e.srv.Count("client_credentials"); got != perAttempt {
		t.Errorf("token endpoint hits = %d after 5 more refused calls, want %d (cool-down)", got, perAttempt)
	}
	e.clock.Advance(credential.FailureCoolDown + time.Second)
	_, _ = p.Credential(context.Background(), "default")
	if got := e.srv.Count("client_credentials"); got != 2*perAttempt {
		t.Errorf("token endpoint hits = %d after the cool-down, want %d", got, 2*perAttempt)
	}
}

func TestTokenEndpointDownIsRetryable(t *testing.T) {
	e := newEnv(t)
	e.srv.FailStatus = http.StatusServiceUnavailable
	p := e.provider(e.config(manifest.KindOAuth2ClientCredentials))
	_, err := p.Credential(context.Background(), "default")
	var ce *credential.Error
	if !errors.As(err, &ce) || !errors.Is(err, credential.ErrUnavailable) || ce.Category() != "retryable" {
		t.Fatalf("Credential = %v, want a retryable ErrUnavailable", err)
	}
	e.note(err.Error())
}

func TestAssumedLifetimeWithoutExpiresIn(t *testing.T) {
	e := newEnv(t)
	e.srv.OmitExpiry = true
	cfg := e.config(manifest.KindOAuth2ClientCredentials)
	cfg.Slot.OAuth.AssumedLifetimeS = 600
	p := e.provider(cfg)
	first := e.cred(p, "default")
	e.clock.Advance(8 * time.Minute)
	if got := e.cred(p, "default"); got.Token.Expose() != first.Token.Expose() {
		t.Fatalf("token changed after 8 minutes of an assumed 10-minute lifetime")
	}
	e.clock.Advance(90 * time.Second) // 9m30s: inside the 60 s margin
	if got := e.cred(p, "default"); got.Token.Expose() == first.Token.Expose() {
		t.Fatalf("token without expires_in was not renewed near its assumed lifetime (it must not be taken as everlasting)")
	}
	if got := e.srv.Count("client_credentials"); got != 2 {
		t.Errorf("token endpoint hits = %d, want 2", got)
	}
}

func TestJWTBearer(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(s *oauthtest.Server) string
	}{
		{"RS256", func(s *oauthtest.Server) string { return pemKey(t, s.RSAKey) }},
		{"ES256", func(s *oauthtest.Server) string { return pemKey(t, s.ECKey) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.config(manifest.KindOAuth2JWTBearer)
			cfg.PrivateKey = secret.New(tc.key(e.srv))
			p := e.provider(cfg)
			e.cred(p, "default")
			if got := e.srv.Count("urn:ietf:params:oauth:grant-type:jwt-bearer"); got != 1 {
				t.Fatalf("jwt-bearer grants = %d, want 1", got)
			}
			// The assertion the server received: short-lived, iss=client_id, sub=username.
			var assertion string
			for _, v := range e.srv.Secrets() {
				if strings.Count(v, ".") == 2 && strings.HasPrefix(v, "eyJ") {
					assertion = v
				}
			}
			parts := strings.Split(assertion, ".")
			if len(parts) != 3 {
				t.Fatalf("no assertion seen by the server")
			}
			raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var claims struct {
				Iss, Sub, Aud, Jti string
				Iat, Exp           int64
			}
			if err := json.Unmarshal(raw, &claims); err != nil {
				t.Fatal(err)
			}
			if claims.Iss != jwtClientID || claims.Sub != jwtUser || claims.Aud != e.srv.TokenURL() || claims.Jti == "" {
				t.Errorf("claims = %+v", claims)
			}
			if d := claims.Exp - claims.Iat; d <= 0 || d > 180 {
				t.Errorf("assertion lifetime = %d s, want ≤ 180", d)
			}
			if !e.scrub.Contains([]byte(assertion)) {
				t.Errorf("the signed assertion is not registered with the scrubber")
			}
		})
	}
}

func TestJWTBearerUnknownKeyRefused(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(manifest.KindOAuth2JWTBearer)
	cfg.Username = "someone-else@acme.com"
	p := e.provider(cfg)
	_, err := p.Credential(context.Background(), "default")
	if !errors.Is(err, credential.ErrRefused) {
		t.Fatalf("Credential = %v, want ErrRefused", err)
	}
	e.note(err.Error())
}

func TestInstanceURL(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(manifest.KindOAuth2JWTBearer)
	cfg.Slot.Hosts = []string{"*.my.salesforce.com"}
	cfg.Slot.OAuth.InstanceURL = true

	e.srv.InstanceURL = "https://acme.my.salesforce.com"
	p := e.provider(cfg)
	c := e.cred(p, "default")
	if len(c.Hosts) != 1 || c.Hosts[0] != "acme.my.salesforce.com" {
		t.Errorf("Hosts = %v, want only the instance host", c.Hosts)
	}
	md, err := p.Metadata(context.Background(), "default")
	if err != nil || md[credential.MetadataInstanceURL] != "https://acme.my.salesforce.com" {
		t.Errorf("Metadata = %v, %v", md, err)
	}
	for k, v := range md {
		if v == c.Token.Expose() {
			t.Errorf("metadata %s holds the token", k)
		}
	}

	for _, bad := range []string{"https://evil.example.com", "http://acme.my.salesforce.com", "https://user@acme.my.salesforce.com", ""} {
		e.srv.InstanceURL = bad
		p := e.provider(cfg)
		_, err := p.Credential(context.Background(), "default")
		if !errors.Is(err, credential.ErrRefused) {
			t.Errorf("instance_url %q: Credential = %v, want ErrRefused", bad, err)
		}
	}
}

func TestAuthorizationCodePKCE(t *testing.T) {
	e := newEnv(t)
	p := e.provider(e.config(manifest.KindOAuth2AuthorizationCode))
	res, authURL := e.connect(p, "alice")
	u, _ := url.Parse(authURL)
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || len(q.Get("state")) < 32 {
		t.Errorf("authorize URL lacks PKCE S256 or a strong state: %s", authURL)
	}
	if !strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") {
		t.Errorf("redirect_uri = %q, want a loopback callback", q.Get("redirect_uri"))
	}
	if !res.Refreshable || res.Subject != "alice" {
		t.Errorf("ConnectResult = %+v", res)
	}
	if got := e.srv.Count("authorization_code"); got != 1 {
		t.Errorf("code exchanges = %d, want 1", got)
	}

	c := e.cred(p, "alice")
	access, refresh, rec := e.stored("alice")
	if access != c.Token.Expose() || refresh == "" || rec.Status != credential.StatusConnected {
		t.Errorf("stored connection does not hold the issued tokens (status %q)", rec.Status)
	}
	if bytes.Contains(rec.Token, []byte(access)) || bytes.Contains(rec.Token, []byte(refresh)) {
		t.Errorf("the stored token is not sealed")
	}
	// A sealed token moved to another subject's record does not open.
	if _, err := e.sealer.Open("airlock/connection/v1\x00"+connector+"\x00api\x00bob", rec.Token); err == nil {
		t.Errorf("alice's sealed token opens as bob's")
	}

	// Bob has no connection, and never gets alice's token.
	_, err := p.Credential(context.Background(), "bob")
	if !errors.Is(err, credential.ErrNotConnected) {
		t.Fatalf("Credential(bob) = %v, want ErrNotConnected", err)
	}
	if !strings.Contains(err.Error(), "airlock connect "+connector+" --subject bob") {
		t.Errorf("message does not say what to run: %v", err)
	}
	e.note(err.Error())

	// A second provider (a restart) loads alice's connection from the store.
	p2 := e.provider(e.config(manifest.KindOAuth2AuthorizationCode))
	if got := e.cred(p2, "alice"); got.Token.Expose() != c.Token.Expose() {
		t.Errorf("after a restart alice's stored token was not used")
	}
	if got := e.srv.Count("refresh_token"); got != 0 {
		t.Errorf("refreshes = %d, want 0", got)
	}
}

func TestConnectStateMismatchRefused(t *testing.T) {
	e := newEnv(t)
	p := e.provider(e.config(manifest.KindOAuth2AuthorizationCode))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status := make(chan int, 1)
	_, err := p.Connect(ctx, credential.ConnectOptions{Subject: "alice", OnAuthURL: func(u string) {
		au, _ := url.Parse(u)
		cb := au.Query().Get("redirect_uri") + "?code=forged-code&state=" + url.QueryEscape("attacker-state-0123456789abcdef")
		go func() {
			resp, err := http.Get(cb)
			if err != nil {
				status <- 0
				return
			}
			resp.Body.Close()
			status <- resp.StatusCode
		}()
	}})
	if !errors.Is(err, credential.ErrStateMismatch) {
		t.Fatalf("Connect = %v, want ErrStateMismatch", err)
	}
	if s := <-status; s != http.StatusBadRequest {
		t.Errorf("callback status = %d, want 400", s)
	}
	if got := e.srv.Total(); got != 0 {
		t.Errorf("token endpoint hits = %d, want 0: a forged callback must not be exchanged", got)
	}
	if _, err := e.store.GetConnection(context.Background(), connector, "api", "alice"); !errors.Is(err, credential.ErrNoConnection) {
		t.Errorf("a connection was stored after a state mismatch: %v", err)
	}
}

func TestRefreshAheadOfExpiry(t *testing.T) {
	e := newEnv(t)
	p := e.provider(e.config(manifest.KindOAuth2AuthorizationCode))
	e.connect(p, "alice")
	first := e.cred(p, "alice")
	e.clock.Advance(30 * time.Minute)
	if got := e.cred(p, "alice"); got.Token.Expose() != first.Token.Expose() || e.srv.Count("refresh_token") != 0 {
		t.Fatalf("token refreshed 30 minutes before expiry")
	}
	e.clock.Advance(29*time.Minute + 30*time.Second) // 30 s before expiry, inside the 60 s margin
	second := e.cred(p, "alice")
	if second.Token.Expose() == first.Token.Expose() {
		t.Fatalf("token not refreshed inside the refresh margin")
	}
	if got := e.srv.Count("refresh_token"); got != 1 {
		t.Errorf("refreshes = %d, want 1", got)
	}
}

func TestRotationThenInvalidGrantNeedsReauth(t *testing.T) {
	e := newEnv(t)
	p := e.provider(e.config(manifest.KindOAuth2AuthorizationCode))
	e.connect(p, "alice")
	_, r1, _ := e.stored("alice")

	e.clock.Advance(time.Hour)
	e.cred(p, "alice")
	_, r2, _ := e.stored("alice")
	if r2 == "" || r2 == r1 {
		t.Fatalf("the rotated refresh token was not stored")
	}
	if !e.scrub.Contains([]byte(r2)) {
		t.Errorf("the rotated refresh token is not registered with the scrubber")
	}
	// The old refresh token no longer works (and fosite's reuse detection now revokes the
	// whole grant, so the stored one is dead too: the next refresh gets invalid_grant).
	if status, code := e.srv.RefreshDirect(t, r1); status != http.StatusBadRequest || code != "invalid_grant" {
		t.Fatalf("old refresh token: status %d error %q, want 400 invalid_grant", status, code)
	}

	e.clock.Advance(time.Hour)
	before := e.srv.Count("refresh_token")
	_, err := p.Credential(context.Background(), "alice")
	if !errors.Is(err, credential.ErrNeedsReauth) {
		t.Fatalf("Credential = %v, want ErrNeedsReauth", err)
	}
	var ce *credential.Error
	if !errors.As(err, &ce) || ce.Category() != "correctable" ||
		!strings.Contains(err.Error(), "ask an admin to run `airlock connect "+connector+" --subject alice`") {
		t.Errorf("error = %v, want a correctable error naming the connect command", err)
	}
	e.note(err.Error())
	_, _, rec := e.stored("alice")
	if rec.Status != credential.StatusNeedsReauth || rec.Detail == "" || len(rec.Token) != 0 {
		t.Errorf("stored connection = status %q detail %q token %d bytes, want needs_reauth with a detail and no token",
			rec.Status, rec.Detail, len(rec.Token))
	}
	for range 10 {
		if _, err := p.Credential(context.Background(), "alice"); !errors.Is(err, credential.ErrNeedsReauth) {
			t.Fatalf("Credential = %v, want ErrNeedsReauth", err)
		}
	}
	if got := e.srv.Count("refresh_token") - before; got != 1 {
		t.Errorf("refresh attempts after invalid_grant = %d, want exactly 1 (no retry loop)", got)
	}
	var saw bool
	for _, ev := range e.events {
		saw = saw || ev.Type == credential.StatusNeedsReauth && ev.Subject == "alice"
	}
	if !saw {
		t.Errorf("no needs_reauth event for the audit log: %+v", e.events)
	}

	// Connecting again heals it.
	e.connect(p, "alice")
	e.cred(p, "alice")
}

func TestConcurrentRefreshIsSingleFlight(t *testing.T) {
	e := newEnv(t)
	p := e.provider(e.config(manifest.KindOAuth2AuthorizationCode))
	e.connect(p, "alice")
	old := e.cred(p, "alice")
	e.clock.Advance(2 * time.Hour) // expired

	const n = 50
	var wg sync.WaitGroup
	tokens := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Credential(context.Background(), "alice")
			tokens[i], errs[i] = c.Token.Expose(), err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if tokens[i] != tokens[0] || tokens[i] == old.Token.Expose() {
			t.Fatalf("call %d got a different or the expired token", i)
		}
	}
	if got := e.srv.Count("refresh_token"); got != 1 {
		t.Errorf("refreshes = %d for %d concurrent calls, want exactly 1", got, n)
	}
}

func TestInvalidateAfter401RefreshesOnce(t *testing.T) {
	e := newEnv(t)
	p := e.provider(e.config(manifest.KindOAuth2AuthorizationCode))
	e.connect(p, "alice")
	old := e.cred(p, "alice")
	for range 20 { // 20 callers saw the same 401
		p.Invalidate("alice", old.Token)
	}
	next := e.cred(p, "alice")
	if next.Token.Expose() == old.Token.Expose() {
		t.Fatalf("Invalidate did not lead to a new token")
	}
	p.Invalidate("alice", old.Token) // a late caller with the old token: no effect
	if got := e.cred(p, "alice"); got.Token.Expose() != next.Token.Expose() {
		t.Errorf("a stale Invalidate discarded the new token")
	}
	p.Invalidate("bob", next.Token) // another subject cannot invalidate alice's token
	e.cred(p, "alice")
	if got := e.srv.Count("refresh_token"); got != 1 {
		t.Errorf("refreshes = %d, want 1", got)
	}
}

// A refresh response without a refresh token keeps the old one (a provider that does not
// rotate); fosite always rotates, so this uses a minimal token endpoint.
func TestRefreshWithoutNewRefreshTokenKeepsOld(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		got = r.PostForm.Get("refresh_token")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"canary-new-access-7Yt","token_type":"Bearer","expires_in":3600}`))
	}))
	defer srv.Close()
	store, sealer, clk := &credential.MemoryStore{}, credential.NewEphemeralSealer(), newClock()
	cfg := credential.Config{Connector: connector, ClientID: webClientID, Store: store, Sealer: sealer, Now: clk.Now,
		Slot: manifest.Credential{Name: "api", Kind: manifest.KindOAuth2AuthorizationCode, Hosts: []string{"api.example.test"},
			OAuth: &manifest.OAuth{TokenURL: srv.URL, AuthorizeURL: srv.URL + "/auth"}}}
	aad := "airlock/connection/v1\x00" + connector + "\x00api\x00alice"
	blob, _ := sealer.Seal(aad, []byte(`{"access_token":"canary-old-access","refresh_token":"canary-keep-refresh-3Kp","expiry":"2000-01-01T00:00:00Z"}`))
	_ = store.PutConnection(context.Background(), credential.Connection{Connector: connector, Slot: "api", Subject: "alice",
		Token: blob, Status: credential.StatusConnected})
	p, err := credential.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Credential(context.Background(), "alice")
	if err != nil || c.Token.Expose() != "canary-new-access-7Yt" || got != "canary-keep-refresh-3Kp" {
		t.Fatalf("Credential = %v, %v (refresh sent %q)", c.Token.Expose(), err, got)
	}
	rec, _ := store.GetConnection(context.Background(), connector, "api", "alice")
	plain, _ := sealer.Open(aad, rec.Token)
	if !strings.Contains(string(plain), `"refresh_token":"canary-keep-refresh-3Kp"`) {
		t.Errorf("the old refresh token was not kept")
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	e := newEnv(t)
	p := e.provider(e.config(manifest.KindOAuth2ClientCredentials))
	c := e.cred(p, "default")
	for _, s := range []string{
		func() string { b, _ := json.Marshal(c); return string(b) }(),
		strings.Join([]string{c.Token.String(), c.Token.GoString()}, " "),
	} {
		if strings.Contains(s, c.Token.Expose()) {
			t.Errorf("printing a Credential shows its token: %s", s)
		}
	}
	e.note(func() string { b, _ := json.Marshal(c); return string(b) }())
}
