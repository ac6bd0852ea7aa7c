package console_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/console"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// replicas is two `airlock serve --http` replicas behind a load balancer without sticky
// sessions: each with its own Store (its own connections, as another process would have), its
// own Host and Console, over ONE database, on one clock.
type replicas struct {
	a, b  *env
	dsn   string
	clock *clock
	owner string // olivia's admin token
}

// forEachStateStore runs fn with two replicas over an SQLite file and over PostgreSQL
// (skipped, with a message, when none is configured).
func forEachStateStore(t *testing.T, fn func(t *testing.T, r *replicas)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newReplicas(t, "sqlite:"+filepath.Join(t.TempDir(), "state.db"), nil)) })
	t.Run("postgres", func(t *testing.T) { fn(t, newReplicas(t, testenv.Postgres(t), nil)) })
}

func newReplicas(t *testing.T, dsn string, o *console.Options) *replicas {
	t.Helper()
	r := &replicas{dsn: dsn, clock: &clock{t: time.Now()}}
	r.a, r.b = r.replica(t, o), r.replica(t, o)
	var err error
	if r.owner, err = mcp.StoreAdmins(r.a.st).Issue(mcp.NewToken{Name: "olivia", Role: "owner"}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *replicas) replica(t *testing.T, o *console.Options) *env {
	t.Helper()
	st, err := store.Open(context.Background(), r.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, _ := hosttest.New(t, host.Config{Store: st})
	opts := console.Options{}
	if o != nil {
		opts = *o
	}
	opts.Now, opts.Logger = r.clock.Now, quiet
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, console.New(admin.New(st, h, quiet), adminTokens{mcp.StoreAdmins(st)}, &opts))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{st: st, clock: r.clock, url: srv.URL}
}

// on is the same browser (the same cookies) sent to another replica, as a load balancer would.
func (b *browser) on(e *env) *browser { return &browser{t: b.t, c: b.c, e: e} }

// replay is a fresh browser holding only the session cookie value id.
func (e *env) replay(t *testing.T, id string) *browser {
	b := e.browser(t)
	base, _ := url.Parse(e.url + console.Prefix)
	b.c.Jar.SetCookies(base, []*http.Cookie{{Name: "airlock_console", Value: id, Path: console.Prefix}})
	return b
}

// signedOut fails the test unless p sends the browser to the sign-in page.
func signedOut(t *testing.T, what string, p page) {
	t.Helper()
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/console/signin") {
		t.Errorf("%s: %d %q, want a redirect to sign in", what, p.status, p.header.Get("Location"))
	}
}

func sessionCookie(t *testing.T, b *browser) string {
	t.Helper()
	base, _ := url.Parse(b.e.url + console.Prefix)
	for _, c := range b.c.Jar.Cookies(base) {
		if c.Name == "airlock_console" {
			return c.Value
		}
	}
	t.Fatal("the browser holds no session cookie")
	return ""
}

// An admin behind a load balancer: signed in through replica A, every request may land on B.
// A sign-out on B ends the session on A; idle expiry counts requests on both; a revoked token
// or a changed role is refused or applied by both at once.
func TestSessionsAcrossReplicas(t *testing.T) {
	forEachStateStore(t, func(t *testing.T, r *replicas) {
		onA := r.a.browser(t)
		csrf := onA.signIn(r.owner)
		onB := onA.on(r.b)
		p := onB.get("/console/approvals")
		if p.status != http.StatusOK || !strings.Contains(p.body, "olivia (owner)") {
			t.Fatalf("replica B with the cookie from A: %d, want the page signed in as olivia\n%.300s", p.status, p.body)
		}
		id := sessionCookie(t, onA)

		// A form from A's page posts to B: the CSRF token is the same on every replica.
		if p := onB.post("/console/signout", url.Values{"csrf": {csrf}}); p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/signin?why=out" {
			t.Fatalf("sign-out on B with A's form: %d %q", p.status, p.header.Get("Location"))
		}
		signedOut(t, "the cookie replayed on A after a sign-out on B", r.a.replay(t, id).get("/console/approvals"))
		signedOut(t, "the cookie replayed on B after a sign-out on B", r.b.replay(t, id).get("/console/approvals"))

		// Idle expiry: requests on either replica keep the session alive, for both.
		onA.signIn(r.owner)
		for i := range 4 { // a request every 10 minutes, alternating replicas: alive for 40
			r.clock.Advance(10 * time.Minute)
			on := []*browser{onA, onB}[i%2]
			if p := on.get("/console/approvals"); p.status != http.StatusOK {
				t.Fatalf("a session in use expired on replica %s after %d minutes: %d", on.e.url, (i+1)*10, p.status)
			}
		}
		id = sessionCookie(t, onA)
		r.clock.Advance(console.DefaultIdleTimeout + time.Second)
		p = r.b.replay(t, id).get("/console/approvals")
		if p.header.Get("Location") != "/console/signin?why=idle" {
			t.Errorf("after %v idle, B: %d %q, want why=idle", console.DefaultIdleTimeout, p.status, p.header.Get("Location"))
		}
		r.clock.Advance(-console.DefaultIdleTimeout) // gone for good on A too, even if the clock comes back
		signedOut(t, "the expired session on A", r.a.replay(t, id).get("/console/approvals"))

		// A role changed through B's store applies on A at once; a revocation, on both.
		csrf = onA.signIn(r.owner)
		id = sessionCookie(t, onA)
		adminsB := mcp.StoreAdmins(r.b.st)
		if err := adminsB.SetRole("olivia", "viewer"); err != nil {
			t.Fatal(err)
		}
		if p := onA.get("/console/approvals"); p.status != http.StatusOK || !strings.Contains(p.body, "olivia (viewer)") {
			t.Errorf("A after olivia became a viewer through B: %d, want the page signed in as a viewer", p.status)
		}
		if err := adminsB.Revoke("olivia"); err != nil {
			t.Fatal(err)
		}
		p = r.a.replay(t, id).get("/console/approvals")
		if p.header.Get("Location") != "/console/signin?why=token" {
			t.Errorf("A after the token was revoked through B: %d %q, want why=token", p.status, p.header.Get("Location"))
		}
		signedOut(t, "B after the token was revoked", r.b.replay(t, id).get("/console/approvals"))
		if p := onB.post("/console/signout", url.Values{"csrf": {csrf}}); p.status != http.StatusUnauthorized {
			t.Errorf("a POST on B from the revoked session: %d, want 401", p.status)
		}
	})
}

// A database thief reads the sessions table (and, on SQLite, the raw file): neither a session
// cookie nor an admin token is in it, and nothing in it signs in or rides a session.
func TestSessionTableUselessToADatabaseThief(t *testing.T) {
	forEachStateStore(t, func(t *testing.T, r *replicas) {
		b := r.a.browser(t)
		b.signIn(r.owner)
		id := sessionCookie(t, b)

		driver, src := "pgx", r.dsn
		if path, ok := strings.CutPrefix(r.dsn, "sqlite:"); ok {
			driver, src = "sqlite", path
		}
		db, err := sql.Open(driver, src)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT * FROM console_sessions`)
		if err != nil {
			t.Fatalf("reading the sessions table: %v", err)
		}
		cols, _ := rows.Columns()
		var stolen []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				stolen = append(stolen, fmt.Sprint(v))
			}
		}
		rows.Close()
		if len(stolen) == 0 {
			t.Fatal("the sessions table is empty after a sign-in: the sessions are not in the store")
		}
		dump := strings.Join(stolen, "\n")
		for what, secret := range map[string]string{"session cookie": id, "admin token": r.owner} {
			if strings.Contains(dump, secret) {
				t.Errorf("the sessions table holds the %s:\n%s", what, dump)
			}
		}
		if path, ok := strings.CutPrefix(r.dsn, "sqlite:"); ok {
			for _, f := range []string{path, path + "-wal"} {
				raw, _ := os.ReadFile(f)
				for what, secret := range map[string]string{"session cookie": id, "admin token": r.owner} {
					if strings.Contains(string(raw), secret) {
						t.Errorf("%s holds the %s", filepath.Base(f), what)
					}
				}
			}
		}
		// Every stored value tried as a cookie, on both replicas, and as a token at sign-in.
		for _, v := range stolen {
			for _, e := range []*env{r.a, r.b} {
				if p := e.replay(t, v).get("/console/approvals"); p.status == http.StatusOK {
					t.Errorf("a cookie made from the stored %q opened the console", v)
				}
			}
			if p := r.b.browser(t).post("/console/signin", url.Values{"token": {v}}); p.status != http.StatusUnauthorized {
				t.Errorf("signing in with the stored %q: %d, want 401", v, p.status)
			}
		}
		// The real cookie still works: the checks above refused the stolen values, not everything.
		if p := r.b.replay(t, id).get("/console/approvals"); p.status != http.StatusOK {
			t.Errorf("the admin's own cookie on B: %d", p.status)
		}
	})
}

// When the store cannot be read, a session is answered "try again in a moment" (503), not the
// page and not a sign-in bypass; the other replica, and the sign-in page, keep serving.
func TestStoreDownTryAgain(t *testing.T) {
	r := newReplicas(t, "sqlite:"+filepath.Join(t.TempDir(), "state.db"), nil)
	onA := r.a.browser(t)
	csrf := onA.signIn(r.owner)
	onB := onA.on(r.b)
	r.b.st.Close() // B's database is unreachable
	for _, p := range []page{onB.get("/console/approvals"), onB.post("/console/signout", url.Values{"csrf": {csrf}})} {
		if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "try again in a moment") || strings.Contains(p.body, "Sign out") {
			t.Errorf("a session on B with its store down: %d, want 503 saying to try again, without the console\n%.400s", p.status, p.body)
		}
	}
	if p := onB.post("/console/signin", url.Values{"token": {r.owner}}); p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "try again in a moment") {
		t.Errorf("signing in on B with its store down: %d, want 503 saying to try again\n%.400s", p.status, p.body)
	}
	if p := onB.get("/console/signin"); p.status != http.StatusOK {
		t.Errorf("B's sign-in page with its store down: %d", p.status)
	}
	if p := onA.get("/console/approvals"); p.status != http.StatusOK {
		t.Errorf("A, whose store is up, with the same session: %d", p.status)
	}
}

// Behind a TLS-terminating proxy the console gets plain HTTP: with SecureCookie (serve sets it
// from an https notify.public_url) the cookie is Secure anyway; without it, a client's
// X-Forwarded-Proto header does not make it so.
func TestSecureCookieBehindTLSProxy(t *testing.T) {
	for _, secure := range []bool{true, false} {
		t.Run(fmt.Sprint("SecureCookie=", secure), func(t *testing.T) {
			r := newReplicas(t, "sqlite:"+filepath.Join(t.TempDir(), "state.db"), &console.Options{SecureCookie: secure})
			req, _ := http.NewRequest("POST", r.a.url+"/console/signin", strings.NewReader(url.Values{"token": {r.owner}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-Proto", "https")
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			cs := resp.Cookies()
			if resp.StatusCode != http.StatusSeeOther || len(cs) != 1 {
				t.Fatalf("sign-in over plain HTTP: %d, cookies %v", resp.StatusCode, cs)
			}
			if cs[0].Secure != secure {
				t.Errorf("Set-Cookie %q: Secure = %v, want %v", resp.Header.Get("Set-Cookie"), cs[0].Secure, secure)
			}
		})
	}
}

// A session's last use is written at most once a minute, not on every page view (the store is
// shared by every replica: a write per view would be a write per click); a session therefore
// ends between 14 and 15 minutes after its last request.
func TestLastSeenWrittenOncePerMinute(t *testing.T) {
	r := newReplicas(t, "sqlite:"+filepath.Join(t.TempDir(), "state.db"), nil)
	b := r.a.browser(t)
	b.signIn(r.owner)
	sum := sha256.Sum256([]byte(sessionCookie(t, b)))
	idHash := hex.EncodeToString(sum[:])
	lastSeen := func() time.Time {
		s, err := r.a.st.GetConsoleSession(context.Background(), idHash)
		if err != nil {
			t.Fatal(err)
		}
		return s.LastSeen
	}
	signedInAt := lastSeen()
	r.clock.Advance(30 * time.Second)
	b.get("/console/approvals")
	if got := lastSeen(); !got.Equal(signedInAt) {
		t.Errorf("a page view 30 s after sign-in wrote last seen %v (was %v): want at most one write a minute", got, signedInAt)
	}
	r.clock.Advance(31 * time.Second)
	b.on(r.b).get("/console/approvals")
	if got, want := lastSeen(), r.clock.Now(); !got.Equal(want) {
		t.Errorf("a page view 61 s after sign-in, on B: last seen %v, want %v", got, want)
	}
	// The view at 90 s, 29 s after the write at 61 s, is not written: the session ends 15 min
	// after that write, 14 min 32 s after the admin's last view (the documented precision).
	r.clock.Advance(29 * time.Second)
	if p := b.get("/console/approvals"); p.status != http.StatusOK {
		t.Fatalf("a view at 90 s: %d", p.status)
	}
	r.clock.Advance(console.DefaultIdleTimeout - 29*time.Second + time.Second)
	signedOut(t, "15 min after the last write, 14 min 32 s after the last (unwritten) view", b.get("/console/approvals"))
}
