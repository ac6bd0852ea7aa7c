package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host/store"
)

// HTTPPath is where HTTPHandler serves the MCP endpoint (streamable HTTP).
const HTTPPath = "/mcp"

// Defaults of HTTPOptions.
const (
	DefaultSessionIdleTimeout  = 30 * time.Minute
	DefaultMaxSessions         = 1000
	DefaultMaxSessionsPerAgent = 100
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultReadTimeout         = 30 * time.Second
	DefaultIdleTimeout         = 30 * time.Second
)

// HTTPOptions configures HTTPHandler and NewHTTPServer. A nil *HTTPOptions or a zero field
// means the documented default.
type HTTPOptions struct {
	// Stateless serves without MCP sessions (each request stands alone, no server-to-client
	// notifications). Default false: sessions, so clients get notifications/tools/list_changed.
	Stateless bool

	// AllowedOrigins are the browser origins (scheme://host[:port], as in the Origin header)
	// allowed to call the endpoint. A request without an Origin header (any non-browser client)
	// is allowed; a request with one gets 403 unless the origin is listed here, or it is a
	// loopback origin (localhost, 127.0.0.0/8, [::1]) and the request arrived on a loopback
	// address. The server's own host name is not allowed by default: under DNS rebinding a
	// hostile page's origin is exactly that. See CheckOrigin for the accepted form.
	AllowedOrigins []string

	// SessionIdleTimeout closes a session after this long without a request in progress
	// (an open GET stream counts as one). Default DefaultSessionIdleTimeout; negative never
	// closes idle sessions.
	SessionIdleTimeout time.Duration
	// MaxSessionsPerAgent bounds the open sessions of one agent: opening one more closes that
	// agent's least recently used idle session (or gets 503 when all of them have a request in
	// progress). Default DefaultMaxSessionsPerAgent.
	MaxSessionsPerAgent int
	// MaxSessions bounds the open sessions of all agents: beyond it, initialize gets 503 with
	// Retry-After. Default DefaultMaxSessions.
	MaxSessions int

	// Timeouts of the *http.Server NewHTTPServer returns: for the request headers, for the whole
	// request (headers and body; a response may stream for longer), and for an idle keep-alive
	// connection. Defaults DefaultReadHeaderTimeout, DefaultReadTimeout, DefaultIdleTimeout.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
}

func (o *HTTPOptions) withDefaults() HTTPOptions {
	var c HTTPOptions
	if o != nil {
		c = *o
		c.AllowedOrigins = append([]string(nil), o.AllowedOrigins...)
	}
	if c.SessionIdleTimeout == 0 {
		c.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if c.MaxSessionsPerAgent <= 0 {
		c.MaxSessionsPerAgent = DefaultMaxSessionsPerAgent
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	return c
}

// NewHTTPServer returns an *http.Server for handler with the timeouts of opts, so that a
// client that sends nothing, half a request or keeps an idle connection open is disconnected
// (no WriteTimeout: MCP responses stream for as long as a call or an SSE stream lasts).
func NewHTTPServer(handler http.Handler, opts *HTTPOptions, logger *slog.Logger) *http.Server {
	o := opts.withDefaults()
	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	if logger != nil {
		hs.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	}
	return hs
}

// CheckOrigin returns the canonical form of an allowed origin (lowercase scheme://host[:port],
// without a default port), or an error saying what is wrong with it.
func CheckOrigin(origin string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("origin %q: write it as the browser sends it, scheme://host[:port], e.g. https://console.example.com", origin)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "80" && u.Scheme == "http" || port == "443" && u.Scheme == "https" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// HTTPHandler serves the MCP streamable HTTP transport at HTTPPath. In order, every request:
//
//   - with an Origin header that is not allowed (see HTTPOptions.AllowedOrigins) gets 403;
//   - must carry "Authorization: Bearer TOKEN" with the token of an agent in agents; anything
//     else (no token, a wrong one, a revoked one) gets 401 with a WWW-Authenticate: Bearer
//     challenge (RFC 6750); an expired one too, with a body and challenge that say so. The token is checked on every request, so a revoked agent is
//     refused at once, and its open sessions (and their SSE streams) are closed within a second;
//   - other than initialize, must name its session (Mcp-Session-Id): without one it gets 400,
//     with an unknown or expired one 404 (the client then initializes again). A session stays
//     bound to the agent that opened it: another agent's token on it gets 403;
//   - calling a method the server does not implement gets the JSON-RPC error -32601.
//
// Calls run as the token's agent and subject. Sessions close after HTTPOptions.SessionIdleTimeout
// without a request and are bounded in number per agent and in total. opts may be nil; the
// handler copies it.
func (s *Server) HTTPHandler(agents *Agents, opts *HTTPOptions) http.Handler {
	o := opts.withDefaults()
	origins := map[string]bool{}
	for _, a := range o.AllowedOrigins {
		if c, err := CheckOrigin(a); err == nil {
			origins[c] = true
		} else {
			s.opts.Logger.Warn("ignoring an allowed origin that is not one", "err", err)
		}
	}
	mcpHandler := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.sdk },
		&sdk.StreamableHTTPOptions{Stateless: o.Stateless, Logger: s.opts.Logger})
	verify := func(_ context.Context, token string, r *http.Request) (*auth.TokenInfo, error) {
		id, ok, err := agents.Verify(token)
		if errors.Is(err, store.ErrExpired) {
			if f, _ := r.Context().Value(expiredKey{}).(*bool); f != nil {
				*f = true
			}
			return nil, fmt.Errorf("%w: %s", auth.ErrInvalidToken, expiredAgentToken)
		}
		if err != nil {
			s.opts.Logger.Error("checking an agent token failed (the agents file or the state store cannot be read); refusing the request", "path", agents.Path(), "err", err)
			return nil, fmt.Errorf("%w: the server cannot check tokens", auth.ErrInvalidToken)
		}
		if !ok {
			return nil, auth.ErrInvalidToken
		}
		// UserID binds the session to the agent (the SDK refuses another agent on it).
		return &auth.TokenInfo{UserID: id.Name, Extra: map[string]any{subjectKey: id.Subject}}, nil
	}
	var sessions *sessionTable
	inner := http.Handler(mcpHandler)
	if !o.Stateless {
		sessions = newSessionTable(s, agents, o)
		inner = sessions.wrap(mcpHandler)
	}
	mux := http.NewServeMux()
	mux.Handle(HTTPPath, inner)
	authed := auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && !originAllowed(origin, origins, r) {
			http.Error(w, fmt.Sprintf("Forbidden: origin %s is not allowed to call this server (an admin can allow it with --allow-origin)", origin), http.StatusForbidden)
			return
		}
		expired := new(bool) // set by verify, for the challenge
		r = r.WithContext(context.WithValue(r.Context(), expiredKey{}, expired))
		authed.ServeHTTP(&challenger{ResponseWriter: w, r: r, expired: expired}, r)
	})
}

// expiredAgentToken is what the holder of an expired agent token is told (in the 401's body and
// challenge): not who it was issued to, only what to do.
const expiredAgentToken = "the agent token has expired; ask an admin for a new one (airlock agent revoke NAME, then airlock agent add NAME --ttl 720h)"

// expiredKey marks, in a request's context, a *bool verify sets when the token had expired.
type expiredKey struct{}

// originAllowed reports whether a browser page from origin may call the server: it is in the
// allow-list, or it is a loopback origin and the request came in on a loopback address.
func originAllowed(origin string, allowed map[string]bool, r *http.Request) bool {
	c, err := CheckOrigin(origin)
	if err != nil {
		return false // "null" (sandboxed frames, file:) and anything malformed
	}
	if allowed[c] {
		return true
	}
	u, _ := url.Parse(c)
	return isLoopbackHost(u.Hostname()) && arrivedOnLoopback(r)
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

func arrivedOnLoopback(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// challenger adds the RFC 6750 challenge to a 401: realm, and error="invalid_token" when a
// token was presented (none when the request had no credentials, as §3.1 asks).
// resource_metadata (RFC 9728) is not sent: agent tokens come from an admin ('airlock agent
// add'), not from an OAuth authorization server a client could discover.
type challenger struct {
	http.ResponseWriter
	r       *http.Request
	expired *bool // the token presented had expired
}

func (c *challenger) WriteHeader(code int) {
	if code == http.StatusUnauthorized && c.Header().Get("WWW-Authenticate") == "" {
		v := `Bearer realm="airlock"`
		switch {
		case *c.expired:
			v += `, error="invalid_token", error_description="` + expiredAgentToken + `"`
		case c.r.Header.Get("Authorization") != "":
			v += `, error="invalid_token", error_description="the token is unknown or revoked; ask an admin for an agent token (airlock agent add)"`
		}
		c.Header().Set("WWW-Authenticate", v)
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *challenger) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *challenger) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// writeRPCError answers a JSON-RPC request with an error object.
func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// rpcMessage is the part of a JSON-RPC message the handler looks at.
type rpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
}

// peekBody reads a POST body (at most sdk.DefaultMaxRequestBodyBytes) and puts it back. ok is
// false when the body was too large or unreadable; the response has then been written.
func peekBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, sdk.DefaultMaxRequestBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "failed to read body", http.StatusBadRequest)
		}
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	return data, true
}

// sdkMethods are the requests the SDK's server handles (go-sdk serverMethodInfos; a test pins
// the list against the SDK). Any other request method gets -32601 from HTTPHandler.
var sdkMethods = map[string]bool{
	"initialize": true, "ping": true, "tools/list": true, "tools/call": true,
	"prompts/list": true, "prompts/get": true, "resources/list": true, "resources/templates/list": true,
	"resources/read": true, "resources/subscribe": true, "resources/unsubscribe": true,
	"completion/complete": true, "logging/setLevel": true, "server/discover": true, "subscriptions/listen": true,
}

const subjectKey = "dev.airlock/subject"

// identityOf returns the authenticated agent of an HTTP request, if any.
func identityOf(req *sdk.CallToolRequest) (Identity, bool) {
	if req.Extra == nil || req.Extra.TokenInfo == nil || req.Extra.TokenInfo.UserID == "" {
		return Identity{}, false
	}
	ti := req.Extra.TokenInfo
	subject, _ := ti.Extra[subjectKey].(string)
	return Identity{Name: ti.UserID, Subject: subject}, true
}
