// Package credential provides the credential a connector's slot injects: a static secret
// (bearer, api_key, basic) or an OAuth 2.0 access token that the host obtains, caches, refreshes
// and persists, for one calling subject. No token ever leaves this package except as a
// [secret.Value], and every value it loads or mints is registered with the scrubber first.
//
// One [Provider] serves one credential slot of one connector:
//
//	p, err := credential.New(credential.Config{
//		Connector: "salesforce",
//		Slot:      cred, // the manifest's credential slot, kind oauth2_jwt_bearer
//		ClientID:  "3MVG9abc", PrivateKey: pem, Username: "integration@acme.com",
//		Scrubber:  scrubber,
//	})
//	if err != nil { … }
//	c, err := p.Credential(ctx, subject)
//	if err != nil {
//		var ce *credential.Error
//		errors.As(err, &ce) // ce.Message is safe for agents; ce.Category says what to do
//	}
//	req.Header.Set("Authorization", "Bearer "+c.Token.Expose())
//	// c.Hosts: where the token may go (only the instance_url host when the slot says so)
//	// c.Metadata["instance_url"]: non-secret connection metadata
//
// Kinds and whose token a subject gets:
//
//   - bearer, api_key, basic: the grant's secret, the same for every subject.
//   - oauth2_client_credentials and oauth2_jwt_bearer: one token per connector and slot, shared
//     by every subject. The grant names one client (and, for JWT bearer, one user), so every
//     subject already acts as that identity; there is nothing per-subject to keep apart. These
//     tokens live in memory only and are minted again after a restart.
//   - oauth2_authorization_code: one connection per subject, made by [Provider.Connect] (the
//     `airlock connect` command) and persisted, sealed, through a [TokenStore]. A subject with
//     no connection gets [ErrNotConnected]; two subjects never see each other's tokens.
//
// Token lifecycle: a token is refreshed RefreshMargin before it expires; a token response
// without expires_in gets the slot's AssumedLifetime (golang.org/x/oauth2 would take it as never
// expiring). Only one refresh runs at a time per connection; concurrent callers wait for it. A
// refresh response without a refresh token keeps the old one; a rotated one replaces it, with the
// access token, in one record. Before refreshing, the stored connection is read again, so a token
// another replica refreshed is used instead of replaying a rotated refresh token (which a server
// with reuse detection would punish by revoking the whole grant). A refresh the server refuses
// with invalid_grant marks the connection needs_reauth, persisted with a plain-words detail;
// later calls re-read the stored connection (so a Connect made by another process takes effect)
// and fail with [ErrNeedsReauth] without touching the token endpoint until the subject is
// connected again. [Provider.Invalidate] (after a 401 from the upstream) makes the
// next Credential fetch a new token, once, however many callers saw the 401.
package credential

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Defaults.
const (
	// DefaultTokenTimeout bounds one exchange with a token endpoint.
	DefaultTokenTimeout = 30 * time.Second
	// FailureCoolDown is how long a permanently refused client-credentials or JWT-bearer mint is
	// remembered, so a misconfigured slot does not hammer the token endpoint.
	FailureCoolDown = 30 * time.Second
	// MetadataInstanceURL is the Metadata key of the token response's instance_url.
	MetadataInstanceURL = "instance_url"
)

// Error kinds, for errors.Is. Every error Credential returns is an [*Error] wrapping one.
var (
	// ErrNotConfigured: the grant does not fill the slot (no secret, client id or key).
	ErrNotConfigured = errors.New("credential not configured")
	// ErrNotConnected: no connection exists for the subject (authorization code).
	ErrNotConnected = errors.New("not connected")
	// ErrNeedsReauth: the connection's refresh was refused (invalid_grant); an admin must connect again.
	ErrNeedsReauth = errors.New("connection needs re-authorisation")
	// ErrUnavailable: the token endpoint could not be reached or failed (5xx, 429); try later.
	ErrUnavailable = errors.New("token endpoint unavailable")
	// ErrRefused: the token endpoint refused the client or assertion; the grant must be fixed.
	ErrRefused = errors.New("token endpoint refused the request")
)

// Error is a credential failure. Message is safe for agents and plugins (no secret, no token
// endpoint body); Err, the cause, is for logs only, after scrubbing.
type Error struct {
	Kind    error // one of the Err* kinds above
	Message string
	Err     error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the kind, so errors.Is(err, ErrNeedsReauth) works. The cause is not unwrapped:
// its text may hold what a token endpoint said.
func (e *Error) Unwrap() error { return e.Kind }

// Category says what an agent should do about e.
func (e *Error) Category() abi.Category {
	switch e.Kind {
	case ErrUnavailable:
		return abi.Retryable
	case ErrRefused:
		return abi.Fatal
	}
	return abi.Correctable
}

// Credential is what to inject for one request.
type Credential struct {
	// Kind is the slot's kind.
	Kind string
	// Token is the static secret or the OAuth access token.
	Token secret.Value
	// Hosts are the only hosts Token may be sent to: the slot's, or only the instance_url host.
	Hosts []string
	// Metadata is non-secret connection metadata (MetadataInstanceURL), never nil for OAuth kinds.
	Metadata map[string]string
}

// Event is a change in a connection's life, for the audit log. It never holds a token.
type Event struct {
	Connector, Slot, Subject string
	// Type is "connected", "minted", "refreshed", "needs_reauth" or "failed".
	Type   string
	Detail string
}

// Config configures a [Provider]. New copies it.
type Config struct {
	// Connector is the connector's name.
	Connector string
	// Slot is the manifest's credential slot (name, kind, hosts, OAuth section).
	Slot manifest.Credential
	// Secret fills a static slot (bearer, api_key, basic).
	Secret secret.Value
	// ClientID is the OAuth client id (not secret).
	ClientID string
	// ClientSecret is the OAuth client secret (client credentials; optional for authorization
	// code, where PKCE protects a public client).
	ClientSecret secret.Value
	// PrivateKey is the PEM private key (RSA or EC P-256) that signs JWT bearer assertions.
	PrivateKey secret.Value
	// ClientSecretRef and PrivateKeyRef, when set, are read in place of ClientSecret and
	// PrivateKey at each token request (by the Ref's rules: every time for the state store,
	// after its TTL otherwise), and again at once when the token endpoint refuses the client,
	// so a rotated secret or key is used without a restart.
	ClientSecretRef, PrivateKeyRef *Ref
	// Username is the JWT bearer subject (sub).
	Username string
	// Store persists authorization-code connections. Nil means a private [MemoryStore].
	Store TokenStore
	// Sealer seals tokens in Store. Nil means an [EphemeralSealer].
	Sealer Sealer
	// Scrubber receives every secret and token value the moment it is loaded or minted. Nil
	// means a private one.
	Scrubber *scrub.Scrubber
	// HTTPClient talks to the token endpoint. Nil means a client with a 30 s timeout that does
	// not follow redirects.
	HTTPClient *http.Client
	// Logger receives token lifecycle lines (never a token). Nil means no logging.
	Logger *slog.Logger
	// OnEvent, if set, is called for each connection change (for the audit log).
	OnEvent func(Event)
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Provider provides the credential of one slot. It is safe for concurrent use; its zero value
// is not usable, call [New].
type Provider struct {
	cfg   Config
	oauth manifest.OAuth
	hosts []string
	// keyMu guards signer, codeConf, ccConf and cfg.ClientSecret / cfg.PrivateKey, which are
	// rebuilt when a Ref gives a new value (see clients and currentSigner).
	keyMu  sync.Mutex
	signer *signer // JWT bearer
	// x/oauth2 clients (OAuth kinds), built by initClients.
	codeConf *oauth2.Config
	ccConf   *clientcredentials.Config
	log      *slog.Logger
	now      func() time.Time

	mu    sync.Mutex
	conns map[string]*conn // subject ("" for shared kinds) → connection state
}

// tokenSet is a token response, as kept in memory and sealed in the store.
type tokenSet struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"`
}

type conn struct {
	mu       sync.Mutex
	loaded   bool // the store has been read (authorization code)
	tok      *tokenSet
	meta     map[string]string
	hosts    []string // instance_url host, when the slot narrows to it
	status   string
	detail   string
	stale    bool // invalidated after a 401: fetch a new token
	flight   *flight
	failErr  error // a permanent mint failure …
	failTill time.Time
}

type flight struct {
	done chan struct{}
	err  error
}

// New validates cfg and returns a Provider. Every secret in cfg is registered with the scrubber.
func New(cfg Config) (*Provider, error) {
	p := &Provider{cfg: cfg, hosts: slices.Clone(cfg.Slot.Hosts), log: cfg.Logger, now: cfg.Now, conns: map[string]*conn{}}
	if p.cfg.Scrubber == nil {
		p.cfg.Scrubber = scrub.New()
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.cfg.Store == nil {
		p.cfg.Store = &MemoryStore{}
	}
	if p.cfg.Sealer == nil {
		p.cfg.Sealer = NewEphemeralSealer()
	}
	if p.cfg.HTTPClient == nil {
		p.cfg.HTTPClient = &http.Client{
			Timeout:       DefaultTokenTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	sc := p.cfg.Scrubber
	for _, v := range []secret.Value{cfg.Secret, cfg.ClientSecret, cfg.PrivateKey} {
		sc.Add(v.Expose())
	}
	if cfg.Slot.Kind == manifest.KindBasic {
		if _, pw, ok := strings.Cut(cfg.Secret.Expose(), ":"); ok {
			sc.Add(pw)
		}
	}
	name := cfg.Slot.Name
	switch cfg.Slot.Kind {
	case manifest.KindBearer, manifest.KindAPIKey, manifest.KindBasic:
		return p, nil
	case manifest.KindOAuth2ClientCredentials, manifest.KindOAuth2AuthorizationCode, manifest.KindOAuth2JWTBearer:
	default:
		return nil, fmt.Errorf("credential slot %s: kind %q is not one airlock knows", name, cfg.Slot.Kind)
	}
	if cfg.Slot.OAuth == nil {
		return nil, fmt.Errorf("credential slot %s: kind %s needs an oauth section with token_url", name, cfg.Slot.Kind)
	}
	p.oauth = *cfg.Slot.OAuth
	p.oauth.Scopes = slices.Clone(p.oauth.Scopes)
	if err := checkEndpoint(p.oauth.TokenURL); err != nil {
		return nil, fmt.Errorf("credential slot %s: token_url: %w", name, err)
	}
	if cfg.Slot.Kind == manifest.KindOAuth2AuthorizationCode {
		if err := checkEndpoint(p.oauth.AuthorizeURL); err != nil {
			return nil, fmt.Errorf("credential slot %s: authorize_url: %w", name, err)
		}
	}
	p.initClients()
	if p.oauth.AssumedLifetimeS < 0 || p.oauth.RefreshMarginS < 0 {
		return nil, fmt.Errorf("credential slot %s: assumed_lifetime_s and refresh_margin_s must not be negative", name)
	}
	if cfg.Slot.Kind == manifest.KindOAuth2JWTBearer && !cfg.PrivateKey.IsZero() {
		s, err := newSigner(cfg.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("credential slot %s: private_key: %w", name, err)
		}
		p.signer = s
	}
	if r := cfg.PrivateKeyRef; r != nil && cfg.Slot.Kind == manifest.KindOAuth2JWTBearer && !r.Failing() {
		// A key that does not parse fails the load, as a literal one does; one that cannot be
		// read is reported by the Ref and retried at the next token request.
		var e *Error
		if _, err := p.currentSigner(context.Background()); errors.As(err, &e) && e.Kind == ErrRefused {
			return nil, fmt.Errorf("credential slot %s: %s", name, e.Message)
		}
	}
	return p, nil
}

func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return errors.New("must be an absolute http(s) URL without userinfo or fragment")
	}
	return nil
}

// Kind returns the slot's kind.
func (p *Provider) Kind() string { return p.cfg.Slot.Kind }

// perSubject reports whether connections are kept per subject (authorization code).
func (p *Provider) perSubject() bool { return p.cfg.Slot.Kind == manifest.KindOAuth2AuthorizationCode }

func (p *Provider) conn(subject string) *conn {
	if !p.perSubject() {
		subject = ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.conns[subject]
	if !ok {
		c = &conn{}
		p.conns[subject] = c
	}
	return c
}

func (p *Provider) margin() time.Duration { return p.oauth.RefreshMargin() }

// Credential returns what to inject for subject, fetching or refreshing a token if needed.
// Errors are [*Error]s.
func (p *Provider) Credential(ctx context.Context, subject string) (Credential, error) {
	switch p.cfg.Slot.Kind {
	case manifest.KindBearer, manifest.KindAPIKey, manifest.KindBasic:
		if p.cfg.Secret.IsZero() {
			return Credential{}, p.notConfigured()
		}
		return Credential{Kind: p.cfg.Slot.Kind, Token: p.cfg.Secret, Hosts: p.hosts}, nil
	}
	if p.missingClient() {
		return Credential{}, p.notConfigured()
	}
	c := p.conn(subject)
	for {
		c.mu.Lock()
		now := p.now()
		if c.loaded && c.tok != nil && !c.stale && now.Before(c.tok.Expiry.Add(-p.margin())) {
			cred := p.credLocked(c)
			c.mu.Unlock()
			return cred, nil
		}
		if c.failErr != nil && now.Before(c.failTill) {
			err := c.failErr
			c.mu.Unlock()
			return Credential{}, err
		}
		if f := c.flight; f != nil {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return Credential{}, &Error{Kind: ErrUnavailable, Err: ctx.Err(),
					Message: fmt.Sprintf("the call ended while waiting for a token for credential %s", p.cfg.Slot.Name)}
			}
			if f.err != nil {
				if cred, ok := p.stillValid(c); ok {
					return cred, nil
				}
				return Credential{}, f.err
			}
			continue
		}
		f := &flight{done: make(chan struct{})}
		c.flight = f
		c.mu.Unlock()

		// The exchange is not tied to this caller: if it gave up, a rotated refresh token
		// the server already issued would be lost with it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultTokenTimeout)
		err := p.fetch(fctx, subject, c)
		cancel()

		c.mu.Lock()
		f.err = err
		c.flight = nil
		close(f.done)
		c.mu.Unlock()
		if err != nil {
			if cred, ok := p.stillValid(c); ok {
				return cred, nil
			}
			return Credential{}, err
		}
		if cred, ok := p.stillValid(c); ok {
			return cred, nil // a token that lives less than the refresh margin is used, not fetched again at once
		}
	}
}

// stillValid returns the cached token if a refresh ahead of expiry failed but the token has not
// expired (and no 401 said it is bad).
func (p *Provider) stillValid(c *conn) (Credential, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && !c.stale && c.status != StatusNeedsReauth && p.now().Before(c.tok.Expiry) {
		return p.credLocked(c), true
	}
	return Credential{}, false
}

func (p *Provider) credLocked(c *conn) Credential {
	hosts := p.hosts
	if c.hosts != nil {
		hosts = c.hosts
	}
	return Credential{Kind: p.cfg.Slot.Kind, Token: secret.New(c.tok.AccessToken), Hosts: slices.Clone(hosts),
		Metadata: maps.Clone(c.meta)}
}

func (p *Provider) missingClient() bool {
	switch p.cfg.Slot.Kind {
	case manifest.KindOAuth2ClientCredentials:
		return p.cfg.ClientID == "" || p.cfg.ClientSecret.IsZero() && p.cfg.ClientSecretRef == nil
	case manifest.KindOAuth2JWTBearer:
		p.keyMu.Lock()
		defer p.keyMu.Unlock()
		return p.cfg.ClientID == "" || p.signer == nil && p.cfg.PrivateKeyRef == nil || p.cfg.Username == ""
	}
	return p.cfg.ClientID == ""
}

// Invalidate marks token as rejected by the upstream (a 401), so the next Credential for
// subject fetches a new one. It does nothing if the connection has moved on to another token,
// so many callers that saw the same 401 cause one refresh.
func (p *Provider) Invalidate(subject string, token secret.Value) {
	c := p.conn(subject)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && token.Expose() != "" &&
		subtle.ConstantTimeCompare([]byte(c.tok.AccessToken), []byte(token.Expose())) == 1 {
		c.stale = true
	}
}

// Metadata returns the non-secret metadata of subject's connection (instance_url), obtaining a
// token first if there is none yet.
func (p *Provider) Metadata(ctx context.Context, subject string) (map[string]string, error) {
	c, err := p.Credential(ctx, subject)
	if err != nil {
		return nil, err
	}
	return c.Metadata, nil
}

// Expiry reports when subject's stored access token expires and whether a refresh token can
// renew it, reading the sealed token set in the store (never returning a token). ok is false
// when there is no stored token (no connection, or one that needs re-authorisation).
func (p *Provider) Expiry(ctx context.Context, subject string) (expires time.Time, refreshable, ok bool, err error) {
	l, err := p.load(ctx, subject)
	if err != nil || l == nil || l.tok == nil {
		return time.Time{}, false, false, err
	}
	return l.tok.Expiry, l.tok.RefreshToken != "", true, nil
}

// traced runs a token exchange (op "mint" or "refresh") in a span "credential.refresh", a child
// of ctx's span (the tool call's) made with that span's own tracer provider: without a recording
// span in ctx there is no span and no cost. Its attributes are the connector, slot, slot kind,
// op and outcome (ok, error, needs_reauth) — never a subject, token or error text.
func (p *Provider) traced(ctx context.Context, op string, exchange func(context.Context) (*tokenSet, map[string]string, error)) (*tokenSet, map[string]string, error) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return exchange(ctx)
	}
	ctx, span := parent.TracerProvider().Tracer(tracerName).Start(ctx, "credential.refresh", trace.WithSpanKind(trace.SpanKindClient))
	tok, meta, err := exchange(ctx)
	outcome := "ok"
	if err != nil {
		outcome = "error"
		var re *tokenEndpointError
		if errors.As(err, &re) && re.code == "invalid_grant" {
			outcome = StatusNeedsReauth
		}
		span.SetStatus(codes.Error, outcome)
	}
	span.SetAttributes(attribute.String("airlock.connector", p.cfg.Connector), attribute.String("airlock.credential.slot", p.cfg.Slot.Name),
		attribute.String("airlock.credential.kind", string(p.cfg.Slot.Kind)), attribute.String("airlock.credential.op", op),
		attribute.String("airlock.credential.outcome", outcome))
	span.End()
	return tok, meta, err
}

// tracerName is the instrumentation scope of the credential spans (the host's).
const tracerName = "github.com/airlock-dev/airlock/host"

// fetch runs in a flight: load the stored connection, then mint or refresh as needed.
func (p *Provider) fetch(ctx context.Context, subject string, c *conn) error {
	if !p.perSubject() {
		c.mu.Lock()
		c.loaded = true
		c.mu.Unlock()
		tok, meta, err := p.traced(ctx, "mint", p.mint)
		if err != nil {
			if errors.Is(err, ErrRefused) {
				c.mu.Lock()
				c.failErr, c.failTill = err, p.now().Add(FailureCoolDown)
				c.mu.Unlock()
			}
			p.emit(subject, "failed", err.Error())
			return err
		}
		hosts, err := p.narrow(meta)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.tok, c.meta, c.hosts, c.stale, c.failErr = tok, meta, hosts, false, nil
		c.mu.Unlock()
		p.log.Info("credential: token minted", "connector", p.cfg.Connector, "slot", p.cfg.Slot.Name,
			"expires_in_s", int(tok.Expiry.Sub(p.now()).Seconds()))
		p.emit(subject, "minted", "")
		return nil
	}

	// Authorization code: the store is the source of truth (another replica may have refreshed).
	stored, err := p.load(ctx, subject)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.loaded = true
	var cur *tokenSet
	if stored != nil {
		c.status, c.detail, c.meta = stored.status, stored.detail, stored.meta
		// Adopt the stored token if it is newer than ours (another replica refreshed, or an
		// admin connected again); keep ours if the store lags behind (a failed save).
		if stored.tok != nil && (c.tok == nil || stored.tok.AccessToken != c.tok.AccessToken && stored.tok.Expiry.After(c.tok.Expiry)) {
			c.tok, c.stale = stored.tok, false
		}
		hosts, err := p.narrow(c.meta)
		if err != nil {
			c.mu.Unlock()
			return err
		}
		c.hosts = hosts
	}
	if stored == nil || c.status == StatusNeedsReauth {
		c.tok = nil
		c.mu.Unlock()
		if stored == nil {
			return p.notConnected(subject)
		}
		return p.needsReauth(subject, c.detail)
	}
	if c.tok != nil && !c.stale && p.now().Before(c.tok.Expiry.Add(-p.margin())) {
		c.mu.Unlock()
		return nil
	}
	cur = c.tok
	meta := maps.Clone(c.meta)
	c.mu.Unlock()

	if cur == nil || cur.RefreshToken == "" {
		return p.markNeedsReauth(ctx, subject, meta, "the connection has no refresh token, so its expired access token cannot be renewed")
	}
	next, newMeta, err := p.traced(ctx, "refresh", func(ctx context.Context) (*tokenSet, map[string]string, error) {
		next, newMeta, err := p.refresh(ctx, cur.RefreshToken)
		if err != nil && p.rereadClient(ctx, err) {
			next, newMeta, err = p.refresh(ctx, cur.RefreshToken) // the server refused the client, so the refresh token is unspent
		}
		return next, newMeta, err
	})
	if errors.Is(err, ErrUnresolvable) {
		return err // the client secret cannot be read: the Ref says why, and logged it
	}
	if err != nil {
		var re *tokenEndpointError
		if errors.As(err, &re) && re.code == "invalid_grant" {
			return p.markNeedsReauth(ctx, subject, meta,
				"the provider refused the stored refresh token (invalid_grant): it was revoked, expired or already used")
		}
		p.log.Warn("credential: refresh failed", "connector", p.cfg.Connector, "slot", p.cfg.Slot.Name, "subject", subject,
			"err", p.cfg.Scrubber.String(errText(err)))
		p.emit(subject, "failed", p.cfg.Scrubber.String(errText(err)))
		return p.classify(err, "refresh the token")
	}
	if next.RefreshToken == "" {
		next.RefreshToken = cur.RefreshToken // no rotation: keep the old one
	}
	for k, v := range newMeta {
		meta[k] = v
	}
	hosts, err := p.narrow(meta)
	if err != nil {
		return err
	}
	// Memory first: the server has already rotated; the new pair must not be lost if the
	// store fails.
	c.mu.Lock()
	c.tok, c.meta, c.hosts, c.stale, c.status, c.detail = next, meta, hosts, false, StatusConnected, ""
	c.mu.Unlock()
	if err := p.save(ctx, subject, next, meta, StatusConnected, ""); err != nil {
		p.log.Error("credential: the refreshed token could not be stored; it is kept in memory", "connector", p.cfg.Connector,
			"slot", p.cfg.Slot.Name, "subject", subject, "err", p.cfg.Scrubber.String(err.Error()))
	}
	p.log.Info("credential: token refreshed", "connector", p.cfg.Connector, "slot", p.cfg.Slot.Name, "subject", subject,
		"rotated", next.RefreshToken != cur.RefreshToken)
	p.emit(subject, "refreshed", "")
	return nil
}

type loaded struct {
	tok            *tokenSet
	meta           map[string]string
	status, detail string
}

// load reads subject's connection from the store; nil, nil if there is none.
func (p *Provider) load(ctx context.Context, subject string) (*loaded, error) {
	rec, err := p.cfg.Store.GetConnection(ctx, p.cfg.Connector, p.cfg.Slot.Name, subject)
	if errors.Is(err, ErrNoConnection) {
		return nil, nil
	}
	if err != nil {
		p.log.Error("credential: reading the connection failed", "connector", p.cfg.Connector, "slot", p.cfg.Slot.Name,
			"subject", subject, "err", p.cfg.Scrubber.String(err.Error()))
		return nil, &Error{Kind: ErrUnavailable, Err: err,
			Message: fmt.Sprintf("the host could not read the connection of credential %s; try again later", p.cfg.Slot.Name)}
	}
	l := &loaded{meta: rec.Metadata, status: rec.Status, detail: rec.Detail}
	if l.meta == nil {
		l.meta = map[string]string{}
	}
	if l.status == "" {
		l.status = StatusConnected
	}
	if len(rec.Token) > 0 && l.status == StatusConnected {
		plain, err := p.cfg.Sealer.Open(p.aad(subject), rec.Token)
		if err != nil {
			p.log.Error("credential: the stored token does not open", "connector", p.cfg.Connector, "slot", p.cfg.Slot.Name,
				"subject", subject, "err", err.Error())
			return nil, &Error{Kind: ErrNeedsReauth, Err: err, Message: p.reauthMessage(subject,
				"the stored token cannot be decrypted with the host's key")}
		}
		var ts tokenSet
		if err := json.Unmarshal(plain, &ts); err != nil || ts.AccessToken == "" {
			return nil, &Error{Kind: ErrNeedsReauth, Err: err, Message: p.reauthMessage(subject, "the stored token is damaged")}
		}
		p.register(&ts)
		l.tok = &ts
	}
	return l, nil
}

func (p *Provider) save(ctx context.Context, subject string, ts *tokenSet, meta map[string]string, status, detail string) error {
	rec := Connection{Connector: p.cfg.Connector, Slot: p.cfg.Slot.Name, Subject: subject, Metadata: maps.Clone(meta),
		Status: status, Detail: detail, Updated: p.now().UTC()}
	if ts != nil {
		plain, err := json.Marshal(ts)
		if err != nil {
			return err
		}
		if rec.Token, err = p.cfg.Sealer.Seal(p.aad(subject), plain); err != nil {
			return fmt.Errorf("sealing the token: %w", err)
		}
	}
	return p.cfg.Store.PutConnection(ctx, rec)
}

// aad binds a sealed token to its connection.
func (p *Provider) aad(subject string) string {
	return "airlock/connection/v1\x00" + p.cfg.Connector + "\x00" + p.cfg.Slot.Name + "\x00" + subject
}

func (p *Provider) markNeedsReauth(ctx context.Context, subject string, meta map[string]string, detail string) error {
	c := p.conn(subject)
	c.mu.Lock()
	c.tok, c.status, c.detail, c.stale = nil, StatusNeedsReauth, detail, false
	c.mu.Unlock()
	if err := p.save(ctx, subject, nil, meta, StatusNeedsReauth, detail); err != nil {
		p.log.Error("credential: marking the connection needs_reauth failed", "connector", p.cfg.Connector,
			"slot", p.cfg.Slot.Name, "subject", subject, "err", p.cfg.Scrubber.String(err.Error()))
	}
	p.log.Warn("credential: connection needs re-authorisation", "connector", p.cfg.Connector, "slot", p.cfg.Slot.Name,
		"subject", subject, "detail", detail)
	p.emit(subject, StatusNeedsReauth, detail)
	return p.needsReauth(subject, detail)
}

// narrow returns the hosts the token may go to when the slot uses instance_url, or nil.
func (p *Provider) narrow(meta map[string]string) ([]string, error) {
	if !p.oauth.InstanceURL {
		return nil, nil
	}
	raw := meta[MetadataInstanceURL]
	bad := func(why string) error {
		return &Error{Kind: ErrRefused, Message: fmt.Sprintf(
			"the token endpoint of credential %s answered with %s; ask an admin to check the connector's token_url and hosts",
			p.cfg.Slot.Name, why)}
	}
	if raw == "" {
		return nil, bad("no instance_url")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Hostname() == "" {
		return nil, bad("an instance_url that is not an https URL")
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if !matchHosts(p.hosts, host) {
		return nil, bad(fmt.Sprintf("an instance_url host (%s) outside the slot's hosts (%s)", host, strings.Join(p.hosts, ", ")))
	}
	return []string{host}, nil
}

// matchHosts matches host against exact names and "*.example.com" patterns (subdomains only).
func matchHosts(patterns []string, host string) bool {
	for _, pat := range patterns {
		pat = strings.ToLower(pat)
		if suffix, ok := strings.CutPrefix(pat, "*"); ok {
			if strings.HasPrefix(suffix, ".") && strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

func (p *Provider) register(ts *tokenSet) {
	p.cfg.Scrubber.Add(ts.AccessToken)
	p.cfg.Scrubber.Add(ts.RefreshToken)
}

func (p *Provider) emit(subject, typ, detail string) {
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(Event{Connector: p.cfg.Connector, Slot: p.cfg.Slot.Name, Subject: subject, Type: typ,
			Detail: p.cfg.Scrubber.String(detail)})
	}
}

func (p *Provider) connectCommand(subject string) string {
	return fmt.Sprintf("airlock connect %s --subject %s", p.cfg.Connector, subject)
}

func (p *Provider) notConfigured() error {
	return &Error{Kind: ErrNotConfigured, Message: fmt.Sprintf(
		"the credential %s is not configured; ask an admin to fill it in the grant of connector %s", p.cfg.Slot.Name, p.cfg.Connector)}
}

func (p *Provider) notConnected(subject string) error {
	return &Error{Kind: ErrNotConnected, Message: fmt.Sprintf(
		"not connected: subject %s has no %s connection for credential %s; ask an admin to run `%s`",
		subject, p.cfg.Connector, p.cfg.Slot.Name, p.connectCommand(subject))}
}

func (p *Provider) reauthMessage(subject, detail string) string {
	return fmt.Sprintf("the %s connection of subject %s (credential %s) needs to be authorised again: %s; ask an admin to run `%s`",
		p.cfg.Connector, subject, p.cfg.Slot.Name, detail, p.connectCommand(subject))
}

func (p *Provider) needsReauth(subject, detail string) error {
	if detail == "" {
		detail = "the provider no longer accepts it"
	}
	return &Error{Kind: ErrNeedsReauth, Message: p.reauthMessage(subject, detail)}
}
