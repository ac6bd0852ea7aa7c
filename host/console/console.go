// Package console is airlock's admin web console: server-rendered pages (html/template, no
// script framework) over the same [admin.Admin] methods the admin API calls, mounted by
// `airlock serve --http` at /console/.
//
// Security: an admin signs in with an admin token (agent tokens can never pass); the console
// keeps a server-side session (a random ID in an HttpOnly, SameSite=Strict cookie, Secure over
// TLS, a new ID at every sign-in, expired after IdleTimeout without a request). The token stays
// in the server's memory and is verified again on every request, so a revoked token or a
// changed role takes effect at once. Every form carries the session's CSRF token, checked on
// every POST. Every action is allowed by the admin's role through the admin API's route table
// ([admin.Admin.Authorize]) and recorded in the audit trail with the admin's name. Pages are
// sent with a strict Content-Security-Policy (no inline script or style), frame-ancestors
// 'none', nosniff and no referrer.
package console

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

// Prefix is where serve mounts the console.
const Prefix = "/console/"

// cookieName is the session cookie's name.
const cookieName = "airlock_console"

// DefaultIdleTimeout ends a session after this long without a request.
const DefaultIdleTimeout = 15 * time.Minute

// maxForm bounds a form's body.
const maxForm = 64 << 10

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a console.
type Options struct {
	// IdleTimeout ends a session after this long without a request (DefaultIdleTimeout if 0).
	IdleTimeout time.Duration
	// Now is the clock (time.Now if nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Console serves the admin web console. Safe for concurrent use.
type Console struct {
	a      *admin.Admin
	tokens admin.TokenVerifier
	idle   time.Duration
	now    func() time.Time
	logger *slog.Logger
	tmpl   *template.Template
	mux    *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	token    string // the admin token, verified again on every request; never sent to the browser
	csrf     string
	lastSeen time.Time
}

// New returns the console over a, signing admins in with tokens.
func New(a *admin.Admin, tokens admin.TokenVerifier, o *Options) *Console {
	if o == nil {
		o = &Options{}
	}
	c := &Console{a: a, tokens: tokens, idle: cmp.Or(o.IdleTimeout, DefaultIdleTimeout), now: o.Now, logger: o.Logger,
		sessions: map[string]*session{}}
	if c.now == nil {
		c.now = time.Now
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.tmpl = template.Must(template.New("").Funcs(template.FuncMap{
		"age": func(t time.Time) string { return age(c.now().Sub(t)) },
		"rfc3339": func(t time.Time) string {
			return t.UTC().Format(time.RFC3339)
		},
		"prettyJSON": prettyJSON,
	}).ParseFS(templateFS, "templates/*.html"))
	static, _ := fs.Sub(staticFS, "static")
	c.mux = http.NewServeMux()
	c.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /console/signin", c.signInPage)
	c.mux.HandleFunc("POST /console/signin", c.signIn)
	c.mux.HandleFunc("POST /console/signout", c.page(c.signOut))
	c.mux.HandleFunc("GET /console/{$}", c.page(func(w http.ResponseWriter, r *http.Request, s *signedIn) {
		http.Redirect(w, r, "/console/approvals", http.StatusSeeOther)
	}))
	c.approvalRoutes()
	c.grantRoutes()
	c.connectorRoutes()
	c.auditRoutes()
	c.accountRoutes()
	c.tokenRoutes()
	c.secretRoutes()
	return c
}

// ServeHTTP sets the security headers every response carries and serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	}
	c.mux.ServeHTTP(w, r)
}

// signedIn is the admin a request comes from, with its session.
type signedIn struct {
	admin.Caller
	id   string
	sess *session
}

// page wraps a handler that needs a signed-in admin: without a live session it redirects to
// the sign-in page (a 401 for a POST); a POST must carry the session's CSRF token.
func (c *Console) page(h func(http.ResponseWriter, *http.Request, *signedIn)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := c.session(r)
		if err != nil {
			if r.Method != http.MethodGet {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/console/signin?why="+whyCode(err), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			got := r.PostFormValue("csrf")
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.sess.csrf)) != 1 {
				c.logger.Warn("console: a form without the session's CSRF token was refused", "admin", s.Name, "path", r.URL.Path)
				http.Error(w, "this form is out of date or was not sent by the console (CSRF token missing or wrong): reload the page and try again", http.StatusForbidden)
				return
			}
		}
		h(w, r, s)
	}
}

var (
	errNoSession = errors.New("sign in with your admin token")
	errIdle      = errors.New("your session expired after a while without use: sign in again")
	errToken     = errors.New("your admin token is no longer valid (revoked or expired): sign in with a new one")
)

func whyCode(err error) string {
	switch err {
	case errIdle:
		return "idle"
	case errToken:
		return "token"
	}
	return ""
}

// session returns the live session r belongs to, touching it, with its admin verified again.
func (c *Console) session(r *http.Request) (*signedIn, error) {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil, errNoSession
	}
	now := c.now()
	c.mu.Lock()
	s, ok := c.sessions[ck.Value]
	if ok && now.Sub(s.lastSeen) > c.idle {
		delete(c.sessions, ck.Value)
		c.mu.Unlock()
		return nil, errIdle
	}
	if ok {
		s.lastSeen = now
	}
	c.mu.Unlock()
	if !ok {
		return nil, errNoSession
	}
	caller, valid, err := c.tokens.Verify(s.token)
	if err != nil && !errors.Is(err, store.ErrExpired) {
		return nil, errors.New("the admin token store cannot be read: try again in a moment")
	}
	if !valid || err != nil {
		c.drop(ck.Value)
		return nil, errToken
	}
	return &signedIn{Caller: caller, id: ck.Value, sess: s}, nil
}

func (c *Console) drop(id string) {
	c.mu.Lock()
	delete(c.sessions, id)
	c.mu.Unlock()
}

// sweep forgets sessions idle for longer than the timeout.
func (c *Console) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.sessions {
		if now.Sub(s.lastSeen) > c.idle {
			delete(c.sessions, id)
		}
	}
}

func randomID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	msg := map[string]string{"idle": errIdle.Error(), "token": errToken.Error(), "out": "You are signed out."}[r.URL.Query().Get("why")]
	c.render(w, http.StatusOK, "signin.html", map[string]any{"Title": "Sign in", "Message": msg})
}

// signIn checks an admin token and starts a new session. Any session cookie the browser sent
// is ignored and replaced: the ID is always fresh, so a planted one is worthless (fixation).
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimSpace(r.PostFormValue("token"))
	caller, valid, err := c.tokens.Verify(token)
	switch {
	case errors.Is(err, store.ErrExpired):
		c.render(w, http.StatusUnauthorized, "signin.html", map[string]any{"Title": "Sign in",
			"Error": "This admin token has expired: ask an owner for a new one (airlock admin add NAME --role ROLE)."})
		return
	case err != nil:
		c.logger.Error("console: the admin token store", "err", secret.RedactURLs(err.Error()))
		c.render(w, http.StatusServiceUnavailable, "signin.html", map[string]any{"Title": "Sign in",
			"Error": "The admin token store cannot be read: try again in a moment."})
		return
	case !valid:
		c.logger.Warn("console: a sign-in with a token that is not an admin token was refused", "remote", r.RemoteAddr)
		c.render(w, http.StatusUnauthorized, "signin.html", map[string]any{"Title": "Sign in",
			"Error": "That is not a valid admin token. Agent tokens cannot open the console; an owner creates admin tokens with `airlock admin add NAME --role ROLE`."})
		return
	}
	if old, err := r.Cookie(cookieName); err == nil {
		c.drop(old.Value)
	}
	now := c.now()
	c.sweep(now)
	id := randomID()
	c.mu.Lock()
	c.sessions[id] = &session{token: token, csrf: randomID(), lastSeen: now}
	c.mu.Unlock()
	c.setCookie(w, r, id, int(c.idle/time.Second))
	c.audit(r.Context(), caller.Name, "console sign-in", map[string]string{"role": string(caller.Role)})
	http.Redirect(w, r, "/console/approvals", http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *signedIn) {
	c.drop(s.id)
	c.setCookie(w, r, "", -1)
	c.audit(r.Context(), s.Name, "console sign-out", nil)
	http.Redirect(w, r, "/console/signin?why=out", http.StatusSeeOther)
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// audit records an action of the console's own (sign-in, sign-out); failures are logged.
func (c *Console) audit(ctx context.Context, who, action string, detail map[string]string) {
	if err := audit.Action(context.WithoutCancel(ctx), c.a.Store(), who, action, "console", detail); err != nil {
		c.logger.Error("console: recording an action", "action", action, "admin", who, "err", err)
	}
}

// allow checks the admin's role for the admin API route the action stands for; a refusal is
// audited by admin.Authorize and shown on a page.
func (c *Console) allow(w http.ResponseWriter, r *http.Request, s *signedIn, pattern string) bool {
	if err := c.a.Authorize(r.Context(), s.Caller, pattern, r.Method, r.URL.Path); err != nil {
		c.render(w, http.StatusForbidden, "error.html", map[string]any{"Title": "Not allowed", "Admin": s, "Error": err.Error()})
		return false
	}
	return true
}

// render executes a page template; data's "Admin" (a *signedIn) gives the navigation and CSRF token.
func (c *Console) render(w http.ResponseWriter, status int, name string, data map[string]any) {
	if s, ok := data["Admin"].(*signedIn); ok && s != nil {
		data["CSRF"] = s.sess.csrf
	}
	var b strings.Builder
	if err := c.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		c.logger.Error("console: rendering a page", "page", name, "err", err)
		http.Error(w, "the console could not render this page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return (d / time.Minute * time.Minute).String() + " ago"
	default:
		return d.Truncate(time.Minute).String() + " ago"
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
