package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// airlock serve --http serves the web console at /console/: an owner's token signs in, an
// agent's does not, and the secrets page lists the store's names (the server handed the
// console its secret store) without the value.
func TestServeMountsConsole(t *testing.T) {
	w := newGrantWorld(t)
	owner, _ := w.must(t, exitOK, "admin", "add", "olivia", "--role", "owner")
	agent, _ := w.must(t, exitOK, "agent", "add", "bot")
	s := startServe(t, w.g...)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Timeout: 10 * time.Second, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if code, body := s.get(t, c, "http", "/console/signin"); code != http.StatusOK || !strings.Contains(body, "Admin token") {
		t.Fatalf("/console/signin = %d %.200s", code, body)
	}
	signIn := func(token string) int {
		resp, err := c.PostForm("http://"+s.addr+"/console/signin", url.Values{"token": {strings.TrimSpace(token)}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := signIn(agent); code != http.StatusUnauthorized {
		t.Fatalf("sign-in with an agent token = %d, want 401", code)
	}
	if code := signIn(owner); code != http.StatusSeeOther {
		t.Fatalf("sign-in with the owner's token = %d, want 303", code)
	}
	resp, err := c.Get("http://" + s.addr + "/console/secrets")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="secret-slack_bot"`) || strings.Contains(string(body), grantCanary) {
		t.Fatalf("/console/secrets = %d, lists slack_bot=%v, holds the value=%v", resp.StatusCode,
			strings.Contains(string(body), "secret-slack_bot"), strings.Contains(string(body), grantCanary))
	}
}

// Behind a TLS-terminating proxy serve gets plain HTTP: an https notify.public_url (where
// admins reach the console) marks the session cookie Secure anyway; without it, a client's
// X-Forwarded-Proto header does not.
func TestServeConsoleCookieSecureFromPublicURL(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		secure       bool
	}{
		{"https public_url", "notify:\n  public_url: https://airlock.example.com\n", true},
		{"http public_url", "notify:\n  public_url: http://airlock.internal:8700\n", false},
		{"no public_url", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newGrantWorld(t)
			if err := os.WriteFile(filepath.Join(w.dir, "airlock.yaml"), []byte("state_dir: state\n"+tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			owner, _ := w.must(t, exitOK, "admin", "add", "olivia", "--role", "owner")
			s := startServe(t, w.g...)
			c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			if code, _ := s.get(t, c, "http", "/console/signin"); code != http.StatusOK {
				t.Fatalf("/console/signin = %d", code)
			}
			req, _ := http.NewRequest("POST", "http://"+s.addr+"/console/signin", strings.NewReader(url.Values{"token": {strings.TrimSpace(owner)}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-Proto", "https")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			cs := resp.Cookies()
			if resp.StatusCode != http.StatusSeeOther || len(cs) != 1 {
				t.Fatalf("sign-in: %d, cookies %v", resp.StatusCode, cs)
			}
			if cs[0].Secure != tc.secure {
				t.Errorf("with %q: Set-Cookie %q, Secure = %v, want %v", tc.config, resp.Header.Get("Set-Cookie"), cs[0].Secure, tc.secure)
			}
		})
	}
}
