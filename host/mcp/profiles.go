package mcp

import (
	"context"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host"
)

// Who-asked labels and subject selection a client may send with a call. The labels go to the
// audit trail only (host.CallRequest.Session, Conversation, User): they never decide anything.
const (
	// ConversationMetaKey and UserMetaKey are keys of a tools/call request's _meta naming the
	// conversation and the end user the call is for.
	ConversationMetaKey = "dev.airlock/conversation"
	UserMetaKey         = "dev.airlock/user"
	// DeferMetaKey (true) in a tools/call request's _meta asks for the call to be deferred
	// (host.CallRequest.Defer): a deferrable tool answers {"status":"accepted","job_id":…} at
	// once and airlock_job_status reports the job.
	DeferMetaKey = "dev.airlock/defer"
	// ConversationHeader and UserHeader say the same on the HTTP transport, for every call of
	// the request; they win over _meta (a gateway in front of the agent may set them).
	ConversationHeader = "X-Airlock-Conversation"
	UserHeader         = "X-Airlock-User"
	// SubjectHeader asks, on the HTTP transport, to act for another subject than the agent
	// token's: the call is refused unless the agent's profile lists that subject
	// (host.Profile.Subjects). Nothing else (tool arguments, _meta) selects a subject.
	SubjectHeader = "X-Airlock-Subject"
)

// callRequest is the host call for a tools/call request of tool: the caller's identity (the
// HTTP request's agent token, or the stdio defaults), the subject it asks for, and who asked.
func (s *Server) callRequest(req *sdk.CallToolRequest, tool string) host.CallRequest {
	agent, subject := s.identity(req)
	call := host.CallRequest{Tool: tool, Agent: agent, Subject: subject}
	var meta map[string]any
	if req.Params != nil {
		call.Arguments, meta = req.Params.Arguments, req.Params.Meta
	}
	call.Conversation, _ = meta[ConversationMetaKey].(string)
	call.User, _ = meta[UserMetaKey].(string)
	call.Defer, _ = meta[DeferMetaKey].(bool)
	if req.Session != nil {
		call.Session = req.Session.ID()
	}
	if x := req.Extra; x != nil && x.Header != nil {
		if v := x.Header.Get(ConversationHeader); v != "" {
			call.Conversation = v
		}
		if v := x.Header.Get(UserHeader); v != "" {
			call.User = v
		}
		call.ActAs = x.Header.Get(SubjectHeader)
	}
	return call
}

// agentOf is the agent a request comes from: its HTTP bearer token's, or the stdio default.
func (s *Server) agentOf(req sdk.Request) string {
	if x := req.GetExtra(); x != nil && x.TokenInfo != nil && x.TokenInfo.UserID != "" {
		return x.TokenInfo.UserID
	}
	return s.opts.Agent
}

// ownTools shows each agent only the tools its profile allows (host.Host.Permits): tools/list
// results are filtered by the caller. Calling a tool left out is refused by the host, which
// says which rule refused it.
func (s *Server) ownTools(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		res, err := next(ctx, method, req)
		list, ok := res.(*sdk.ListToolsResult)
		if method != "tools/list" || err != nil || !ok {
			return res, err
		}
		agent := s.agentOf(req)
		kept := list.Tools[:0:0]
		for _, t := range list.Tools {
			if s.h.Permits(agent, t.Name) {
				kept = append(kept, t)
			}
		}
		list.Tools = kept
		return list, nil
	}
}

// nudgeLocked tells connected clients to list their tools again after the agent profiles
// changed, when the tool list itself did not (so the SDK sent nothing): re-adding a tool as it
// is makes the SDK send notifications/tools/list_changed to every session. Clients whose list
// did not change list the same tools again. s.syncMu must be held.
func (s *Server) nudgeLocked(changedTools bool) {
	gen := s.h.ProfilesGeneration()
	if gen == s.profilesGen {
		return
	}
	s.profilesGen = gen
	if changedTools {
		return
	}
	for _, t := range s.h.Tools() {
		if _, ok := s.tools[t.Name]; ok {
			s.sdk.AddTool(sdkTool(t), s.handler(t.Name, t.NeedsConfirmation))
			return
		}
	}
}
