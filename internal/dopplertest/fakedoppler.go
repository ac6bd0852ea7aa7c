// Package dopplertest is a local stand-in for Doppler's API, for tests: the one endpoint airlock
// reads, GET /v3/configs/config/secret, as Doppler documents it. A service token (bearer) reads
// one project and config; a success is {"name","value":{"raw","computed","note"},"success":true},
// a failure {"messages":[…],"success":false} with 401 (unknown token), 403 (another project or
// config), 404 (no such secret) or 429 (with Retry-After).
package dopplertest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	URL string

	mu      sync.Mutex
	tokens  map[string]string            // token → "project/config" it reads
	secrets map[string]map[string]string // "project/config" → name → raw value
	auth    []string                     // Authorization headers of the reads
	limited bool
}

// Start starts a fake, closed when the test ends.
func Start(t testing.TB) *Server {
	s := &Server{tokens: map[string]string{}, secrets: map[string]map[string]string{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// SetTokens replaces the valid service tokens: token → "project/config" it reads. A token left
// out is revoked.
func (s *Server) SetTokens(tokens map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = tokens
}

// Set writes a secret's raw value. A value "${NAME}rest" computes to NAME's value then rest.
func (s *Server) Set(projectConfig, name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets[projectConfig] == nil {
		s.secrets[projectConfig] = map[string]string{}
	}
	s.secrets[projectConfig][name] = value
}

// Limit makes every read answer 429 with Retry-After: 12 (on) or not.
func (s *Server) Limit(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited = on
}

// Reads returns the Authorization header of every read with a valid token, in order.
func (s *Server) Reads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...)
}

func fail(w http.ResponseWriter, status int, msgs ...string) {
	b, _ := json.Marshal(map[string]any{"messages": msgs, "success": false})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	scope, ok := s.tokens[tok]
	if !ok {
		fail(w, 401, "Invalid Auth token "+tok) // echoes the token: a client must not repeat it
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != "/v3/configs/config/secret" {
		fail(w, 404, "Not found")
		return
	}
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	if s.limited {
		w.Header().Set("Retry-After", "12")
		fail(w, 429, "Rate limit exceeded")
		return
	}
	q := r.URL.Query()
	pc := q.Get("project") + "/" + q.Get("config")
	if pc != scope {
		fail(w, 403, "This token does not have access to requested project '"+q.Get("project")+"'")
		return
	}
	raw, ok := s.secrets[pc][q.Get("name")]
	if !ok {
		fail(w, 404, "Could not find requested secret")
		return
	}
	computed := raw
	if ref, rest, ok := strings.Cut(strings.TrimPrefix(raw, "${"), "}"); ok && strings.HasPrefix(raw, "${") {
		computed = s.secrets[pc][ref] + rest
	}
	b, _ := json.Marshal(map[string]any{"name": q.Get("name"), "value": map[string]any{"raw": raw, "computed": computed, "note": ""}, "success": true})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
