// Package console is airlock's admin web console: server-rendered pages (html/template, no
// script framework) over the same [admin.Admin] methods the admin API calls, mounted by
// `airlock serve --http` at /console/.
//
// Security: an admin signs in with an admin token (agent tokens can never pass); the console
// keeps a server-side session (a random 256-bit ID in an HttpOnly, SameSite=Strict cookie,
// Secure over TLS or when Options.SecureCookie says the console is reached over https, a new
// ID at every sign-in, expired after IdleTimeout without a request).
//
// Sessions live in the state store (host/store's console_sessions), so every replica of
// `airlock serve --http` on one store serves them: signed in through one replica, an admin is
// signed in on all of them; a sign-out on one ends the session everywhere. The store keeps only
// the SHA-256 of the session ID and of the admin token: a copy of the database can neither
// ride a session nor sign in. The token is verified again through its hash on every request
// ([admin.HashVerifier]), so a revoked token or a changed role takes effect at once, on every
// replica. A session's last use is written at most once per touchInterval, so it ends between
// IdleTimeout-touchInterval and IdleTimeout after its last request. If the store cannot be
// read, a page says to try again in a moment: nothing is served without a session.
//
// Every form carries the session's CSRF token, an HMAC of the session ID (the same on every
// replica, stored nowhere), checked on every POST. Every action is allowed by the admin's role
// through the admin API's route table ([admin.Admin.Authorize]) and recorded in the audit
// trail with the admin's name. Pages are sent with a strict Content-Security-Policy (no inline
// script or style), frame-ancestors 'none', nosniff and no referrer.
package console

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
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

// storeTimeout bounds a request's reads and writes of sessions in the store: a request is
// answered "try again in a moment" rather than held.
const storeTimeout = 5 * time.Second

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
	// SecureCookie marks the session cookie Secure on every response, not only on requests
	// that came over TLS: set it when admins reach the console over https through a
	// TLS-terminating proxy (serve sets it when notify.public_url is an https URL).
	// X-Forwarded-Proto is never trusted for this: any client can send it.
	SecureCookie bool
	// Now is the clock (time.Now if nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Console serves the admin web console. Safe for concurrent use.
type Console struct {
	a      *admin.Admin
	st     *store.Store // the sessions, shared with every replica
	tokens admin.HashVerifier
	idle   time.Duration
	touch  time.Duration // see touchInterval
	secure bool
	now    func() time.Time
	logger *slog.Logger
	tmpl   *template.Template
	mux    *http.ServeMux
}

// touchInterval is how stale a session's stored last use may get: a session in use is written
// once a minute (a quarter of a shorter idle timeout), not on every page view.
func touchInterval(idle time.Duration) time.Duration { return min(time.Minute, idle/4) }

// New returns the console over a, signing admins in with tokens; its sessions live in a's store.
func New(a *admin.Admin, tokens admin.HashVerifier, o *Options) *Console {
	if o == nil {
		o = &Options{}
	}
	idle := cmp.Or(o.IdleTimeout, DefaultIdleTimeout)
	c := &Console{a: a, st: a.Store(), tokens: tokens, idle: idle, touch: touchInterval(idle), secure: o.SecureCookie,
		now: o.Now, logger: o.Logger}
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
	idHash string // the session's key in the store
	csrf   string
}

// page wraps a handler that needs a signed-in admin: without a live session it redirects to
// the sign-in page (a 401 for a POST); a POST must carry the session's CSRF token. When the
// sessions or tokens cannot be read it answers 503 with a page saying to try again.
func (c *Console) page(h func(http.ResponseWriter, *http.Request, *signedIn)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := c.session(r)
		if errors.Is(err, errStore) {
			c.render(w, http.StatusServiceUnavailable, "error.html", map[string]any{"Title": "Try again in a moment", "Error": err.Error()})
			return
		}
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
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
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
	errStore     = errors.New("the console cannot read its sessions or the admin tokens right now: try again in a moment")
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

// session returns the live session r belongs to, with its admin verified again through the
// token's hash, and records its use (at most once per c.touch).
func (c *Console) session(r *http.Request) (*signedIn, error) {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil, errNoSession
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	idHash := sha256Hex(ck.Value)
	s, err := c.st.GetConsoleSession(ctx, idHash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		c.logger.Error("console: reading a session", "err", secret.RedactURLs(err.Error()))
		return nil, errStore
	}
	now := c.now()
	if now.Sub(s.LastSeen) > c.idle {
		c.end(ctx, idHash)
		return nil, errIdle
	}
	caller, valid, err := c.tokens.VerifySHA256(s.TokenSHA256)
	if err != nil && !errors.Is(err, store.ErrExpired) {
		c.logger.Error("console: the admin token store", "err", secret.RedactURLs(err.Error()))
		return nil, errStore
	}
	if !valid || err != nil {
		c.end(ctx, idHash)
		return nil, errToken
	}
	if now.Sub(s.LastSeen) >= c.touch {
		// Best effort: a failed write only lets the session expire up to c.touch earlier.
		if err := c.st.TouchConsoleSession(ctx, idHash, s.LastSeen, now); err != nil {
			c.logger.Warn("console: recording a session's use", "err", secret.RedactURLs(err.Error()))
		}
	}
	return &signedIn{Caller: caller, idHash: idHash, csrf: csrfToken(ck.Value)}, nil
}

// end deletes a session that is over (idle, or its token no longer valid). Best effort: a
// session left behind is refused again on its next request and swept at the next sign-in.
func (c *Console) end(ctx context.Context, idHash string) {
	if err := c.st.DeleteConsoleSession(ctx, idHash); err != nil {
		c.logger.Warn("console: deleting an ended session", "err", secret.RedactURLs(err.Error()))
	}
}

// csrfToken is the session's CSRF token: an HMAC keyed with the session ID, so every replica
// derives the same one, nothing needs storing, and neither a copy of the store (which holds
// the ID's SHA-256 only) nor the token (HMAC is one-way) gives the ID.
func csrfToken(id string) string {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("airlock console CSRF v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
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
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	if old, err := r.Cookie(cookieName); err == nil && old.Value != "" {
		c.end(ctx, sha256Hex(old.Value))
	}
	now := c.now()
	// The sweep: sessions idle past the timeout go, so the table holds at most the sessions
	// signed in within one idle timeout.
	if _, err := c.st.PurgeConsoleSessions(ctx, now.Add(-c.idle)); err != nil {
		c.logger.Warn("console: purging expired sessions", "err", secret.RedactURLs(err.Error()))
	}
	id := randomID()
	err = c.st.AddConsoleSession(ctx, store.ConsoleSession{IDSHA256: sha256Hex(id), TokenSHA256: sha256Hex(token), Created: now, LastSeen: now})
	if err != nil {
		c.logger.Error("console: recording a session", "err", secret.RedactURLs(err.Error()))
		c.render(w, http.StatusServiceUnavailable, "signin.html", map[string]any{"Title": "Sign in",
			"Error": "The console cannot record your session right now: try again in a moment."})
		return
	}
	c.setCookie(w, r, id, int(c.idle/time.Second))
	c.audit(r.Context(), caller.Name, "console sign-in", map[string]string{"role": string(caller.Role)})
	http.Redirect(w, r, "/console/approvals", http.StatusSeeOther)
}

// signOut ends the session in the store, so every replica refuses its cookie from now on. If
// the store cannot be written the cookie is kept and the admin told: the session is still open.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *signedIn) {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	if err := c.st.DeleteConsoleSession(ctx, s.idHash); err != nil {
		c.logger.Error("console: ending a session", "admin", s.Name, "err", secret.RedactURLs(err.Error()))
		c.render(w, http.StatusServiceUnavailable, "error.html", map[string]any{"Title": "Not signed out", "Admin": s,
			"Error": "The console cannot end your session right now, so you are still signed in: try again in a moment."})
		return
	}
	c.setCookie(w, r, "", -1)
	c.audit(r.Context(), s.Name, "console sign-out", nil)
	http.Redirect(w, r, "/console/signin?why=out", http.StatusSeeOther)
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil || c.secure, SameSite: http.SameSiteStrictMode})
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
		data["CSRF"] = s.csrf
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
