package host

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host/internal/credential"
	"github.com/airlock-dev/airlock/host/manifest"
)

// ConnectRequest asks [Host.Connect] to connect a subject's account to a connector's
// oauth2_authorization_code credential slot.
type ConnectRequest struct {
	// Connector is the loaded connector's name. Required.
	Connector string
	// Slot is the credential slot to connect. Default: the connector's only
	// oauth2_authorization_code slot (an error names them when there are several).
	Slot string
	// Subject is the user or tenant whose account is connected; calls made for this subject use
	// the connection. Required.
	Subject string
	// ListenAddr is the loopback address the provider's redirect is received on. Default
	// "127.0.0.1:0" (any free port); the redirect URI is http://ADDR/callback.
	ListenAddr string
	// OnAuthURL is called with the authorization URL once the callback listener is ready; show
	// it to the user (and open a browser). Required.
	OnAuthURL func(authURL string)
}

// ConnectResult describes a connection made by [Host.Connect]. It holds no token.
type ConnectResult struct {
	Connector, Slot, Subject string
	// Metadata is the connection's non-secret metadata (instance_url).
	Metadata map[string]string
	// Expiry is when the access token expires; the host refreshes it before then.
	Expiry time.Time
	// Refreshable says whether the provider issued a refresh token. Without one, the subject
	// must connect again when the access token expires.
	Refreshable bool
}

// Connect runs the OAuth 2.0 authorization-code flow with PKCE (S256) for one subject of a
// loaded connector: it listens on a loopback port, hands the authorization URL to
// req.OnAuthURL, waits for the provider's redirect, refuses a callback whose state does not
// match, exchanges the code (through the connector's checked egress, so the grant's upstreams
// apply) and stores the tokens sealed in the state store (Config.Store, sealed by
// Config.Sealer), replacing the subject's previous connection. No token is returned, logged or
// audited; one credential event ("connected") is audited.
//
// It returns when the connection is stored, the flow fails, or ctx ends: give ctx a deadline,
// a user may never finish signing in. While it runs, the connector version it started on stays
// open (a Close waits for it).
func (h *Host) Connect(ctx context.Context, req ConnectRequest) (*ConnectResult, error) {
	if req.Connector == "" {
		return nil, errors.New("host: connect: name the connector to connect")
	}
	if req.Subject == "" {
		return nil, errors.New("host: connect: a subject is required (the user or tenant whose account is being connected)")
	}
	if req.OnAuthURL == nil {
		return nil, errors.New("host: connect: OnAuthURL is required to show the authorization URL")
	}
	c, ok := h.acquire(req.Connector)
	if !ok {
		loaded := strings.Join(h.Connectors(), ", ")
		if loaded == "" {
			loaded = "none"
		}
		return nil, fmt.Errorf("host: connect: connector %q is not loaded (loaded: %s); grant it first ('airlock grant %s') or name it in the configuration",
			req.Connector, loaded, req.Connector)
	}
	defer c.inflight.Done()
	p, slot, err := c.connectable(req.Slot)
	if err != nil {
		return nil, fmt.Errorf("host: connect: %w", err)
	}
	res, err := p.Connect(ctx, credential.ConnectOptions{Subject: req.Subject, ListenAddr: req.ListenAddr, OnAuthURL: req.OnAuthURL})
	if err != nil {
		return nil, fmt.Errorf("host: %s.%s: %w", req.Connector, slot, err)
	}
	return &ConnectResult{Connector: res.Connector, Slot: res.Slot, Subject: res.Subject, Metadata: res.Metadata,
		Expiry: res.Expiry, Refreshable: res.Refreshable}, nil
}

// connectable returns the provider of the authorization-code slot name (or of the only such
// slot when name is empty).
func (c *connector) connectable(name string) (*credential.Provider, string, error) {
	m := c.manifest
	var codeSlots []string
	for _, cred := range m.Credentials {
		if cred.Kind == manifest.KindOAuth2AuthorizationCode {
			codeSlots = append(codeSlots, cred.Name)
		}
	}
	sort.Strings(codeSlots)
	if name == "" {
		switch len(codeSlots) {
		case 0:
			return nil, "", fmt.Errorf("connector %s has no %s credential slot; its credentials are filled by the grant, not by signing in",
				m.Name, manifest.KindOAuth2AuthorizationCode)
		case 1:
			name = codeSlots[0]
		default:
			return nil, "", fmt.Errorf("connector %s has several %s slots (%s); choose one with --slot",
				m.Name, manifest.KindOAuth2AuthorizationCode, strings.Join(codeSlots, ", "))
		}
	}
	var slot *manifest.Credential
	for i := range m.Credentials {
		if m.Credentials[i].Name == name {
			slot = &m.Credentials[i]
		}
	}
	switch {
	case slot == nil:
		return nil, "", fmt.Errorf("connector %s has no credential slot %q (its %s slots: %s)",
			m.Name, name, manifest.KindOAuth2AuthorizationCode, namesOrNone(codeSlots))
	case slot.Kind != manifest.KindOAuth2AuthorizationCode:
		return nil, "", fmt.Errorf("credential slot %s of %s is %s; only %s slots are connected by signing in (its %s slots: %s)",
			name, m.Name, slot.Kind, manifest.KindOAuth2AuthorizationCode, manifest.KindOAuth2AuthorizationCode, namesOrNone(codeSlots))
	}
	p := c.providers[name]
	if p == nil {
		return nil, "", fmt.Errorf("credential slot %s of %s is not filled by the grant: add its client_id (and a client_secret reference, if the provider needs one) under credentials.%s and grant it again",
			name, m.Name, name)
	}
	return p, name, nil
}

func namesOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
