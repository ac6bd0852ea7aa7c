package mcp

import (
	"context"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// answerUnservedTools sends a tools/call of a tool this server does not list (never granted,
// revoked since the client listed tools, or misspelt) to the host instead of answering it with
// the SDK's bare "unknown tool" protocol error: the host refuses it before anything runs, tells
// the agent why and what to do, and records the refusal in the audit trail (rate-limited there).
func (s *Server) answerUnservedTools(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		cr, ok := req.(*sdk.CallToolRequest)
		if method != "tools/call" || !ok || cr.Params == nil {
			return next(ctx, method, req)
		}
		s.syncMu.Lock()
		_, served := s.tools[cr.Params.Name]
		s.syncMu.Unlock()
		if served {
			return next(ctx, method, req)
		}
		return s.handler(cr.Params.Name, false)(ctx, cr)
	}
}
