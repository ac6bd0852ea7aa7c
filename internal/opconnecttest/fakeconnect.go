// Package opconnecttest is a local stand-in for a 1Password Connect server, for tests: its REST
// API v1 as documented and as the official connect-sdk-go calls it. A bearer token; vaults and
// items listed with a SCIM filter on the title (filter=title eq "…"); items read by ID, fields and
// sections included (a list holds summaries without them); errors as {"status":…,"message":…}.
// The token sees the vaults marked visible only: the others are left out of lists and answer 403
// when named by ID.
package opconnecttest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/1Password/connect-sdk-go/onepassword"
)

// ID makes a 1Password-shaped ID (26 lowercase letters and digits) from a short tag.
func ID(tag string) string { return tag + strings.Repeat("0", 26-len(tag)) }

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	URL string

	mu       sync.Mutex
	tokens   map[string]bool
	vaults   []onepassword.Vault
	visible  map[string]bool
	items    map[string][]*onepassword.Item
	requests []string
	status   int
}

// Start starts a fake that accepts tokens, closed when the test ends.
func Start(t testing.TB, tokens ...string) *Server {
	s := &Server{visible: map[string]bool{}, items: map[string][]*onepassword.Item{}}
	s.SetTokens(tokens...)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// SetTokens replaces the valid tokens; the others are revoked.
func (s *Server) SetTokens(tokens ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]bool{}
	for _, t := range tokens {
		s.tokens[t] = true
	}
}

// AddVault adds a vault; visible says whether the token may see it.
func (s *Server) AddVault(id, name string, visible bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vaults = append(s.vaults, onepassword.Vault{ID: id, Name: name})
	s.visible[id] = visible
}

// AddItem adds an item to the vault item.Vault.ID.
func (s *Server) AddItem(item *onepassword.Item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items[item.Vault.ID] = append(s.items[item.Vault.ID], item)
}

// SetField changes the value of a field: a rotation in 1Password.
func (s *Server) SetField(vaultID, itemID, fieldID, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range s.items[vaultID] {
		for _, f := range it.Fields {
			if it.ID == itemID && f.ID == fieldID {
				f.Value = value
			}
		}
	}
}

// FailWith makes every request with a valid token answer status (with Retry-After: 7), or
// answer normally again when status is 0.
func (s *Server) FailWith(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// Requests returns the requests served with a valid token, as "GET /path?query".
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func fail(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]any{"status": status, "message": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func reply(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// titleFilter is the one filter the fake knows. The API reference documents `name eq` for
// vaults and `title eq` for items; the official SDKs send `title eq` for both: both are taken.
var titleFilter = regexp.MustCompile(`^(title|name) eq "([^"]*)"$`)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("1Password-Connect-Version", "1.7.3")
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !s.tokens[tok] {
		fail(w, 401, "Invalid token signature: "+tok) // echoes the token: a client must not repeat it
		return
	}
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
	if s.status != 0 {
		w.Header().Set("Retry-After", "7")
		fail(w, s.status, "failing as told")
		return
	}
	if r.Method != http.MethodGet {
		fail(w, 405, "method not allowed")
		return
	}
	title, filtered := "", false
	if q := r.URL.Query().Get("filter"); q != "" {
		m := titleFilter.FindStringSubmatch(q)
		if m == nil || (m[1] == "name" && strings.Count(strings.Trim(r.URL.Path, "/"), "/") != 1) {
			fail(w, 400, "Invalid filter")
			return
		}
		title, filtered = m[2], true
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "v1" || parts[1] != "vaults" {
		fail(w, 404, "Not Found")
		return
	}
	if len(parts) == 2 {
		out := []onepassword.Vault{}
		for _, v := range s.vaults {
			if s.visible[v.ID] && (!filtered || v.Name == title) {
				out = append(out, v)
			}
		}
		reply(w, out)
		return
	}
	vid := parts[2]
	var vault *onepassword.Vault
	for i := range s.vaults {
		if s.vaults[i].ID == vid {
			vault = &s.vaults[i]
		}
	}
	switch {
	case vault == nil:
		fail(w, 404, "Invalid Vault UUID")
		return
	case !s.visible[vid]:
		fail(w, 403, "Authorization: token doesn't have access to vault "+vid)
		return
	case len(parts) == 3:
		reply(w, vault)
		return
	case len(parts) == 4 && parts[3] == "items":
		out := []onepassword.Item{}
		for _, it := range s.items[vid] {
			if !filtered || it.Title == title {
				out = append(out, onepassword.Item{ID: it.ID, Title: it.Title, Vault: it.Vault, Category: it.Category})
			}
		}
		reply(w, out)
		return
	case len(parts) == 5 && parts[3] == "items":
		for _, it := range s.items[vid] {
			if it.ID == parts[4] {
				reply(w, it)
				return
			}
		}
		fail(w, 404, "Invalid Item UUID")
		return
	}
	fail(w, 404, "Not Found")
}
