package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleResults() *Results {
	rows := []*Row{
		{Key: "native", Unit: "ns/op", Median: 80_000, CPU: 90_000},
		{Key: "full", Unit: "ns/op", Median: 240_000, CPU: 360_000},
		{Key: "rt-slack-post", Unit: "ns/op", Median: 60_000},
		{Key: "host-noop", Unit: "ns/op", Median: 3_000, AllocsPerOp: 30},
		{Key: "rt-hostile-noop", Unit: "ns/op", Median: 1_000, AllocsPerOp: 8},
		{Key: "tput-full-1", Unit: "calls/s", Median: 2500},
		{Key: "tput-full-2", Unit: "calls/s", Median: 4750},
	}
	ratios(rows)
	return &Results{Go: "go1.26.8", GOOS: "linux", GOARCH: "amd64", CPUs: 2, Count: 5, BenchTime: 5e8,
		Date: "2026-12-04", LoadStart: "1.5", LoadEnd: "2.0", Rows: rows}
}

func TestReadmeTable(t *testing.T) {
	table := readmeTable(sampleResults())
	for _, want := range []string{
		"go1.26.8 linux/amd64, 2 CPUs", "load average 1.5 at the start, 2.0 at the end",
		"| 80.00 µs | 90.00 µs | 1.00× native |",
		"| 240.00 µs | 360.00 µs | 3.00× native (CPU: 4.00×) |",
		"| 3.00 µs |  | 30 allocs |",
		"2,500 → 4,750 calls/s | | 1.90×",
		"target: full path ≤ 2× native at the median: NOT met (3.00×",
		"target: full-path throughput scales ≥ 1.8× from 1 to 2 callers: met (1.90×)",
		"22 of them above the raw sandbox call",
	} {
		if !strings.Contains(strings.ReplaceAll(table, "|  |", "| |"), strings.ReplaceAll(want, "|  |", "| |")) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "go-sdk") {
		t.Errorf("a row whose figures were not measured is shown:\n%s", table)
	}
}

func TestUpdateReadme(t *testing.T) {
	p := filepath.Join(t.TempDir(), "README.md")
	before, after := "# x\n\n## Speed\n\n", "\nThe rest stays.\n"
	if err := os.WriteFile(p, []byte(before+readmeStart+"\nold table\n"+readmeEnd+after), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // twice: the second run replaces the first one's table
		if err := updateReadme(p, "new table\n"); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(p)
	if want := before + readmeStart + "\nnew table\n" + readmeEnd + after; string(got) != want {
		t.Errorf("README =\n%s\nwant\n%s", got, want)
	}
	if err := os.WriteFile(p, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateReadme(p, "t\n"); err == nil || !strings.Contains(err.Error(), readmeStart) {
		t.Errorf("a README without the markers: err = %v, want one that names them", err)
	}
}

// The committed README carries the generated block.
func TestReadmeHasTheGeneratedBlock(t *testing.T) {
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(string(b), readmeStart), strings.Index(string(b), readmeEnd); i < 0 || j < i {
		t.Errorf("README.md has no generated speed table (%s … %s)", readmeStart, readmeEnd)
	}
}
