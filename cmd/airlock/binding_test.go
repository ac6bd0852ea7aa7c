package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// An admin reviewing the CRM connector sees what each tool's code may use, and that the write
// function makes its tool need approval for every call.
func TestValidateAndReviewShowTheBinding(t *testing.T) {
	root, _ := pluginbuild.ModuleRoot()
	path := filepath.Join(root, "manifests/dbfunc.yaml")
	code, out, errOut := airlock(t, "manifest", "validate", path)
	if code != exitOK {
		t.Fatalf("validate dbfunc.yaml = %d, %q", code, errOut)
	}
	for _, want := range []string{
		"tools[].uses",
		"find_customer     database: find_customer; network: none; credentials: none",
		"set_order_status  database: set_order_status (writes), so every call needs a human's approval",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}

	m, err := manifest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	asks := &admin.Asks{Connector: m.Name, Version: m.Version}
	for i := range m.Tools {
		asks.Tools = append(asks.Tools, admin.ToolAsk{Name: m.Tools[i].Name, Uses: m.DescribeBinding(&m.Tools[i])})
	}
	var buf bytes.Buffer
	printReview(&env{stdout: &buf, stderr: &buf}, asks, nil)
	if !strings.Contains(buf.String(), "tools[].uses") || !strings.Contains(buf.String(), "customer_orders   database: customer_orders; network: none") {
		t.Errorf("grant review lacks the bindings:\n%s", buf.String())
	}
}
