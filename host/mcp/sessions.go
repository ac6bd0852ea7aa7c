package mcp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// sessionTable tracks the HTTP sessions of a handler: who opened each, with which token, when
// it was last used and how many requests are in progress on it. A sweeper closes sessions that
// stayed idle too long and those whose token was revoked; it runs only while sessions exist.
type sessionTable struct {
	srv    *Server
	agents *Agents
	opts   HTTPOptions
	tick   time.Duration

	mu       sync.Mutex
	byID     map[string]*trackedSession
	pending  int // initialize requests admitted whose session is not yet known
	sweeping bool
}

type trackedSession struct {
	id, agent, tokenHash string
	added, last          time.Time
	active               int // requests in progress, an open GET stream included
}

func newSessionTable(s *Server, agents *Agents, o HTTPOptions) *sessionTable {
	tick := 500 * time.Millisecond
	if o.SessionIdleTimeout > 0 {
		tick = min(tick, max(o.SessionIdleTimeout/4, 10*time.Millisecond))
	}
	return &sessionTable{srv: s, agents: agents, opts: o, tick: tick, byID: map[string]*trackedSession{}}
}

// newerProtocol is the first protocol version without sessions (SEP-2575); the SDK answers such
// requests on a stateful server with an error listing the versions it supports.
const newerProtocol = "2026-07-28"

func (t *sessionTable) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid := r.Header.Get("Mcp-Session-Id")
		ti := auth.TokenInfoFromContext(r.Context())
		if ti == nil { // not reached: HTTPHandler authenticates first
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			body, ok := peekBody(w, r)
			if !ok {
				return
			}
			msgs := rpcMessages(body)
			if sid == "" {
				if !opensSession(msgs, r) {
					var id json.RawMessage
					if len(msgs) == 1 {
						id = msgs[0].ID
					}
					writeRPCError(w, http.StatusBadRequest, id, -32600,
						"Bad Request: no Mcp-Session-Id header; send initialize first, then repeat the Mcp-Session-Id it returns on every request")
					return
				}
				t.open(w, r, next, ti.UserID)
				return
			}
			if len(msgs) == 1 && len(msgs[0].ID) > 0 && !sdkMethods[msgs[0].Method] && t.owns(sid, ti.UserID) {
				writeRPCError(w, http.StatusOK, msgs[0].ID, -32601, fmt.Sprintf("method %q not found: this server implements initialize, ping, tools/list and tools/call", msgs[0].Method))
				return
			}
		}
		if sid != "" {
			t.begin(sid)
			defer t.end(sid)
		}
		next.ServeHTTP(w, r)
	})
}

// rpcMessages decodes a POST body as one JSON-RPC message or a batch; nil if it is neither.
func rpcMessages(body []byte) []rpcMessage {
	var one rpcMessage
	if json.Unmarshal(body, &one) == nil {
		return []rpcMessage{one}
	}
	var batch []rpcMessage
	json.Unmarshal(body, &batch)
	return batch
}

// opensSession reports whether a POST without a session may go on: it initializes (or asks
// which versions the server speaks), or it uses a sessionless protocol version the SDK answers.
func opensSession(msgs []rpcMessage, r *http.Request) bool {
	if v := r.Header.Get("Mcp-Protocol-Version"); v >= newerProtocol {
		return true
	}
	for _, m := range msgs {
		if m.Method == "initialize" || m.Method == "server/discover" {
			return true
		}
	}
	return false
}

// open serves a request that may create a session, within the session limits.
func (t *sessionTable) open(w http.ResponseWriter, r *http.Request, next http.Handler, agent string) {
	if why := t.admit(agent); why != "" {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "Service Unavailable: "+why+"; retry later, or close sessions you no longer use (DELETE)", http.StatusServiceUnavailable)
		return
	}
	hash := ""
	if f := strings.Fields(r.Header.Get("Authorization")); len(f) == 2 {
		hash = hashToken(f[1])
	}
	cw := &sessionCapture{ResponseWriter: w, t: t, agent: agent, tokenHash: hash}
	defer func() {
		t.mu.Lock()
		t.pending--
		t.mu.Unlock()
		if cw.id != "" {
			t.end(cw.id)
		}
	}()
	next.ServeHTTP(cw, r)
}

// admit makes room for a new session of agent: beyond MaxSessionsPerAgent its least recently
// used idle session is closed; beyond MaxSessions, or when all of the agent's sessions are busy,
// the new one is refused and admit says why.
func (t *sessionTable) admit(agent string) (refused string) {
	live, at := t.live()
	t.mu.Lock()
	t.pruneLocked(live, at)
	var mine []*trackedSession
	for _, s := range t.byID {
		if s.agent == agent {
			mine = append(mine, s)
		}
	}
	var evict *trackedSession
	if len(mine) >= t.opts.MaxSessionsPerAgent {
		for _, s := range mine {
			if s.active == 0 && (evict == nil || s.last.Before(evict.last)) {
				evict = s
			}
		}
		if evict != nil {
			delete(t.byID, evict.id)
		}
	}
	switch {
	case len(mine) >= t.opts.MaxSessionsPerAgent && evict == nil:
		refused = fmt.Sprintf("all %d sessions of this agent are busy", len(mine))
	case len(t.byID)+t.pending >= t.opts.MaxSessions:
		refused = fmt.Sprintf("the server has its maximum of %d sessions open", t.opts.MaxSessions)
	default:
		t.pending++
	}
	t.mu.Unlock()
	if evict != nil {
		t.srv.opts.Logger.Info("closed the least recently used session of an agent at its session limit",
			"agent", agent, "limit", t.opts.MaxSessionsPerAgent)
		t.closeSessions(live, []string{evict.id})
	}
	return refused
}

// live returns the SDK's open sessions by ID, and the time just before it listed them.
func (t *sessionTable) live() (map[string]*sdk.ServerSession, time.Time) {
	at := time.Now()
	m := map[string]*sdk.ServerSession{}
	for ss := range t.srv.sdk.Sessions() {
		if id := ss.ID(); id != "" {
			m[id] = ss
		}
	}
	return m, at
}

// pruneLocked forgets sessions the SDK closed (a client's DELETE, a failed initialize). A
// session added after the list was taken is not in it yet, and is kept.
func (t *sessionTable) pruneLocked(live map[string]*sdk.ServerSession, at time.Time) {
	for id, s := range t.byID {
		if live[id] == nil && s.added.Before(at) {
			delete(t.byID, id)
		}
	}
}

func (t *sessionTable) closeSessions(live map[string]*sdk.ServerSession, ids []string) {
	for _, id := range ids {
		if ss := live[id]; ss != nil {
			ss.Close()
		}
	}
}

func (t *sessionTable) add(id, agent, tokenHash string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byID[id]; ok {
		return
	}
	now := time.Now()
	t.byID[id] = &trackedSession{id: id, agent: agent, tokenHash: tokenHash, added: now, last: now, active: 1}
	if !t.sweeping {
		t.sweeping = true
		go t.sweep()
	}
}

func (t *sessionTable) owns(id, agent string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byID[id]
	return s != nil && s.agent == agent
}

func (t *sessionTable) begin(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byID[id]; s != nil {
		s.active++
		s.last = time.Now()
	}
}

func (t *sessionTable) end(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.byID[id]; s != nil {
		s.active--
		s.last = time.Now()
	}
}

// sweep closes idle and revoked sessions every tick until none is left.
func (t *sessionTable) sweep() {
	ticker := time.NewTicker(t.tick)
	defer ticker.Stop()
	for range ticker.C {
		valid, err := t.agents.tokenHashes()
		live, now := t.live()
		var idle, revoked []string
		t.mu.Lock()
		t.pruneLocked(live, now)
		for id, s := range t.byID {
			switch {
			case err == nil && !valid[s.tokenHash]:
				revoked = append(revoked, id)
			case t.opts.SessionIdleTimeout > 0 && s.active == 0 && now.Sub(s.last) >= t.opts.SessionIdleTimeout:
				idle = append(idle, id)
			default:
				continue
			}
			delete(t.byID, id)
		}
		done := len(t.byID) == 0
		if done {
			t.sweeping = false
		}
		t.mu.Unlock()
		t.closeSessions(live, append(idle, revoked...))
		if len(idle) > 0 {
			t.srv.opts.Logger.Info("closed idle MCP sessions", "sessions", len(idle), "idle_timeout", t.opts.SessionIdleTimeout)
		}
		if len(revoked) > 0 {
			t.srv.opts.Logger.Info("closed the MCP sessions of revoked agent tokens", "sessions", len(revoked))
		}
		if done {
			return
		}
	}
}

// sessionCapture records the session an initialize request creates, as the SDK sets its
// Mcp-Session-Id header, before the response streams.
type sessionCapture struct {
	http.ResponseWriter
	t                *sessionTable
	agent, tokenHash string
	id               string
	wrote            bool
}

func (c *sessionCapture) WriteHeader(code int) {
	if !c.wrote {
		c.wrote = true
		if id := c.Header().Get("Mcp-Session-Id"); id != "" && code < 300 {
			c.id = id
			c.t.add(id, c.agent, c.tokenHash)
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *sessionCapture) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

func (c *sessionCapture) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *sessionCapture) Unwrap() http.ResponseWriter { return c.ResponseWriter }
