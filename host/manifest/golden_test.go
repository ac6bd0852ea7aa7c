package manifest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// checkErrorTypes fails unless err is an *Error or an ErrorList of *Error.
func checkErrorTypes(t testing.TB, err error) {
	t.Helper()
	switch e := err.(type) {
	case *Error:
	case ErrorList:
		if len(e) < 2 {
			t.Errorf("ErrorList with %d problems, want an *Error instead", len(e))
		}
		for _, x := range e {
			if x == nil {
				t.Errorf("nil *Error in ErrorList")
			}
		}
	default:
		t.Errorf("error is %T, want *Error or ErrorList: %v", err, err)
	}
	var one *Error
	if !errors.As(err, &one) {
		t.Errorf("errors.As(%T, *Error) = false", err)
	}
}

// runGolden parses every NAME.yaml of an archive with parse and compares the error text with
// NAME.err, rewriting the archive with -update.
func runGolden(t *testing.T, file string, parse func(name string, data []byte) error) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	a := parseArchive(data)
	want := map[string]string{}
	var inputs []archiveFile
	for _, f := range a.files {
		if name, ok := strings.CutSuffix(f.name, ".err"); ok {
			want[name] = string(f.data)
		} else {
			inputs = append(inputs, f)
		}
	}
	out := &archive{comment: a.comment}
	for _, f := range inputs {
		name := strings.TrimSuffix(f.name, ".yaml")
		got := "ok\n"
		if err := parse(f.name, f.data); err != nil {
			got = err.Error() + "\n"
			t.Run(name+"/types", func(t *testing.T) { checkErrorTypes(t, err) })
		}
		out.files = append(out.files, f, archiveFile{name: name + ".err", data: []byte(got)})
		if *update {
			continue
		}
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no %s.err in %s: run with -update", name, file)
			}
			if diff := cmp.Diff(w, got); diff != "" {
				t.Errorf("Parse(%s) error mismatch (-want +got):\n%s", f.name, diff)
			}
		})
	}
	if *update {
		if err := os.WriteFile(file, out.format(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGoldenManifests(t *testing.T) {
	runGolden(t, "testdata/bad_manifests.txtar", func(name string, data []byte) error {
		_, err := Parse(name, data)
		return err
	})
}

func TestGoldenGrants(t *testing.T) {
	runGolden(t, "testdata/bad_grants.txtar", func(name string, data []byte) error {
		_, err := ParseGrant(name, data)
		return err
	})
}

const minimal = `abi: 1
name: demo
version: 1.0.0
publisher: acme
description: Demo.
module: {path: demo.wasm}
tools:
  - name: ping
    description: Ping.
    input_schema: %s
`

// generated are inputs too large to keep in a txtar file; their expected errors are in
// testdata/generated.txtar.
func generated() []archiveFile {
	huge := []byte("abi: 1\ndescription: \"" + strings.Repeat("x", MaxFileSize) + "\"\n")
	// A schema over 256 KiB in a file under 1 MiB.
	var props bytes.Buffer
	props.WriteString("{type: object, properties: {")
	for i := 0; props.Len() < 300<<10; i++ {
		fmt.Fprintf(&props, "field_%d: {type: string, description: %q}, ", i, strings.Repeat("d", 64))
	}
	props.WriteString("}}")
	deepYAML := "abi: 1\nname: " + strings.Repeat("[", 200) + strings.Repeat("]", 200) + "\n"
	return []archiveFile{
		{"huge_file.yaml", huge},
		{"oversized_schema.yaml", fmt.Appendf(nil, minimal, props.String())},
		{"deep_yaml.yaml", []byte(deepYAML)},
		{"nul_byte.yaml", []byte("abi: 1\nname: de\x00mo\n")},
		{"not_utf8.yaml", []byte("abi: 1\nname: d\xffmo\n")},
	}
}

func TestGoldenGenerated(t *testing.T) {
	const file = "testdata/generated.txtar"
	data, err := os.ReadFile(file)
	if err != nil && !*update {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, f := range parseArchive(data).files {
		want[f.name] = string(f.data)
	}
	out := &archive{comment: []byte("Expected errors for the inputs built by generated() in golden_test.go.\n")}
	for _, f := range generated() {
		name := strings.TrimSuffix(f.name, ".yaml")
		_, err := Parse(f.name, f.data)
		got := "ok\n"
		if err != nil {
			got = err.Error() + "\n"
			checkErrorTypes(t, err)
		}
		out.files = append(out.files, archiveFile{name: name + ".err", data: []byte(got)})
		if diff := cmp.Diff(want[name+".err"], got); diff != "" && !*update {
			t.Errorf("Parse(%s) error mismatch (-want +got):\n%s", f.name, diff)
		}
	}
	if *update {
		if err := os.WriteFile(file, out.format(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
