package mcp

import (
	"context"
	"fmt"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// HTTPPath is where HTTPHandler serves the MCP endpoint (streamable HTTP).
const HTTPPath = "/mcp"

// HTTPOptions configures HTTPHandler. A nil *HTTPOptions means the defaults.
type HTTPOptions struct {
	// Stateless serves without MCP sessions (each request stands alone, no server-to-client
	// notifications). Default false: sessions, so clients get notifications/tools/list_changed.
	Stateless bool
}

// HTTPHandler serves the MCP streamable HTTP transport at HTTPPath. Every request, whatever its
// path, must carry "Authorization: Bearer TOKEN" with the token of an agent in agents; anything
// else (no token, a wrong one, a revoked one) gets 401 and nothing else. The token is checked
// on every request, so a revoked agent is refused at once. A session stays bound to the agent
// that opened it: another agent's token on it gets 403. Calls run as the token's agent and
// subject.
func (s *Server) HTTPHandler(agents *Agents, opts *HTTPOptions) http.Handler {
	var o HTTPOptions
	if opts != nil {
		o = *opts
	}
	mcpHandler := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.sdk },
		&sdk.StreamableHTTPOptions{Stateless: o.Stateless, Logger: s.opts.Logger})
	mux := http.NewServeMux()
	mux.Handle(HTTPPath, mcpHandler)
	verify := func(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		id, ok, err := agents.Verify(token)
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
	return auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(mux)
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
