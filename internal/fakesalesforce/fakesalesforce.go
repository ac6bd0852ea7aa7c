// Package fakesalesforce is an in-memory fake of the Salesforce REST API and its OAuth token
// endpoint, for tests and the demo. It reproduces the documented behaviour the Salesforce
// connector (plugins/salesforce) and the host's OAuth support rely on:
//
//   - POST /services/oauth2/token: the JWT bearer flow (an RS256 assertion checked against the
//     registered public key: iss is the consumer key, sub the username, aud the login URL, exp at
//     most three minutes ahead) and, on a My Domain only, the client credentials flow. Success is
//     {access_token, instance_url, id, token_type, issued_at, signature, scope} with no
//     expires_in, as Salesforce answers; failure is 400 {"error":…,"error_description":…}.
//   - /services/data/vXX.X/query?q=SOQL: a small SOQL engine (SELECT fields FROM object
//     [WHERE conditions with AND, OR, NOT and parentheses] [ORDER BY …] [LIMIT n], with every
//     documented date literal, string escape and parent relationship) with paging
//     through nextRecordsUrl (/services/data/vXX.X/query/01gD0000002HU6KIAW-2000), done and
//     totalSize.
//   - /services/data/vXX.X/sobjects/OBJECT[/ID]: GET a record (optionally ?fields=a,b), POST a
//     record (201 {id, success, errors}), PATCH a record (204; If-Unmodified-Since gives 412
//     when the record changed since).
//   - Errors as Salesforce sends them: HTTP 4xx with [{"message","errorCode","fields"}]
//     (INVALID_SESSION_ID 401, REQUEST_LIMIT_EXCEEDED 403, NOT_FOUND 404, MALFORMED_QUERY,
//     INVALID_FIELD, INVALID_TYPE, REQUIRED_FIELD_MISSING, … 400), and
//     Sforce-Limit-Info: api-usage=N/M; per-app-api-usage=N/M(appName=airlock) on every API
//     response; API versions 30.0 and earlier answer 410 (retired), 31.0 to 67.0 are served.
//
// Tests observe every request ([Server.Requests]) and count side effects ([Server.Writes]).
// What the server remembers is bounded ([MaxKept], [MaxRecords], [MaxCursors]).
//
//	srv := fakesalesforce.New()
//	tok := srv.IssueToken()                  // or srv.AddToken("my-canary")
//	url, closeFn := srv.Start()
//	defer closeFn()
//	// GET url+"/services/data/v61.0/query?q=SELECT+Id,Name+FROM+Account" with "Authorization: Bearer "+tok
//
// The server starts with seed data: accounts Acme, Globex and Initech, contacts, one
// opportunity in each of Prospecting, Negotiation/Review, Closed Won and Closed Lost, and a
// case (see the exported IDs). A Server is safe for concurrent use.
package fakesalesforce

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds on what a Server remembers, so a benchmark or a hostile test cannot exhaust memory.
const (
	// MaxKept bounds the request log: at least the last MaxKept (and at most twice as many)
	// requests are kept; trimming happens in batches.
	MaxKept = 10_000
	// MaxRecords bounds the records of each object; a create beyond it fails with
	// STORAGE_LIMIT_EXCEEDED, as a full org does.
	MaxRecords = 10_000
	// MaxCursors bounds the open query cursors; the oldest is dropped (its nextRecordsUrl then
	// answers INVALID_QUERY_LOCATOR, as an expired one does).
	MaxCursors = 1_000
	// MaxTokens bounds the issued access tokens; the oldest is forgotten.
	MaxTokens = 10_000

	maxBodySize = 1 << 20
)

// DefaultInstanceURL is the instance_url of token responses unless [Server.SetInstanceURL] says
// otherwise. Tests route it to the server (a grant's upstreams).
const DefaultInstanceURL = "https://acme.my.salesforce.com"

// DefaultAudience is the aud a JWT bearer assertion must carry unless [Server.SetAudience] says
// otherwise: the production login URL.
const DefaultAudience = "https://login.salesforce.com"

// DefaultAPILimit is the org's daily API request allocation unless [Server.SetAPILimit] says
// otherwise.
const DefaultAPILimit = 15000

// API versions: up to RetiredAPIVersion (30.0) are retired and answer 410 Gone, as Salesforce's
// have since Summer '25; RetiredAPIVersion+1 to LatestAPIVersion (31.0 to 67.0, Summer '26)
// are served; later ones do not exist yet (404).
const (
	RetiredAPIVersion = 30
	LatestAPIVersion  = 67
)

// DefaultSessionTimeout is how long an access token stays valid unless
// [Server.SetSessionTimeout] says otherwise (Salesforce's default session timeout).
const DefaultSessionTimeout = 2 * time.Hour

// Request is a request the server received, for tests.
type Request struct {
	Method   string      // HTTP method
	Path     string      // URL path, e.g. /services/data/v61.0/query
	RawQuery string      // the query string as received
	Header   http.Header // as received, including Authorization
	Body     []byte
	// Token is the access token presented (Authorization: Bearer or OAuth), "" for none.
	Token string
	// Authorized reports whether the token was valid (issued, not expired, not revoked).
	Authorized bool
	// Status is the HTTP status the server answered.
	Status int
}

type token struct {
	issued  time.Time
	revoked bool
}

// Server is the fake Salesforce. Create it with [New]. Its methods are safe for concurrent use.
type Server struct {
	mu sync.Mutex

	now            func() time.Time
	instanceURL    string
	audience       string
	sessionTimeout time.Duration
	apiLimit       int
	apiUsage       int
	batchSize      int

	jwtClients map[string]*jwtClient // consumer key -> client
	ccClients  map[string]string     // client id -> secret
	tokens     map[string]*token
	tokenOrder []string

	db      map[string]*table // object -> records
	cursors map[string][]map[string]any
	curList []string
	curSeq  int

	requests []Request
	writes   int
}

// New returns a server with the seed data, no OAuth clients and no tokens, an API limit of
// [DefaultAPILimit], and query batches of 2000 records (Salesforce's default).
func New() *Server {
	s := &Server{
		now: time.Now, instanceURL: DefaultInstanceURL, audience: DefaultAudience,
		sessionTimeout: DefaultSessionTimeout, apiLimit: DefaultAPILimit, batchSize: 2000,
		jwtClients: map[string]*jwtClient{}, ccClients: map[string]string{}, tokens: map[string]*token{},
		db: map[string]*table{}, cursors: map[string][]map[string]any{},
	}
	s.seed()
	return s
}

// Start serves s on a local httptest server and returns its base URL (no trailing slash) and a
// function that stops it.
func (s *Server) Start() (url string, closeFn func()) {
	ts := httptest.NewServer(s)
	return ts.URL, ts.Close
}

// SetClock replaces the clock used for token expiry, assertion checks and record timestamps.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

// SetInstanceURL sets the instance_url that token responses carry.
func (s *Server) SetInstanceURL(u string) {
	s.mu.Lock()
	s.instanceURL = u
	s.mu.Unlock()
}

// SetAudience sets the login URL the server plays: the aud a JWT bearer assertion must carry
// (https://test.salesforce.com for a sandbox). Only a My Domain login URL
// (https://acme.my.salesforce.com) serves the client credentials flow, as in Salesforce.
func (s *Server) SetAudience(aud string) {
	s.mu.Lock()
	s.audience = aud
	s.mu.Unlock()
}

// SetSessionTimeout sets how long access tokens stay valid after they are issued.
func (s *Server) SetSessionTimeout(d time.Duration) {
	s.mu.Lock()
	s.sessionTimeout = d
	s.mu.Unlock()
}

// SetAPILimit sets the org's API request allocation (the M of api-usage=N/M); n <= 0 means
// [DefaultAPILimit].
func (s *Server) SetAPILimit(n int) {
	s.mu.Lock()
	if n <= 0 {
		n = DefaultAPILimit
	}
	s.apiLimit = n
	s.mu.Unlock()
}

// SetAPIUsage sets the API requests used so far (the N of api-usage=N/M). Once N reaches M,
// every API request fails with 403 REQUEST_LIMIT_EXCEEDED.
func (s *Server) SetAPIUsage(n int) {
	s.mu.Lock()
	s.apiUsage = max(n, 0)
	s.mu.Unlock()
}

// APIUsage returns the API requests counted so far.
func (s *Server) APIUsage() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiUsage
}

// SetBatchSize sets how many records one query response holds before nextRecordsUrl (Salesforce:
// 2000 by default, 200 to 2000 with Sforce-Query-Options; the fake allows any n >= 1 so tests can
// page through a few records).
func (s *Server) SetBatchSize(n int) {
	s.mu.Lock()
	s.batchSize = max(n, 1)
	s.mu.Unlock()
}

// AddToken makes tok a valid access token, issued now (for tests that inject a static bearer).
func (s *Server) AddToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addToken(tok)
}

// IssueToken returns a new valid access token, as the token endpoint would.
func (s *Server) IssueToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newToken()
}

func (s *Server) newToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	tok := "00DD0000000fake!" + base64.RawURLEncoding.EncodeToString(b)
	s.addToken(tok)
	return tok
}

func (s *Server) addToken(tok string) {
	if _, ok := s.tokens[tok]; !ok {
		s.tokenOrder = append(s.tokenOrder, tok)
	}
	s.tokens[tok] = &token{issued: s.now()}
	if len(s.tokenOrder) > 2*MaxTokens {
		drop := s.tokenOrder[:len(s.tokenOrder)-MaxTokens]
		for _, t := range drop {
			delete(s.tokens, t)
		}
		s.tokenOrder = append([]string(nil), s.tokenOrder[len(s.tokenOrder)-MaxTokens:]...)
	}
}

// RevokeToken revokes tok: API requests with it get 401 INVALID_SESSION_ID.
func (s *Server) RevokeToken(tok string) {
	s.mu.Lock()
	if t, ok := s.tokens[tok]; ok {
		t.revoked = true
	}
	s.mu.Unlock()
}

// ExpireTokens expires every access token issued so far, as a session timeout would.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	for _, t := range s.tokens {
		t.revoked = true
	}
	s.mu.Unlock()
}

// TokensIssued returns how many access tokens the token endpoint has issued.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Path == tokenPath && r.Status == http.StatusOK {
			n++
		}
	}
	return n
}

// Requests returns the requests received so far (at least the last [MaxKept]).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.requests)
	for i := range out {
		out[i].Header = out[i].Header.Clone()
	}
	return out
}

// Writes returns how many records were created or updated successfully: the side effects.
func (s *Server) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func (s *Server) valid(tok string) bool {
	t, ok := s.tokens[tok]
	return ok && !t.revoked && s.now().Sub(t.issued) < s.sessionTimeout
}

// sfError is one element of Salesforce's error array.
type sfError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields,omitempty"`
}

// apiError is an error answer: an HTTP status and Salesforce's error array.
type apiError struct {
	status int
	errs   []sfError
}

func (e *apiError) Error() string { return e.errs[0].ErrorCode + ": " + e.errs[0].Message }

func fail(status int, code, msg string, fields ...string) *apiError {
	return &apiError{status: status, errs: []sfError{{Message: msg, ErrorCode: code, Fields: fields}}}
}

const (
	tokenPath = "/services/oauth2/token"
	dataPath  = "/services/data/"
)

var versionRE = regexp.MustCompile(`^v([0-9]{2})\.0$`)

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBodySize+1))
	s.mu.Lock()
	defer s.mu.Unlock()

	rec := Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
	status := s.serve(w, r, body, &rec)
	rec.Status = status
	s.requests = append(s.requests, rec)
	if len(s.requests) > 2*MaxKept {
		s.requests = append([]Request(nil), s.requests[len(s.requests)-MaxKept:]...)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, body []byte, rec *Request) int {
	if r.URL.Path == tokenPath {
		return s.token(w, r, body)
	}
	rest, ok := strings.CutPrefix(r.URL.Path, dataPath)
	if !ok {
		return writeErr(w, fail(http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist"))
	}

	// Authentication comes first: an unauthenticated request is not counted against the limit.
	rec.Token = bearer(r.Header.Get("Authorization"))
	rec.Authorized = rec.Token != "" && s.valid(rec.Token)
	if !rec.Authorized {
		w.Header().Set("WWW-Authenticate", "Token")
		return writeErr(w, fail(http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid"))
	}
	if s.apiUsage >= s.apiLimit {
		s.limitHeader(w)
		return writeErr(w, fail(http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
	}
	s.apiUsage++
	s.limitHeader(w)

	version, rest, _ := strings.Cut(rest, "/")
	if !versionRE.MatchString(version) {
		return writeErr(w, fail(http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist"))
	}
	switch n, _ := strconv.Atoi(versionRE.FindStringSubmatch(version)[1]); {
	case n <= RetiredAPIVersion:
		// Salesforce retired versions 7.0 to 30.0 in Summer '25: they answer 410 Gone.
		return writeErr(w, fail(http.StatusGone, "API_VERSION_RETIRED",
			fmt.Sprintf("API version %s has been retired. Use API version %d.0 or later.", version, RetiredAPIVersion+1)))
	case n > LatestAPIVersion:
		return writeErr(w, fail(http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist"))
	}
	if len(body) > maxBodySize {
		return writeErr(w, fail(http.StatusRequestEntityTooLarge, "JSON_PARSER_ERROR", "the request body is too large"))
	}
	parts := strings.Split(rest, "/")
	var status int
	var v any
	var err *apiError
	switch {
	case parts[0] == "query" && len(parts) == 1:
		if r.Method != http.MethodGet {
			return writeErr(w, methodNotAllowed(r.Method))
		}
		v, err = s.query(version, r.URL.Query().Get("q"))
		status = http.StatusOK
	case parts[0] == "query" && len(parts) == 2:
		if r.Method != http.MethodGet {
			return writeErr(w, methodNotAllowed(r.Method))
		}
		v, err = s.more(version, parts[1])
		status = http.StatusOK
	case parts[0] == "sobjects" && (len(parts) == 2 || len(parts) == 3):
		id := ""
		if len(parts) == 3 {
			id = parts[2]
		}
		status, v, err = s.sobject(r, version, parts[1], id, body)
	default:
		err = fail(http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
	if err != nil {
		return writeErr(w, err)
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return status
	}
	return writeJSON(w, status, v)
}

func (s *Server) limitHeader(w http.ResponseWriter) {
	// Items are separated by "; ", as Salesforce sends them.
	w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d; per-app-api-usage=%d/%d(appName=airlock)",
		s.apiUsage, s.apiLimit, s.apiUsage, s.apiLimit))
}

func methodNotAllowed(m string) *apiError {
	return fail(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "HTTP Method '"+m+"' not allowed. Allowed are GET,HEAD")
}

func bearer(h string) string {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth")) {
		return ""
	}
	return strings.TrimSpace(tok)
}

func writeErr(w http.ResponseWriter, e *apiError) int {
	return writeJSON(w, e.status, e.errs)
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`[{"message":"internal error","errorCode":"UNKNOWN_EXCEPTION"}]`)
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(b)
	return status
}
