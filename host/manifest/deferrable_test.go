package manifest_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/airlock-dev/airlock/host/manifest"
)

// TestDeferrableAnnotation: `deferrable` is an annotation as FORMAT.md writes it (default false),
// and, like every annotation, only a boolean.
func TestDeferrableAnnotation(t *testing.T) {
	data, err := os.ReadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse("valid.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range m.Tools {
		if tool.Annotations.Deferrable {
			t.Errorf("tool %s is deferrable without saying so", tool.Name)
		}
	}
	marked := bytes.Replace(data, []byte("      destructive: false\n"), []byte("      destructive: false\n      deferrable: true\n"), 1)
	if m, err = manifest.Parse("valid.yaml", marked); err != nil {
		t.Fatalf("Parse with deferrable: true: %v", err)
	}
	if !m.Tools[0].Annotations.Deferrable {
		t.Errorf("tool %s: deferrable: true was not read", m.Tools[0].Name)
	}
	wrong := bytes.Replace(data, []byte("      destructive: false\n"), []byte("      destructive: false\n      deferrable: later\n"), 1)
	if _, err := manifest.Parse("valid.yaml", wrong); err == nil {
		t.Error("Parse accepted deferrable: later, want a type error")
	}
}
