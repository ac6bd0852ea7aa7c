package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// 'airlock audit search --server' follows the admin API's pages (newest first, next_cursor)
// to the last and prints every record oldest first, as the local search does.
func TestRemoteAuditSearchFollowsCursors(t *testing.T) {
	hermetic(t)
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("cursor") {
		case "":
			io.WriteString(w, `{"records": [{"seq": 3, "event": {"kind": "call", "tool": "slack.c"}}, {"seq": 2, "event": {"kind": "call", "tool": "slack.b"}}], "next_cursor": "c1.Mg"}`)
		case "c1.Mg":
			io.WriteString(w, `{"records": [{"seq": 1, "event": {"kind": "call", "tool": "slack.a"}}]}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error": "bad cursor"}`)
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv(adminTokenEnv, "airlock_admin_test")
	code, out, errOut := airlock(t, "audit", "search", "--server", srv.URL, "--tool", "slack.b", "--json")
	if code != exitOK {
		t.Fatalf("audit search = %d %s", code, errOut)
	}
	want := `{"kind":"call","tool":"slack.a"}` + "\n" + `{"kind":"call","tool":"slack.b"}` + "\n" + `{"kind":"call","tool":"slack.c"}` + "\n"
	if out != want {
		t.Errorf("audit search printed\n%s\nwant\n%s", out, want)
	}
	if len(queries) != 2 || !strings.Contains(queries[0], "tool=slack.b") || !strings.Contains(queries[1], "cursor=c1.Mg") || !strings.Contains(queries[1], "tool=slack.b") {
		t.Errorf("queries %q: want the filters on both pages and the cursor on the second", queries)
	}
}
