package credential

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/airlock-dev/airlock/host/manifest"
)

// Connect errors, for errors.Is.
var (
	// ErrStateMismatch: the callback's state is not the one this flow sent (a forged or stale
	// sign-in); nothing was exchanged or stored.
	ErrStateMismatch = errors.New("the callback's state does not match this sign-in")
	// ErrAuthorizationDenied: the provider redirected back with an error (the user declined, or
	// the request was invalid).
	ErrAuthorizationDenied = errors.New("the provider did not authorise the connection")
)

// ConnectOptions configures [Provider.Connect].
type ConnectOptions struct {
	// Subject is whose connection this is. Required.
	Subject string
	// ListenAddr is the loopback address the callback is received on. Default "127.0.0.1:0"
	// (any free port); the redirect URI is http://ADDR/callback. It must be a loopback address.
	ListenAddr string
	// OnAuthURL is called with the authorization URL once the callback listener is ready; the
	// CLI prints it (and may open a browser). Required.
	OnAuthURL func(authURL string)
}

// ConnectResult describes a connection made by Connect. It holds no token.
type ConnectResult struct {
	Connector, Slot, Subject string
	// Metadata is the connection's non-secret metadata (instance_url).
	Metadata map[string]string
	// Expiry is when the access token expires (it is refreshed automatically).
	Expiry time.Time
	// Refreshable says whether the provider issued a refresh token. Without one, the connection
	// needs a new Connect when the access token expires.
	Refreshable bool
}

// Connect runs the authorization-code flow with PKCE (S256) for opts.Subject: it listens on a
// loopback port, hands the authorization URL (with a random state and the code challenge) to
// opts.OnAuthURL, waits for the provider's redirect to /callback, refuses a callback whose state
// does not match, exchanges the code with the verifier and stores the tokens, sealed, for
// (connector, slot, subject), replacing any previous connection (and a needs_reauth status).
//
// It returns when the connection is stored, the flow fails, or ctx ends (give it a deadline: a
// user may never finish signing in). Only an oauth2_authorization_code slot can be connected.
func (p *Provider) Connect(ctx context.Context, opts ConnectOptions) (*ConnectResult, error) {
	if p.cfg.Slot.Kind != manifest.KindOAuth2AuthorizationCode {
		return nil, fmt.Errorf("credential slot %s is %s; only %s slots are connected by signing in",
			p.cfg.Slot.Name, p.cfg.Slot.Kind, manifest.KindOAuth2AuthorizationCode)
	}
	if opts.Subject == "" {
		return nil, errors.New("connect: a subject is required (the user or tenant whose account is being connected)")
	}
	if opts.OnAuthURL == nil {
		return nil, errors.New("connect: OnAuthURL is required to show the authorization URL")
	}
	if p.cfg.ClientID == "" {
		return nil, p.notConfigured()
	}
	addr := opts.ListenAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("connect: listen address %q is not a loopback IP address and port", addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect: listening for the callback: %w", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	redirect := "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/callback"

	var sb [32]byte
	_, _ = rand.Read(sb[:])
	state := base64.RawURLEncoding.EncodeToString(sb[:])
	verifier := oauth2.GenerateVerifier()
	conf, _, err := p.clients(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("redirect_uri", redirect))

	type outcome struct {
		res *ConnectResult
		err error
	}
	done := make(chan outcome, 1)
	var handled bool // the first callback decides; guarded by mu
	mu := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		mu <- struct{}{}
		defer func() { <-mu }()
		if handled {
			http.Error(w, "this sign-in has already been handled; run airlock connect again", http.StatusGone)
			return
		}
		handled = true
		res, err := p.callback(ctx, r, state, verifier, redirect, opts.Subject)
		if err != nil {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "<!doctype html><title>airlock</title><p>airlock: the connection failed: %s</p>", html.EscapeString(err.Error()))
		} else {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<!doctype html><title>airlock</title><p>airlock: connected. You can close this window.</p>")
		}
		done <- outcome{res, err}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	opts.OnAuthURL(authURL)
	select {
	case o := <-done:
		return o.res, o.err
	case <-ctx.Done():
		return nil, fmt.Errorf("connect: no sign-in completed before the deadline: %w", ctx.Err())
	}
}

// callback checks and completes one redirect.
func (p *Provider) callback(ctx context.Context, r *http.Request, state, verifier, redirect, subject string) (*ConnectResult, error) {
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
		p.log.Warn("credential: connect callback with a wrong state refused", "connector", p.cfg.Connector, "slot", p.cfg.Slot.Name,
			"subject", subject)
		return nil, fmt.Errorf("connect: %w; nothing was stored. Run airlock connect again and finish the sign-in it starts", ErrStateMismatch)
	}
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("connect: %w (%s); run airlock connect again", ErrAuthorizationDenied, safeCode(e))
	}
	code := q.Get("code")
	if code == "" {
		return nil, errors.New("connect: the callback carries no authorization code; run airlock connect again")
	}
	exchange := func() (*oauth2.Token, error) {
		conf, _, err := p.clients(ctx)
		if err != nil {
			return nil, err
		}
		tok, err := conf.Exchange(p.clientCtx(ctx), code, oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("redirect_uri", redirect))
		return tok, normalize(err)
	}
	tok, err := exchange()
	if err != nil && p.rereadClient(ctx, err) {
		tok, err = exchange() // the server refused the client, so the code is unspent
	}
	if errors.Is(err, ErrUnresolvable) {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err != nil {
		err = normalize(err)
		p.log.Warn("credential: code exchange failed", "connector", p.cfg.Connector, "slot", p.cfg.Slot.Name,
			"subject", subject, "err", p.cfg.Scrubber.String(errText(err)))
		return nil, fmt.Errorf("connect: %s", p.classify(err, "exchange the authorization code").Error())
	}
	ts, meta, err := p.accept(tok, "")
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	hosts, err := p.narrow(meta)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := p.save(ctx, subject, ts, meta, StatusConnected, ""); err != nil {
		return nil, fmt.Errorf("connect: storing the connection: %s", p.cfg.Scrubber.String(err.Error()))
	}
	c := p.conn(subject)
	c.mu.Lock()
	c.loaded, c.tok, c.meta, c.hosts, c.stale, c.status, c.detail = true, ts, meta, hosts, false, StatusConnected, ""
	c.mu.Unlock()
	p.log.Info("credential: connected", "connector", p.cfg.Connector, "slot", p.cfg.Slot.Name, "subject", subject,
		"refreshable", ts.RefreshToken != "")
	p.emit(subject, "connected", "")
	return &ConnectResult{Connector: p.cfg.Connector, Slot: p.cfg.Slot.Name, Subject: subject, Metadata: maps.Clone(meta),
		Expiry: ts.Expiry, Refreshable: ts.RefreshToken != ""}, nil
}

// ErrNoRevocation: the slot's manifest names no revocation_url, so tokens can only be
// forgotten by the host, not revoked at the provider.
var ErrNoRevocation = errors.New("the connector's manifest names no revocation_url for this credential, so the provider was not asked to revoke the tokens: revoke the app's access in the provider's account settings")

// Revoke asks the provider to revoke subject's stored tokens (RFC 7009): the refresh token when
// there is one (which ends the grant, and with it its access tokens), else the access token.
// The client authenticates as at the token endpoint. No stored token is not an error. The
// provider's answer is never quoted (it could echo the token).
func (p *Provider) Revoke(ctx context.Context, subject string) error {
	if p.oauth.RevocationURL == "" {
		return ErrNoRevocation
	}
	l, err := p.load(ctx, subject)
	if err != nil || l == nil || l.tok == nil {
		return err
	}
	form := url.Values{"token": {l.tok.AccessToken}, "token_type_hint": {"access_token"}}
	if l.tok.RefreshToken != "" {
		form = url.Values{"token": {l.tok.RefreshToken}, "token_type_hint": {"refresh_token"}}
	}
	code, _, err := p.clients(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.oauth.RevocationURL, nil)
	if err != nil {
		return err
	}
	if code.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(code.ClientID), url.QueryEscape(code.ClientSecret)) // RFC 6749 §2.3.1
	} else {
		form.Set("client_id", code.ClientID)
	}
	body := form.Encode()
	req.Body, req.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("the revocation endpoint of credential %s could not be reached", p.cfg.Slot.Name)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxTokenResponse))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the revocation endpoint of credential %s answered HTTP %d", p.cfg.Slot.Name, resp.StatusCode)
	}
	return nil
}
