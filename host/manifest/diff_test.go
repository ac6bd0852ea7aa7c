package manifest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const diffBase = `abi: 1
name: crm
version: 1.0.0
publisher: acme
description: CRM.
module:
  path: crm.wasm
limits:
  timeout_ms: 5000
credentials:
  - name: token
    kind: bearer
    hosts: [api.crm.example]
network:
  - host: api.crm.example
    path_prefix: /v2/
    methods: [GET, POST]
    rate_limit: {per_second: 2, burst: 4}
database:
  functions:
    - name: find
      sql: SELECT id FROM customers WHERE email = $1
      params: [{name: email, schema: {type: string}}]
tools:
  - name: search
    description: Search.
    scopes: [read]
    annotations: {read_only: true}
    uses: {network: [api.crm.example], credentials: [token]}
    input_schema: {type: object}
  - name: lookup
    function: find
    description: Find by email.
    uses: {network: [], credentials: []}
    input_schema: {type: object}
`

func parseDiff(t *testing.T, edit func(string) string) *Manifest {
	t.Helper()
	src := diffBase
	if edit != nil {
		src = edit(src)
	}
	m, err := Parse("crm.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestCompare(t *testing.T) {
	repl := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				panic("test edit does not apply: " + old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	tests := []struct {
		name  string
		edit  func(string) string
		kinds []string
	}{
		{"nothing more", repl("description: CRM.", "description: A better CRM."), nil},
		{"fewer methods", repl("methods: [GET, POST]", "methods: [GET]"), nil},
		{"narrower path", repl("path_prefix: /v2/", "path_prefix: /v2/contacts/"), nil},
		{"tighter limit", repl("timeout_ms: 5000", "timeout_ms: 1000"), nil},
		{"tighter rate", repl("{per_second: 2, burst: 4}", "{per_second: 1, burst: 2}"), nil},
		{"new tool", repl("tools:\n", "tools:\n  - name: purge\n    description: Purge.\n    scopes: [admin]\n    input_schema: {type: object}\n"), []string{ChangeTool}},
		{"new scope", repl("scopes: [read]", "scopes: [read, write]"), []string{ChangeScope}},
		{"no longer read-only", repl("annotations: {read_only: true}", "annotations: {read_only: false}"), []string{ChangeTool}},
		{"now destructive", repl("annotations: {read_only: true}", "annotations: {read_only: true, destructive: true}"), []string{ChangeTool}},
		{"new method", repl("methods: [GET, POST]", "methods: [GET, POST, DELETE]"), []string{ChangeHost}},
		{"wider path", repl("path_prefix: /v2/", "path_prefix: /"), []string{ChangeHost}},
		{"new host", repl("network:\n", "network:\n  - host: exfil.example\n"), []string{ChangeHost}},
		{"http instead of https", repl("  - host: api.crm.example\n", "  - scheme: http\n    host: api.crm.example\n"), []string{ChangeHost}},
		{"wildcard host", func(s string) string {
			s = strings.Replace(s, "  - host: api.crm.example\n", "  - host: \"*.crm.example\"\n", 1)
			return strings.Replace(s, "uses: {network: [api.crm.example]", "uses: {network: [\"*.crm.example\"]", 1)
		}, []string{ChangeTool, ChangeHost}},
		{"looser rate", repl("{per_second: 2, burst: 4}", "{per_second: 20, burst: 4}"), []string{ChangeRateLimit}},
		{"rate removed", repl("    rate_limit: {per_second: 2, burst: 4}\n", ""), []string{ChangeRateLimit}},
		{"looser limit", repl("timeout_ms: 5000", "timeout_ms: 60000"), []string{ChangeLimit}},
		{"default limit is looser", repl("limits:\n  timeout_ms: 5000\n", ""), []string{ChangeLimit}},
		{"credential to a new host", func(s string) string {
			s = strings.Replace(s, "hosts: [api.crm.example]", "hosts: [api.crm.example, other.example]", 1)
			return strings.Replace(s, "network:\n", "network:\n  - host: other.example\n", 1)
		}, []string{ChangeHost, ChangeCredential}},
		{"new credential", repl("credentials:\n", "credentials:\n  - name: admin\n    kind: basic\n    hosts: [api.crm.example]\n"), []string{ChangeCredential}},
		{"credential kind", repl("kind: bearer", "kind: api_key\n    in: query\n    param: key"), []string{ChangeCredential, ChangeCredential}},
		{"changed SQL", repl("SELECT id FROM", "SELECT * FROM"), []string{ChangeDatabase}},
		{"new function", repl("  functions:\n", "  functions:\n    - name: wipe\n      sql: DELETE FROM customers\n      read_only: false\n"), []string{ChangeDatabase}},
		{"more rows", repl("      params: [{", "      max_rows: 5000\n      params: [{"), []string{ChangeDatabase}},
		{"new publisher", repl("publisher: acme", "publisher: mallory"), []string{ChangePublisher}},
		{"tool binds another function", repl("uses: {network: [api.crm.example], credentials: [token]}", "uses: {database: [find], network: [api.crm.example], credentials: [token]}"), []string{ChangeTool}},
		{"tool binds a host and a slot", repl("uses: {network: [], credentials: []}", "uses: {network: [api.crm.example], credentials: [token]}"), []string{ChangeTool, ChangeTool}},
		{"tool binds less", repl("uses: {network: [api.crm.example], credentials: [token]}", "uses: {network: [], credentials: []}"), nil},
	}
	old := parseDiff(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changes := Compare(old, parseDiff(t, tt.edit))
			var kinds []string
			for _, c := range changes {
				kinds = append(kinds, c.Kind)
				if c.Detail == "" || c.Path == "" && c.Kind != ChangePublisher {
					t.Errorf("change without path or detail: %+v", c)
				}
			}
			if diff := cmp.Diff(tt.kinds, kinds); diff != "" {
				t.Errorf("Compare kinds mismatch (-want +got):\n%s\nchanges: %v", diff, changes)
			}
		})
	}
	if c := Compare(old, old); len(c) != 0 {
		t.Errorf("Compare(m, m) = %v", c)
	}
}
