// Package cloudsecrettest holds local fakes of cloud secret managers for tests: Google Secret Manager
// with its OAuth token endpoint ([GCP]) and Azure Key Vault with Microsoft Entra ID ([Azure]).
// Each speaks the service's documented wire protocol closely enough for the unmodified official
// SDK to talk to it, and checks the credentials the SDK presents.
package cloudsecrettest

import (
	"encoding/json"
	"net/http"
	"sync"
)

// Stats is what a fake saw.
type Stats struct {
	Reads             int      // secret reads that carried a valid token
	Tokens            int      // access tokens issued
	LastAuthorization string   // the Authorization header of the last secret read
	Rejected          []string // why requests were refused, or that the fake did not know them
}

// recorder is the state both fakes share: the tokens they issued and what they saw.
type recorder struct {
	mu        sync.Mutex
	tokens    map[string]bool
	refuseAll bool
	stats     Stats
}

// Stats returns what the fake saw so far.
func (r *recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Rejected = append([]string(nil), st.Rejected...)
	return st
}

// RevokeTokens forgets every access token issued, as an expiry or a revocation does.
func (r *recorder) RevokeTokens() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.tokens)
}

// RefuseAllTokens makes the service refuse every access token, new ones too (an identity whose
// tokens the service does not accept).
func (r *recorder) RefuseAllTokens() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refuseAll = true
}

// valid reports whether tok is an access token the fake issued and still accepts.
func (r *recorder) valid(tok string) bool { return !r.refuseAll && r.tokens[tok] }

// issue records a new access token, made by mint from the count of tokens issued.
func (r *recorder) issue(mint func(n int) string) string {
	r.stats.Tokens++
	tok := mint(r.stats.Tokens)
	if r.tokens == nil {
		r.tokens = map[string]bool{}
	}
	r.tokens[tok] = true
	return tok
}

func (r *recorder) reject(why string) {
	r.stats.Rejected = append(r.stats.Rejected, why)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
