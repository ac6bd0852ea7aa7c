package credential

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
)

// maxTokenResponse caps a token endpoint's answer, in bytes.
const maxTokenResponse = 1 << 20

// tokenEndpointError is an error answer of a token endpoint: its HTTP status and OAuth error
// code (RFC 6749 §5.2). Its text never holds the response body.
type tokenEndpointError struct {
	status int
	code   string
}

func (e *tokenEndpointError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("token endpoint answered HTTP %d", e.status)
	}
	return fmt.Sprintf("token endpoint answered HTTP %d, error %q", e.status, e.code)
}

// errText renders a cause for logs: for an oauth2.RetrieveError only the status and code, since
// its Error() includes the response body.
func errText(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return asEndpointError(re).Error()
	}
	return err.Error()
}

func asEndpointError(re *oauth2.RetrieveError) *tokenEndpointError {
	e := &tokenEndpointError{code: safeCode(re.ErrorCode)}
	if re.Response != nil {
		e.status = re.Response.StatusCode
	}
	return e
}

// safeCode keeps an OAuth error code only if it looks like one (RFC 6749 §5.2: %x20-21 / %x23-5B
// / %x5D-7E); anything else might be echoed input.
func safeCode(code string) string {
	if len(code) > 64 {
		return "(unreadable)"
	}
	for _, r := range code {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return "(unreadable)"
		}
	}
	return code
}

// normalize turns any token endpoint failure into *tokenEndpointError or a transport error.
func normalize(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return asEndpointError(re)
	}
	return err
}

// classify maps a token endpoint failure to an *Error. op says what was being done ("refresh the token").
func (p *Provider) classify(err error, op string) error {
	var te *tokenEndpointError
	if errors.As(err, &te) {
		if te.status >= 500 || te.status == http.StatusTooManyRequests || (te.status == 0 && te.code == "") {
			return &Error{Kind: ErrUnavailable, Err: err, Message: fmt.Sprintf(
				"the token endpoint for credential %s failed to %s (HTTP %d); try again later", p.cfg.Slot.Name, op, te.status)}
		}
		what := te.code
		if what == "" {
			what = "HTTP " + strconv.Itoa(te.status)
		}
		fix := "ask an admin to check the client_id and client_secret in the grant"
		switch p.cfg.Slot.Kind {
		case manifest.KindOAuth2JWTBearer:
			fix = "ask an admin to check the grant's client_id, username and private key, and that the user is pre-authorised for the app"
		case manifest.KindOAuth2AuthorizationCode:
			fix = "ask an admin to check the grant's client_id and client_secret"
		}
		return &Error{Kind: ErrRefused, Err: err, Message: fmt.Sprintf(
			"the token endpoint refused to %s for credential %s of connector %s (%s); %s", op, p.cfg.Slot.Name, p.cfg.Connector, what, fix)}
	}
	return &Error{Kind: ErrUnavailable, Err: err, Message: fmt.Sprintf(
		"the token endpoint for credential %s could not be reached to %s; try again later", p.cfg.Slot.Name, op)}
}

func (p *Provider) clientCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, p.cfg.HTTPClient)
}

// initClients builds the x/oauth2 configurations once: they remember which client
// authentication style (HTTP Basic or form fields) the token endpoint accepted, so later
// exchanges send one request, not two.
func (p *Provider) initClients() {
	p.codeConf = &oauth2.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret.Expose(),
		Endpoint:     oauth2.Endpoint{AuthURL: p.oauth.AuthorizeURL, TokenURL: p.oauth.TokenURL},
		Scopes:       p.oauth.Scopes,
	}
	p.ccConf = &clientcredentials.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret.Expose(),
		TokenURL: p.oauth.TokenURL, Scopes: p.oauth.Scopes}
}

// clients returns the x/oauth2 configurations with the current client secret: read from
// ClientSecretRef when set, the configurations rebuilt only when it changed.
func (p *Provider) clients(ctx context.Context) (*oauth2.Config, *clientcredentials.Config, error) {
	p.keyMu.Lock()
	defer p.keyMu.Unlock()
	if r := p.cfg.ClientSecretRef; r != nil {
		v, err := r.Value(ctx)
		if err != nil {
			return nil, nil, err
		}
		if v.Expose() != p.cfg.ClientSecret.Expose() {
			p.cfg.ClientSecret = v
			p.initClients()
		}
	}
	return p.codeConf, p.ccConf, nil
}

// currentSigner returns the JWT bearer signer with the current private key: read from
// PrivateKeyRef when set, parsed again only when it changed. A key that does not parse is an
// ErrRefused *Error that never quotes it.
func (p *Provider) currentSigner(ctx context.Context) (*signer, error) {
	p.keyMu.Lock()
	defer p.keyMu.Unlock()
	if r := p.cfg.PrivateKeyRef; r != nil {
		v, err := r.Value(ctx)
		if err != nil {
			return nil, err
		}
		if p.signer == nil || v.Expose() != p.cfg.PrivateKey.Expose() {
			s, err := newSigner(v)
			if err != nil {
				return nil, &Error{Kind: ErrRefused, Message: fmt.Sprintf(
					"the private key of credential %s of connector %s cannot be used: %s; an admin must replace it", p.cfg.Slot.Name, p.cfg.Connector, err)}
			}
			p.cfg.PrivateKey, p.signer = v, s
		}
	}
	if p.signer == nil {
		return nil, p.notConfigured()
	}
	return p.signer, nil
}

// rereadClient is called when a token request failed with err. If the token endpoint refused
// the client (invalid_client, HTTP 401; for JWT bearer also invalid_grant, which is how a key
// the server no longer knows is refused), it reads the client secret and private key references
// again at once and reports whether either changed, so the request is worth one retry.
func (p *Provider) rereadClient(ctx context.Context, err error) bool {
	var te *tokenEndpointError
	if !errors.As(err, &te) || p.cfg.ClientSecretRef == nil && p.cfg.PrivateKeyRef == nil {
		return false
	}
	jwt := p.cfg.Slot.Kind == manifest.KindOAuth2JWTBearer
	if te.code != "invalid_client" && te.status != http.StatusUnauthorized && !(jwt && te.code == "invalid_grant") {
		return false
	}
	p.keyMu.Lock()
	before := [2]string{p.cfg.ClientSecret.Expose(), p.cfg.PrivateKey.Expose()}
	p.keyMu.Unlock()
	if r := p.cfg.ClientSecretRef; r != nil {
		r.Invalidate("", secret.Value{})
		if _, _, err := p.clients(ctx); err != nil {
			return false
		}
	}
	if r := p.cfg.PrivateKeyRef; r != nil && jwt {
		r.Invalidate("", secret.Value{})
		if _, err := p.currentSigner(ctx); err != nil {
			return false
		}
	}
	p.keyMu.Lock()
	defer p.keyMu.Unlock()
	return before != [2]string{p.cfg.ClientSecret.Expose(), p.cfg.PrivateKey.Expose()}
}

// mint obtains a new token for the shared kinds (client credentials, JWT bearer).
func (p *Provider) mint(ctx context.Context) (*tokenSet, map[string]string, error) {
	tok, err := p.mintOnce(ctx)
	if err != nil && p.rereadClient(ctx, normalize(err)) {
		tok, err = p.mintOnce(ctx) // the secret or key changed since it was read: once more with the new one
	}
	var e *Error
	if errors.As(err, &e) {
		return nil, nil, err // the secret or key cannot be read or used: already says why
	}
	if err != nil {
		return nil, nil, p.classify(normalize(err), "issue a token")
	}
	return p.accept(tok, "")
}

// mintOnce sends one token request for the shared kinds.
func (p *Provider) mintOnce(ctx context.Context) (*oauth2.Token, error) {
	switch p.cfg.Slot.Kind {
	case manifest.KindOAuth2ClientCredentials:
		_, cc, err := p.clients(ctx)
		if err != nil {
			return nil, err
		}
		return cc.Token(p.clientCtx(ctx))
	case manifest.KindOAuth2JWTBearer:
		return p.jwtBearer(ctx)
	}
	return nil, fmt.Errorf("credential: mint called for kind %s", p.cfg.Slot.Kind)
}

// refresh exchanges a refresh token.
func (p *Provider) refresh(ctx context.Context, refreshToken string) (*tokenSet, map[string]string, error) {
	old := &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)} // expired: forces the exchange
	conf, _, err := p.clients(ctx)
	if err != nil {
		return nil, nil, err
	}
	tok, err := conf.TokenSource(p.clientCtx(ctx), old).Token()
	if err != nil {
		return nil, nil, normalize(err)
	}
	return p.accept(tok, refreshToken)
}

// accept checks a token response, registers its values with the scrubber and computes its expiry.
// oldRefresh is the refresh token that was exchanged, if any (x/oauth2 copies it into a response
// that has none; so do we).
func (p *Provider) accept(tok *oauth2.Token, oldRefresh string) (*tokenSet, map[string]string, error) {
	if tok == nil || tok.AccessToken == "" {
		return nil, nil, &Error{Kind: ErrRefused, Message: fmt.Sprintf(
			"the token endpoint for credential %s answered without an access token; ask an admin to check the connector's token_url", p.cfg.Slot.Name)}
	}
	ts := &tokenSet{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken}
	if ts.RefreshToken == "" {
		ts.RefreshToken = oldRefresh
	}
	p.register(ts)
	if tt := tok.TokenType; tt != "" && !strings.EqualFold(tt, "bearer") {
		return nil, nil, &Error{Kind: ErrRefused, Message: fmt.Sprintf(
			"the token endpoint for credential %s issued a %q token; airlock sends bearer tokens only", p.cfg.Slot.Name, safeCode(tt))}
	}
	ts.Expiry = p.expiry(tok)
	meta := map[string]string{}
	if v, ok := tok.Extra(MetadataInstanceURL).(string); ok && v != "" {
		meta[MetadataInstanceURL] = v
	}
	return ts, meta, nil
}

// expiry computes when tok expires on the provider's clock: expires_in when given, else the
// slot's assumed lifetime (never "never").
func (p *Provider) expiry(tok *oauth2.Token) time.Time {
	now := p.now()
	switch {
	case tok.ExpiresIn > 0:
		return now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	case !tok.Expiry.IsZero():
		return now.Add(time.Until(tok.Expiry))
	}
	return now.Add(p.oauth.AssumedLifetime())
}

// jwtBearer exchanges a freshly signed assertion (RFC 7523 §2.1).
func (p *Provider) jwtBearer(ctx context.Context) (*oauth2.Token, error) {
	aud := p.oauth.Audience
	if aud == "" {
		u, _ := url.Parse(p.oauth.TokenURL)
		aud = u.Scheme + "://" + u.Host
	}
	sig, err := p.currentSigner(ctx)
	if err != nil {
		return nil, err
	}
	assertion, err := sig.assertion(p.cfg.ClientID, p.cfg.Username, aud, p.now())
	if err != nil {
		return nil, err
	}
	p.cfg.Scrubber.Add(assertion)
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
	if len(p.oauth.Scopes) > 0 {
		form.Set("scope", strings.Join(p.oauth.Scopes, " "))
	}
	return p.postToken(ctx, form)
}

// postToken posts a token request and parses the answer like x/oauth2 does, keeping the extra
// fields (instance_url).
func (p *Provider) postToken(ctx context.Context, form url.Values) (*oauth2.Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.oauth.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the admin's, but keep errors uniform
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" || ct == "text/plain" {
		vals, _ := url.ParseQuery(string(body))
		raw = map[string]any{}
		for k := range vals {
			raw[k] = vals.Get(k)
		}
	} else if err := json.Unmarshal(body, &raw); err != nil {
		raw = nil
	}
	str := func(k string) string { s, _ := raw[k].(string); return s }
	if resp.StatusCode < 200 || resp.StatusCode > 299 || raw == nil || str("access_token") == "" {
		return nil, &tokenEndpointError{status: resp.StatusCode, code: safeCode(str("error"))}
	}
	tok := &oauth2.Token{AccessToken: str("access_token"), TokenType: str("token_type"), RefreshToken: str("refresh_token")}
	switch v := raw["expires_in"].(type) {
	case float64:
		tok.ExpiresIn = int64(v)
	case string:
		tok.ExpiresIn, _ = strconv.ParseInt(v, 10, 64)
	}
	return tok.WithExtra(raw), nil
}
