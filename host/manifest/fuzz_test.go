package manifest

import (
	"os"
	"testing"
)

func FuzzParse(f *testing.F) {
	valid, err := os.ReadFile("testdata/valid.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	for _, file := range parseArchive(mustRead(f, "testdata/bad_manifests.txtar")).files {
		f.Add(file.data)
	}
	for _, seed := range []string{
		"",
		"\x00",
		"abi: 1\nname: \"demo\x00\"\n",
		"abi: 1\nNAME: demo\n",
		"abi: 1\nname: DEMO\n",
		"? [a, b]\n: c\n",
		"abi: !!binary aGVsbG8=\n",
		"abi: 0x1\nname: demo\n",
		"abi: 99999999999999999999999\n",
		"tools: [{input_schema: {$ref: '#/x'}}]\n",
		"%YAML 1.1\n---\na: b\n",
		"a: {b: [c, {d: e}]}\n---\n",
		"\ufeffabi: 1\n",
		"name: \"\\u0000\"\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.yaml", data)
		if err != nil {
			checkErrorTypes(t, err)
			return
		}
		if m == nil || len(m.Tools) == 0 || m.Limits.MemoryMB == 0 {
			t.Fatalf("Parse = %+v with no error", m)
		}
		if _, err := ParseGrant("fuzz.yaml", data); err != nil {
			checkErrorTypes(t, err)
		}
	})
}

func FuzzParseGrant(f *testing.F) {
	f.Add(mustRead(f, "testdata/grant.yaml"))
	for _, file := range parseArchive(mustRead(f, "testdata/bad_grants.txtar")).files {
		f.Add(file.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseGrant("fuzz.yaml", data); err != nil {
			checkErrorTypes(t, err)
		}
	})
}

func mustRead(f *testing.F, name string) []byte {
	data, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	return data
}
