// Package fakeslack is an in-memory fake of the Slack Web API, for tests, the demo and
// benchmarks. It reproduces the documented behaviour of the methods the Slack connector uses —
// chat.postMessage, conversations.list and conversations.history — including Slack's way of
// failing (HTTP 200 with {"ok":false,"error":"…"}, HTTP 429 with Retry-After). It is as strict
// as Slack: every request is checked against the parameters Slack's published description
// declares for the method (spec.go), blocks against Block Kit's documented rules (blockkit.go),
// and text over 40,000 characters is truncated as Slack does. It adds
// debug.echo, which reflects the request's headers and body so tests can prove that the host
// scrubs secrets an upstream echoes back.
//
//	srv := fakeslack.New("xoxb-test-token")
//	url, closeFn := srv.Start() // or use srv as an http.Handler
//	defer closeFn()
//	// POST url+"/api/chat.postMessage" with "Authorization: Bearer xoxb-test-token"
//
// The server starts with seed data ([Seed]): channels #general, #random and #dev the bot is a
// member of, #ops it is not in, the archived #old-project, the private #secret-plans, and a
// handful of messages in #general. A Server is safe for concurrent use.
package fakeslack

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// IDs of the seed data.
const (
	General     = "C0GENERAL" // #general: member, has messages
	Random      = "C0RANDOM"  // #random: member
	Dev         = "C0DEV"     // #dev: member
	Ops         = "C0OPS"     // #ops: the bot is not a member
	OldProject  = "C0OLDPROJ" // #old-project: archived (member)
	SecretPlans = "G0SECRET"  // #secret-plans: private (member)
	BotUser     = "U0BOT"     // the bot's user ID
	BotID       = "B0BOT"     // the bot's bot ID
	Team        = "T0AIRLOCK" // the workspace
	MaxTextLen  = 40000       // chat.postMessage text is truncated to this many characters
	maxBlocks   = 50          // Block Kit blocks per message
	maxBodySize = 4 << 20     // request bodies above this are refused
)

// Channel is a conversation as conversations.list returns it (a subset of Slack's fields).
type Channel struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	IsChannel  bool   `json:"is_channel"`
	IsGroup    bool   `json:"is_group"`
	IsIM       bool   `json:"is_im"`
	IsMPIM     bool   `json:"is_mpim"`
	IsPrivate  bool   `json:"is_private"`
	IsArchived bool   `json:"is_archived"`
	IsMember   bool   `json:"is_member"`
	Created    int64  `json:"created"`
	NumMembers int    `json:"num_members"`
	Topic      Text   `json:"topic"`
	Purpose    Text   `json:"purpose"`
}

// Text is a channel topic or purpose.
type Text struct {
	Value   string `json:"value"`
	Creator string `json:"creator"`
	LastSet int64  `json:"last_set"`
}

// Message is a message as conversations.history and chat.postMessage return it.
type Message struct {
	Type       string            `json:"type"`
	Subtype    string            `json:"subtype,omitempty"`
	User       string            `json:"user,omitempty"`
	BotID      string            `json:"bot_id,omitempty"`
	Text       string            `json:"text"`
	TS         string            `json:"ts"`
	ThreadTS   string            `json:"thread_ts,omitempty"`
	ReplyCount int               `json:"reply_count,omitempty"`
	Blocks     []json.RawMessage `json:"blocks,omitempty"`
	Team       string            `json:"team,omitempty"`
}

// Request is a request the server received, for tests.
type Request struct {
	HTTPMethod string      // GET or POST
	Path       string      // e.g. /api/chat.postMessage
	RawQuery   string      // the query string as received
	Method     string      // the API method, e.g. chat.postMessage
	Header     http.Header // as received (including Authorization)
	Body       []byte
	HasAuth    bool // a token was presented (header or token field)
	Authorized bool // the token was the right one
}

type rateLimit struct {
	n     int
	per   time.Duration
	start time.Time
	count int
}

// Server is the fake Slack Web API. Create it with [New].
type Server struct {
	mu     sync.Mutex
	token  string
	scopes []string // nil: every scope
	limits map[string]*rateLimit
	echo   bool
	// nonMarketplace: conversations.history has the limits of a non-Marketplace app.
	nonMarketplace bool
	now            func() time.Time
	channels       []*Channel
	history        map[string][]*Message // oldest first
	requests       []Request
	lastTS         int64 // microseconds
}

// MaxKept bounds what the server remembers: at least the last MaxKept (and at most twice as
// many) requests and messages of each channel, so a benchmark can run against one server
// indefinitely. Trimming happens in batches, so it costs O(1) per request.
const MaxKept = 10_000

func (s *Server) record(r Request) { s.requests = keepLast(append(s.requests, r), MaxKept) }

func keepLast[T any](list []T, n int) []T {
	if len(list) <= 2*n {
		return list
	}
	return append(list[:0:0], list[len(list)-n:]...)
}

// PostMessage is chat.postMessage done the way a Go program without airlock would: encode the
// arguments, POST them with the bearer token over client (keep-alive), decode the reply. It is
// the native baseline of the benchmarks.
func PostMessage(ctx context.Context, client *http.Client, baseURL, token, channel, text string) error {
	body, err := json.Marshal(struct {
		Channel string `json:"channel"`
		Text    string `json:"text"`
	}{channel, text})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", baseURL+"/api/chat.postMessage", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
		TS    string `json:"ts"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	io.Copy(io.Discard, resp.Body) // keep the connection reusable
	if err != nil {
		return err
	}
	if !out.OK || out.TS == "" {
		return fmt.Errorf("slack answered %q", out.Error)
	}
	return nil
}

// AllScopes are the scopes a token has unless [Server.SetScopes] says otherwise.
var AllScopes = []string{"chat:write", "channels:read", "channels:history", "groups:read", "groups:history",
	"im:read", "im:history", "mpim:read", "mpim:history"}

// New returns a server that accepts token (a bot token such as "xoxb-…"), holds the seed data,
// grants every scope and has no rate limits.
func New(token string) *Server {
	s := &Server{token: token, limits: map[string]*rateLimit{}, now: time.Now, history: map[string][]*Message{}}
	s.seed()
	return s
}

// Start serves s on a local httptest server and returns its base URL (no trailing slash; the API
// is under /api/) and a function that stops it.
func (s *Server) Start() (url string, closeFn func()) {
	ts := httptest.NewServer(s)
	return ts.URL, ts.Close
}

// StartTLS serves s over TLS with HTTP/2 offered, as slack.com does, on a local httptest server
// whose certificate (for 127.0.0.1) it returns with the base URL and a function that stops it.
func (s *Server) StartTLS() (url string, cert *x509.Certificate, closeFn func()) {
	ts := httptest.NewUnstartedServer(s)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	return ts.URL, ts.Certificate(), ts.Close
}

// SetScopes makes the token hold exactly these scopes; a method that needs another one answers
// missing_scope with needed and provided.
func (s *Server) SetScopes(scopes ...string) {
	s.mu.Lock()
	s.scopes = slices.Clone(scopes)
	if s.scopes == nil {
		s.scopes = []string{}
	}
	s.mu.Unlock()
}

// SetRateLimit allows n calls of the API method (e.g. "chat.postMessage") per window; further
// calls in the window get HTTP 429 with Retry-After (whole seconds until the window ends, at
// least 1). n <= 0 removes the limit.
func (s *Server) SetRateLimit(method string, n int, per time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.limits, method)
		return
	}
	s.limits[method] = &rateLimit{n: n, per: per}
}

// MaxNonMarketplaceHistory is the most messages conversations.history returns to a
// non-Marketplace app ([Server.SetNonMarketplace]).
const MaxNonMarketplaceHistory = 15

// SetNonMarketplace makes the token belong to a commercially distributed app that is not on
// the Slack Marketplace, with Slack's 2025 limits for those: conversations.history returns at
// most 15 messages (and 15 by default) and answers one request a minute, then 429. Off, the
// method is Tier 3 with up to 999 messages, as for Marketplace and internal apps.
func (s *Server) SetNonMarketplace(on bool) {
	s.mu.Lock()
	s.nonMarketplace = on
	if on {
		s.limits["conversations.history"] = &rateLimit{n: 1, per: time.Minute}
	} else {
		delete(s.limits, "conversations.history")
	}
	s.mu.Unlock()
}

// SetEchoHeaders makes every response carry the request's headers back as X-Echo-<Name>
// response headers (as a careless upstream might), not only debug.echo's.
func (s *Server) SetEchoHeaders(on bool) {
	s.mu.Lock()
	s.echo = on
	s.mu.Unlock()
}

// SetClock replaces the clock used for timestamps and rate-limit windows.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

// AddChannel adds a conversation (after the seed channels, in list order).
func (s *Server) AddChannel(c Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels = append(s.channels, &c)
}

// AddMessage appends a message to a channel's history (oldest first); a zero TS gets the next
// timestamp.
func (s *Server) AddMessage(channel string, m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Type == "" {
		m.Type = "message"
	}
	if m.TS == "" {
		m.TS = s.nextTS()
	}
	s.history[channel] = append(s.history[channel], &m)
}

// Messages returns a channel's messages, oldest first.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.history[channel]))
	for _, m := range s.history[channel] {
		out = append(out, *m)
	}
	return out
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) seed() {
	created := int64(1600000000)
	ch := func(id, name string, member bool, mod func(*Channel)) {
		c := &Channel{ID: id, Name: name, IsChannel: true, IsMember: member, Created: created, NumMembers: 5,
			Topic: Text{Value: "About #" + name}, Purpose: Text{Value: "Talk about " + name}}
		if mod != nil {
			mod(c)
		}
		s.channels = append(s.channels, c)
		created += 86400
	}
	ch(General, "general", true, func(c *Channel) { c.NumMembers = 42 })
	ch(Random, "random", true, nil)
	ch(Dev, "dev", true, nil)
	ch(Ops, "ops", false, nil)
	ch(OldProject, "old-project", true, func(c *Channel) { c.IsArchived = true })
	ch(SecretPlans, "secret-plans", true, func(c *Channel) {
		c.IsChannel, c.IsGroup, c.IsPrivate, c.NumMembers = false, true, true, 3
	})

	// Seed timestamps are fixed, a minute apart from 2023-11-14T22:13:20Z.
	s.lastTS = 1700000000_000000
	seedTS := func() string {
		s.lastTS += 60_000_000
		return formatTS(s.lastTS)
	}
	for i, m := range []struct{ user, text string }{
		{"U0ALICE", "Good morning, team!"},
		{"U0BOB", "Deploy of v1.4 starts at 10:00."},
		{"U0ALICE", "Reminder: retro at 15:00."},
		{"U0CAROL", "The staging database is back."},
		{"U0BOB", "Deploy finished, all green."},
	} {
		msg := &Message{Type: "message", User: m.user, Text: m.text, TS: seedTS(), Team: Team}
		if i == 1 {
			msg.ThreadTS, msg.ReplyCount = msg.TS, 1
		}
		s.history[General] = append(s.history[General], msg)
	}
	s.history[Ops] = []*Message{{Type: "message", User: "U0CAROL", Text: "pager rotation updated", TS: seedTS(), Team: Team}}
}

// nextTS returns a message timestamp ("seconds.micro") later than every earlier one.
func (s *Server) nextTS() string {
	us := s.now().UnixMicro()
	if us <= s.lastTS {
		us = s.lastTS + 100
	}
	s.lastTS = us
	return formatTS(us)
}

func formatTS(us int64) string { return fmt.Sprintf("%d.%06d", us/1_000_000, us%1_000_000) }

// apiError is Slack's failure envelope.
type apiError struct {
	OK       bool      `json:"ok"`
	Error    string    `json:"error"`
	Needed   string    `json:"needed,omitempty"`
	Provided string    `json:"provided,omitempty"`
	Warning  string    `json:"warning,omitempty"`
	Metadata *messages `json:"response_metadata,omitempty"`
}

// messages says what is wrong with an argument: ["[ERROR] … [json-pointer:/blocks/0/text]"].
type messages struct {
	Messages []string `json:"messages"`
}

// argumentError is Slack's refusal of an argument, with the message that names it.
func argumentError(code, message string) apiError {
	return apiError{Error: code, Metadata: &messages{Messages: []string{message}}}
}

type metadata struct {
	NextCursor string `json:"next_cursor"`
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method, ok := strings.CutPrefix(r.URL.Path, "/api/")
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBodySize+1))

	s.mu.Lock()
	defer s.mu.Unlock()

	rec := Request{HTTPMethod: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Method: method, Header: r.Header.Clone(), Body: body}
	if s.echo {
		for k, v := range r.Header {
			w.Header()["X-Echo-"+k] = slices.Clone(v)
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")

	if !ok || method == "" {
		s.record(rec)
		writeJSON(w, http.StatusNotFound, apiError{Error: "unknown_method"})
		return
	}
	if method == "debug.echo" {
		s.record(rec)
		for k, v := range r.Header {
			w.Header()["X-Echo-"+k] = slices.Clone(v)
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "method": r.Method, "path": r.URL.Path,
			"query": r.URL.RawQuery, "headers": r.Header, "body": string(body)})
		return
	}

	a, argErr := parseArgs(r, body)
	token := bearer(r.Header.Get("Authorization"))
	if token == "" && argErr == nil && !isJSON(r) {
		token = a.get("token")
	}
	rec.HasAuth = token != ""
	rec.Authorized = token != "" && token == s.token
	s.record(rec)

	handler, known := map[string]func(args) any{
		"auth.test":             s.authTest,
		"chat.postMessage":      s.postMessage,
		"conversations.list":    s.listConversations,
		"conversations.history": s.conversationsHistory,
	}[method]
	switch {
	case !known:
		writeJSON(w, http.StatusNotFound, apiError{Error: "unknown_method"})
		return
	case r.Method != http.MethodGet && r.Method != http.MethodPost:
		writeJSON(w, http.StatusMethodNotAllowed, apiError{Error: "invalid_post_type"})
		return
	case len(body) > maxBodySize:
		writeJSON(w, http.StatusRequestEntityTooLarge, apiError{Error: "request_too_large"})
		return
	}
	if after, limited := s.limited(method); limited {
		w.Header().Set("Retry-After", strconv.Itoa(after))
		writeJSON(w, http.StatusTooManyRequests, apiError{Error: "ratelimited"})
		return
	}
	switch {
	case argErr != nil:
		writeJSON(w, http.StatusOK, apiError{Error: argErr.Error()})
	case token == "":
		writeJSON(w, http.StatusOK, apiError{Error: "not_authed"})
	case token != s.token:
		writeJSON(w, http.StatusOK, apiError{Error: "invalid_auth"})
	default:
		if code, msg := checkParams(method, a); code != "" {
			writeJSON(w, http.StatusOK, argumentError(code, msg))
			return
		}
		writeJSON(w, http.StatusOK, handler(a))
	}
}

// limited counts a call of method against its rate limit and reports whether it is over, and
// then the whole seconds until the window ends.
func (s *Server) limited(method string) (int, bool) {
	l, ok := s.limits[method]
	if !ok {
		return 0, false
	}
	now := s.now()
	if l.start.IsZero() || now.Sub(l.start) >= l.per {
		l.start, l.count = now, 0
	}
	l.count++
	if l.count <= l.n {
		return 0, false
	}
	left := l.per - now.Sub(l.start)
	secs := int((left + time.Second - 1) / time.Second)
	return max(secs, 1), true
}

// missingScope answers missing_scope unless the token holds one of the scopes.
func (s *Server) missingScope(anyOf ...string) any {
	if s.scopes == nil {
		return nil
	}
	for _, sc := range anyOf {
		if slices.Contains(s.scopes, sc) {
			return nil
		}
	}
	return apiError{Error: "missing_scope", Needed: strings.Join(anyOf, ","), Provided: strings.Join(s.scopes, ",")}
}

func (s *Server) authTest(args) any {
	return map[string]any{"ok": true, "url": "https://airlock-test.slack.com/", "team": "airlock test",
		"user": "airlock", "team_id": Team, "user_id": BotUser, "bot_id": BotID}
}

// channel finds a channel by ID, or by name with or without '#'.
func (s *Server) channel(idOrName string) *Channel {
	name := strings.TrimPrefix(idOrName, "#")
	for _, c := range s.channels {
		if c.ID == idOrName || (c.Name == name && strings.HasPrefix(idOrName, "#")) {
			return c
		}
	}
	return nil
}

func (s *Server) postMessage(a args) any {
	if e := s.missingScope("chat:write"); e != nil {
		return e
	}
	text := a.get("text")
	var blocks []json.RawMessage
	if raw := a.raw("blocks"); len(raw) > 0 {
		if err := json.Unmarshal(raw, &blocks); err != nil {
			return argumentError("invalid_blocks_format", "[ERROR] must be an array [json-pointer:/blocks]")
		}
		if p := validateBlocks(blocks); p != nil {
			return argumentError("invalid_blocks", p.message())
		}
	}
	chID := a.get("channel")
	if chID == "" {
		return apiError{Error: "channel_not_found"}
	}
	c := s.channel(chID)
	switch {
	case c == nil:
		return apiError{Error: "channel_not_found"}
	case !c.IsMember:
		return apiError{Error: "not_in_channel"}
	case c.IsArchived:
		return apiError{Error: "is_archived"}
	case strings.TrimSpace(text) == "" && len(blocks) == 0:
		return apiError{Error: "no_text"}
	case utf8.RuneCountInString(text) > MaxTextLen:
		// Slack truncates, it does not refuse: "Slack will truncate messages containing more
		// than 40,000 characters" (chat.postMessage, "Truncating content").
		text = string([]rune(text)[:MaxTextLen])
	}
	m := &Message{Type: "message", User: BotUser, BotID: BotID, Text: text, TS: s.nextTS(), Blocks: blocks, Team: Team}
	if ts := a.get("thread_ts"); ts != "" {
		m.ThreadTS = ts
		for _, parent := range s.history[c.ID] {
			if parent.TS == ts {
				parent.ThreadTS = ts
				parent.ReplyCount++
			}
		}
	}
	s.history[c.ID] = keepLast(append(s.history[c.ID], m), MaxKept)
	return map[string]any{"ok": true, "channel": c.ID, "ts": m.TS, "message": m}
}

var typeFlags = map[string]func(*Channel) bool{
	"public_channel":  func(c *Channel) bool { return c.IsChannel && !c.IsPrivate },
	"private_channel": func(c *Channel) bool { return c.IsPrivate && !c.IsMPIM && !c.IsIM },
	"mpim":            func(c *Channel) bool { return c.IsMPIM },
	"im":              func(c *Channel) bool { return c.IsIM },
}

var typeScopes = map[string]string{
	"public_channel": "channels:read", "private_channel": "groups:read", "mpim": "mpim:read", "im": "im:read",
}

func (s *Server) listConversations(a args) any {
	types := []string{"public_channel"}
	if t := a.get("types"); t != "" {
		types = strings.Split(t, ",")
	}
	for i, t := range types {
		types[i] = strings.TrimSpace(t)
		if _, ok := typeFlags[types[i]]; !ok {
			return apiError{Error: "invalid_types"}
		}
	}
	for _, t := range types {
		if e := s.missingScope(typeScopes[t]); e != nil {
			return e
		}
	}
	limit, err := a.limit(100, 1000)
	if err != nil {
		return apiError{Error: "invalid_limit"}
	}
	exclude := a.get("exclude_archived") == "true" || a.get("exclude_archived") == "1"
	var all []*Channel
	for _, c := range s.channels {
		if exclude && c.IsArchived {
			continue
		}
		for _, t := range types {
			if typeFlags[t](c) {
				all = append(all, c)
				break
			}
		}
	}
	start, ok := decodeCursor(a.get("cursor"), "channel")
	if !ok || start > len(all) {
		return apiError{Error: "invalid_cursor"}
	}
	end := min(start+limit, len(all))
	next := ""
	if end < len(all) {
		next = encodeCursor("channel", end)
	}
	page := make([]Channel, 0, end-start)
	for _, c := range all[start:end] {
		page = append(page, *c)
	}
	return map[string]any{"ok": true, "channels": page, "response_metadata": metadata{NextCursor: next}}
}

func (s *Server) conversationsHistory(a args) any {
	chID := a.get("channel")
	c := s.channel(chID)
	if c == nil || strings.HasPrefix(chID, "#") { // conversations.history takes IDs only
		return apiError{Error: "channel_not_found"}
	}
	scope := "channels:history"
	if c.IsPrivate {
		scope = "groups:history"
	}
	if e := s.missingScope(scope); e != nil {
		return e
	}
	if !c.IsMember {
		return apiError{Error: "not_in_channel"}
	}
	def, maxLimit := 100, 999
	if s.nonMarketplace {
		def, maxLimit = MaxNonMarketplaceHistory, MaxNonMarketplaceHistory
	}
	limit, err := a.limit(def, maxLimit)
	if err != nil {
		return apiError{Error: "invalid_limit"}
	}
	oldest, latest := a.get("oldest"), a.get("latest")
	inclusive := a.get("inclusive") == "true" || a.get("inclusive") == "1"
	if oldest != "" && !validTS(oldest) {
		return apiError{Error: "invalid_ts_oldest"}
	}
	if latest != "" && !validTS(latest) {
		return apiError{Error: "invalid_ts_latest"}
	}
	// Newest first, within (oldest, latest).
	var all []Message
	msgs := s.history[c.ID]
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if m.ThreadTS != "" && m.ThreadTS != m.TS { // replies stay in their thread
			continue
		}
		if oldest != "" && (tsLess(m.TS, oldest) || (!inclusive && m.TS == oldest)) {
			continue
		}
		if latest != "" && (tsLess(latest, m.TS) || (!inclusive && m.TS == latest)) {
			continue
		}
		all = append(all, *m)
	}
	start, ok := decodeCursor(a.get("cursor"), "history")
	if !ok || start > len(all) {
		return apiError{Error: "invalid_cursor"}
	}
	end := min(start+limit, len(all))
	resp := map[string]any{"ok": true, "messages": all[start:end], "has_more": end < len(all), "pin_count": 0}
	if end < len(all) {
		resp["response_metadata"] = metadata{NextCursor: encodeCursor("history", end)}
	}
	return resp
}

func validTS(ts string) bool {
	_, err := strconv.ParseFloat(ts, 64)
	return err == nil && !strings.ContainsAny(ts, "eE+-")
}

func tsLess(a, b string) bool {
	fa, _ := strconv.ParseFloat(a, 64)
	fb, _ := strconv.ParseFloat(b, 64)
	return fa < fb
}

// Cursors are opaque to clients, as Slack's are: base64 of "<kind>:<offset>".
func encodeCursor(kind string, offset int) string {
	return base64.StdEncoding.EncodeToString([]byte(kind + ":" + strconv.Itoa(offset)))
}

func decodeCursor(c, kind string) (int, bool) {
	if c == "" {
		return 0, true
	}
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	k, n, ok := strings.Cut(string(b), ":")
	off, err := strconv.Atoi(n)
	if !ok || k != kind || err != nil || off < 0 {
		return 0, false
	}
	return off, true
}

// args are a call's arguments: query parameters, overridden by a form or JSON body.
type args map[string]json.RawMessage

func (a args) get(k string) string {
	raw, ok := a[k]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if bytes.Equal(raw, []byte("null")) {
		return ""
	}
	return string(raw) // numbers and booleans, as Slack accepts them
}

// raw returns a JSON argument (blocks): JSON as sent in a JSON body, or a form field's string
// parsed as JSON.
func (a args) raw(k string) json.RawMessage {
	raw, ok := a[k]
	if !ok {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return json.RawMessage(s)
	}
	return raw
}

func (a args) limit(def, maxN int) (int, error) {
	v := a.get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid limit %q", v)
	}
	if n == 0 {
		return def, nil
	}
	return min(n, maxN), nil
}

func isJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

type argError string

func (e argError) Error() string { return string(e) }

func parseArgs(r *http.Request, body []byte) (args, error) {
	a := args{}
	addValues := func(v url.Values) {
		for k, vs := range v {
			if len(vs) > 0 {
				b, _ := json.Marshal(vs[0])
				a[k] = b
			}
		}
	}
	addValues(r.URL.Query())
	if r.Method != http.MethodPost || len(body) == 0 {
		return a, nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, argError("invalid_json")
		}
		for k, v := range m {
			a[k] = v
		}
	case "application/x-www-form-urlencoded", "":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, argError("invalid_form_data")
		}
		addValues(v)
	default:
		return nil, argError("invalid_form_data")
	}
	return a, nil
}

func bearer(h string) string {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"ok":false,"error":"internal_error"}`)
	}
	w.WriteHeader(status)
	w.Write(b)
}
