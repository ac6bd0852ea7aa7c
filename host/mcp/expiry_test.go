package mcp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

// An agent token issued with an expiry ('airlock agent add --ttl') works until then; after, MCP
// over HTTP refuses it with 401, and the body and challenge say it expired and what to do, on
// either state store.
func TestHTTPExpiredAgentToken(t *testing.T) {
	f := newFixture(t, true)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st, err := store.Open(context.Background(), b.dsn(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			agents := mcp.StoreAgents(st)
			srv := mcp.NewServer(f.h, &mcp.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			ts := httptest.NewServer(srv.HTTPHandler(agents, nil))
			t.Cleanup(ts.Close)
			url := ts.URL + mcp.HTTPPath

			live, err := agents.Issue(mcp.NewToken{Name: "live", Expires: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			old, err := agents.Issue(mcp.NewToken{Name: "old", Expires: time.Now().Add(-time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			openSession(t, url, live)

			r := do(t, url, rawReq{token: old, body: initBody})
			challenge := r.header.Get("WWW-Authenticate")
			if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "expired") || !strings.Contains(challenge, "expired") {
				t.Fatalf("the expired token: status %d, challenge %q, body %q; want 401 saying it expired", r.status, challenge, r.body)
			}
			if !strings.Contains(r.body, "airlock agent add") {
				t.Errorf("the refusal %q does not say how to get a new token", r.body)
			}
			list, err := agents.List()
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range list {
				if a.Name == "live" && a.LastUsed.IsZero() {
					t.Errorf("the live token's last use was not recorded: %+v", a)
				}
				if a.Name == "old" && !a.LastUsed.IsZero() {
					t.Errorf("the expired token's refused request was recorded as a use: %+v", a)
				}
			}
		})
	}
}
