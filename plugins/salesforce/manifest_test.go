package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/fakesalesforce"
	"github.com/airlock-dev/airlock/pdk"
)

// The manifest must describe the connector as built: every tool here, the credential slot and
// config keys the code uses, and schemas that accept what the code produces.

func loadManifest(t *testing.T) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Load(filepath.Join("..", "..", "manifests", "salesforce.yaml"))
	if err != nil {
		t.Fatalf("manifests/salesforce.yaml: %v", err)
	}
	return m
}

var tools = map[string]func() error{
	"soql_query":               soqlQuery,
	"get_record":               getRecord,
	"create_record":            createRecord,
	"update_record":            updateRecord,
	"update_opportunity_stage": updateOpportunityStage,
	"add_note":                 addNote,
}

func TestManifestMatchesCode(t *testing.T) {
	t.Parallel()
	m := loadManifest(t)
	if m.ABI != pdk.ABIVersion || m.Name != "salesforce" {
		t.Errorf("abi %d name %s, want %d salesforce", m.ABI, m.Name, pdk.ABIVersion)
	}
	if len(m.Tools) != len(tools) {
		t.Errorf("manifest has %d tools, the code %d", len(m.Tools), len(tools))
	}
	for _, tool := range m.Tools {
		if _, ok := tools[tool.Export]; !ok {
			t.Errorf("tool %s: export %s is not implemented", tool.Name, tool.Export)
		}
		if tool.Annotations.ReadOnly != strings.HasPrefix(tool.Name, "get_") && tool.Name != "soql_query" {
			t.Errorf("tool %s: read_only = %v", tool.Name, tool.Annotations.ReadOnly)
		}
		if len(tool.Scopes) != 1 || tool.Scopes[0] != "api" {
			t.Errorf("tool %s: scopes %v, want [api]", tool.Name, tool.Scopes)
		}
	}
	c, ok := m.Credential(credential)
	if !ok || c.Kind != manifest.KindOAuth2JWTBearer || c.OAuth == nil || !c.OAuth.InstanceURL {
		t.Errorf("credential slot %s: %+v, want an oauth2_jwt_bearer slot with instance_url", credential, c)
	}
	keys := map[string]string{}
	for _, k := range m.Config {
		keys[k.Name] = k.Default
	}
	want := map[string]string{"api_version": defaultAPIVersion, "objects": defaultObjects,
		"opportunity_stages": defaultStages, "closed_stages": defaultClosedStages, staticInstanceKey: ""}
	for k, def := range want {
		if got, ok := keys[k]; !ok || got != def {
			t.Errorf("config key %s: default %q (declared %v), want %q", k, got, ok, def)
		}
	}
	if got := strings.Join(fakesalesforce.Stages, ","); got != defaultStages {
		t.Errorf("the fake's stages %s differ from the default stages", got)
	}
	exports, err := os.ReadFile("exports_wasip1.go")
	if err != nil {
		t.Fatal(err)
	}
	for name := range tools {
		if !strings.Contains(string(exports), "//go:wasmexport "+name+"\n") {
			t.Errorf("exports_wasip1.go has no //go:wasmexport %s", name)
		}
	}
}

func TestManifestSchemas(t *testing.T) {
	t.Parallel()
	m := loadManifest(t)
	tests := []struct {
		tool  string
		input string
		valid bool
	}{
		{"soql_query", `{"object":"Account","fields":["Id","Name"]}`, true},
		{"soql_query", `{"object":"Contact","fields":["Id","Account.Name"],"where":[{"field":"Account.Name","op":"LIKE","value":"Ac%"},{"field":"Email","op":"=","value":null},{"field":"Id","op":"NOT IN","value":["003D00000000001AAA"]},{"field":"CreatedDate","op":">","value":"LAST_N_DAYS:30","type":"date_literal"}],"order_by":[{"field":"Name","direction":"DESC","nulls":"LAST"}],"limit":2000}`, true},
		{"soql_query", `{"object":"Account","fields":["Id"],"limit":2001}`, false},
		{"soql_query", `{"object":"Account","fields":[]}`, false},
		{"soql_query", `{"object":"Account","fields":["Id FROM User"]}`, false},
		{"soql_query", `{"object":"Account WHERE","fields":["Id"]}`, false},
		{"soql_query", `{"object":"Account","fields":["Id"],"where":[{"field":"Name","op":"OR","value":"x"}]}`, false},
		{"soql_query", `{"object":"Account","fields":["Id"],"where":[{"field":"Name","op":"=","value":{"x":1}}]}`, false},
		{"soql_query", `{"object":"Account","fields":["Id"],"where":[{"field":"Name","op":"="}]}`, false},
		{"soql_query", `{"object":"Account","fields":["Id"],"soql":"SELECT Id FROM User"}`, false},
		{"get_record", `{"object":"Account","id":"001D00000000001AAA","fields":["Name"]}`, true},
		{"get_record", `{"object":"Account","id":"001D00000000001"}`, true},
		{"get_record", `{"object":"Account","id":"001D0000000000"}`, false},
		{"get_record", `{"object":"Account","id":"../../sobjects/User/005"}`, false},
		{"create_record", `{"object":"Contact","fields":{"LastName":"Runner","Age__c":3,"Active__c":true,"Notes__c":null}}`, true},
		{"create_record", `{"object":"Contact","fields":{}}`, false},
		{"create_record", `{"object":"Contact","fields":{"LastName":{"nested":1}}}`, false},
		{"create_record", `{"object":"Contact","fields":{"Last Name":"x"}}`, false},
		{"update_record", `{"object":"Contact","id":"003D00000000001AAA","fields":{"Title":"CEO"}}`, true},
		{"update_record", `{"object":"Contact","fields":{"Title":"CEO"}}`, false},
		{"update_opportunity_stage", `{"id":"006D00000000001AAA","stage":"Qualification"}`, true},
		{"update_opportunity_stage", `{"id":"006D00000000001AAA","stage":""}`, false},
		{"add_note", `{"parent_id":"001D00000000001AAA","title":"Call","body":"text","is_private":true}`, true},
		{"add_note", `{"parent_id":"001D00000000001AAA","title":"` + strings.Repeat("t", 81) + `"}`, false},
		{"add_note", `{"parent_id":"001D00000000001AAA"}`, false},
	}
	for _, tt := range tests {
		tool, ok := m.Tool(tt.tool)
		if !ok {
			t.Fatalf("no tool %s", tt.tool)
		}
		if err := tool.ValidateInput([]byte(tt.input)); (err == nil) != tt.valid {
			t.Errorf("%s.ValidateInput(%.100s) = %v, want valid=%v", tt.tool, tt.input, err, tt.valid)
		}
	}
}

// TestOutputsMatchSchemas runs every tool against the fake Salesforce and validates the result
// against the tool's output schema, as the host does.
func TestOutputsMatchSchemas(t *testing.T) {
	t.Parallel()
	m := loadManifest(t)
	calls := []struct {
		tool string
		args map[string]any
	}{
		{"soql_query", map[string]any{"object": "Opportunity", "fields": []string{"Id", "Name", "Amount", "Account.Name"}}},
		{"soql_query", map[string]any{"object": "Account", "fields": []string{"Id"}, "limit": 1}},
		{"get_record", map[string]any{"object": "Account", "id": fakesalesforce.Acme}},
		{"create_record", map[string]any{"object": "Account", "fields": map[string]any{"Name": "Wayne Enterprises"}}},
		{"update_record", map[string]any{"object": "Account", "id": fakesalesforce.Globex, "fields": map[string]any{"Phone": "555-0100"}}},
		{"update_opportunity_stage", map[string]any{"id": fakesalesforce.OppNegotiation, "stage": "Closed Won"}},
		{"update_opportunity_stage", map[string]any{"id": fakesalesforce.OppClosedWon, "stage": "Closed Won"}},
		{"add_note", map[string]any{"parent_id": fakesalesforce.CaseAnvil, "title": "Follow-up"}},
	}
	for _, c := range calls {
		h, _ := newHost(t)
		tool, _ := m.Tool(c.tool)
		args, _ := json.Marshal(c.args)
		if err := tool.ValidateInput(args); err != nil {
			t.Errorf("%s%s: input rejected: %v", c.tool, args, err)
		}
		h.SetInput(json.RawMessage(args))
		out, toolErr := h.Call(tools[c.tool])
		if toolErr != nil {
			t.Errorf("%s%s: %v", c.tool, args, toolErr)
			continue
		}
		if err := tool.ValidateOutput(out); err != nil {
			t.Errorf("%s%s: output %s does not match the output schema: %v", c.tool, args, out, err)
		}
	}
}
