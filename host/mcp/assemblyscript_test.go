package mcp_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/secret"
)

// An agent calls a connector written in AssemblyScript (plugins/items-as, built with npm)
// through MCP like any other.
func TestAssemblyScriptConnectorOverMCP(t *testing.T) {
	m, wasm := hosttest.AssemblyScriptConnector(t, "plugins/items-as")
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+botToken {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/v1/items/item-1" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"id":"item-1","title":"First"}`))
	}))
	defer api.Close()
	sec := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return botToken, n == "ITEMS_TOKEN" }}}
	h, _ := hosttest.New(t, host.Config{Secrets: sec})
	g := &manifest.Grant{Connector: "items_as", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"api_token": "env:ITEMS_TOKEN"}),
		Upstreams:   map[string]string{"https://api.example.com": api.URL}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	f := &fixture{h: h, srv: mcp.NewServer(h, &mcp.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})}
	cs, _ := f.connect(t)
	if names := toolNames(t, cs); !contains(names, "items_as.get_item") {
		t.Fatalf("tools = %v", names)
	}
	res := callTool(t, cs, "items_as.get_item", `{"id":"item-1"}`)
	if res.IsError || !strings.Contains(text(res), `"title":"First"`) || strings.Contains(text(res), botToken) {
		t.Fatalf("items_as.get_item over MCP = %s (error %v)", text(res), res.IsError)
	}
	if res := callTool(t, cs, "items_as.get_item", `{"id":"nope"}`); !res.IsError || !strings.Contains(text(res), "not_found") {
		t.Errorf("items_as.get_item(nope) over MCP = %s", text(res))
	}
}
