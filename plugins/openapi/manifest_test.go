package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/openapiop"
	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdktest"
)

// TestTemplateManifest: manifests/openapi.yaml (the template) validates, each tool's export is
// an operation slot with an operation in config, and the tool runs.
func TestTemplateManifest(t *testing.T) {
	m, err := manifest.Load(filepath.Join("..", "..", "manifests", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range m.Tools {
		n, err := strconv.Atoi(strings.TrimPrefix(tool.Export, "op"))
		if err != nil || n < 0 || n >= MaxOperations {
			t.Errorf("tool %s: export %s is not an operation slot op0…op%d", tool.Name, tool.Export, MaxOperations-1)
			continue
		}
		var def string
		for _, k := range m.Config {
			if k.Name == tool.Export {
				def = k.Default
			}
		}
		var op openapiop.Operation
		if err := json.Unmarshal([]byte(def), &op); err != nil {
			t.Errorf("tool %s: config %s is not an operation: %v", tool.Name, tool.Export, err)
			continue
		}
		h := pdktest.New(t)
		h.SetConfig(map[string]string{tool.Export: def})
		h.SetInput(map[string]any{"id": "it-1", "fields": []string{"name", "size"}})
		h.HandleHTTP(func(req pdk.HTTPRequest) pdk.HTTPResponse {
			return pdk.HTTPResponse{Status: 200, Body: []byte(`{"name":"x"}`)}
		})
		out, toolErr := h.Call(func() error { return call(n) })
		if toolErr != nil {
			t.Fatalf("%s: %+v", tool.Name, toolErr)
		}
		if err := tool.ValidateOutput(out); err != nil {
			t.Errorf("%s: output %s does not match the output schema: %v", tool.Name, out, err)
		}
		if reqs := h.Requests(); len(reqs) != 1 || reqs[0].URL != "https://api.example.com/v1/items/it-1?fields=name,size" || reqs[0].Credential != "api_key" {
			t.Errorf("%s: requests = %+v", tool.Name, reqs)
		}
	}
}
