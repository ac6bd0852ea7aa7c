package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompareRatio(t *testing.T) {
	bl := Baseline{FullPathRatio: 2, Tolerance: 0.15}
	for _, c := range []struct {
		measured float64
		fail     bool
	}{
		{1.2, false},  // faster than the baseline
		{2, false},    // the same
		{2.29, false}, // 14.5% worse: within the tolerance
		{2.3, false},  // exactly 15% worse
		{2.31, true},  // 15.5% worse
		{4, true},
		{0, true}, // no measurement is not a pass
	} {
		err := compareRatio(bl, c.measured)
		if (err != nil) != c.fail {
			t.Errorf("ratio %v against baseline 2× ±15%%: err = %v, want failure %v", c.measured, err, c.fail)
		}
		if err != nil && c.measured > 0 && !strings.Contains(err.Error(), "-write-baseline") {
			t.Errorf("the failure does not say how to accept an intended cost: %v", err)
		}
	}
}

func TestReadBaseline(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bl, err := readBaseline(write("ok.json", `{"full_path_ratio": 3.3}`))
	if err != nil || bl.FullPathRatio != 3.3 || bl.Tolerance != defaultTolerance {
		t.Fatalf("readBaseline = %+v, %v; want ratio 3.3 with the default tolerance", bl, err)
	}
	for name, body := range map[string]string{
		"zero.json":      `{"full_path_ratio": 0}`,
		"negative.json":  `{"full_path_ratio": -1}`,
		"missing.json":   `{"tolerance": 0.15}`,
		"tolerance.json": `{"full_path_ratio": 2, "tolerance": -0.1}`,
		"garbage.json":   `full_path_ratio: 2`,
	} {
		if _, err := readBaseline(write(name, body)); err == nil {
			t.Errorf("%s (%s) was accepted as a baseline", name, body)
		}
	}
	if _, err := readBaseline(filepath.Join(dir, "absent.json")); err == nil || !strings.Contains(err.Error(), "-write-baseline") {
		t.Errorf("a missing baseline: err = %v, want one that says how to write it", err)
	}
}

// The committed baseline must stay readable: make bench-check depends on it.
func TestCommittedBaseline(t *testing.T) {
	bl, err := readBaseline("baseline.json")
	if err != nil {
		t.Fatal(err)
	}
	if bl.Tolerance != defaultTolerance {
		t.Errorf("baseline.json tolerance %v, want %v (issue 19: fail past a 15%% regression)", bl.Tolerance, defaultTolerance)
	}
}

func TestSpread(t *testing.T) {
	if got := spread([]float64{3, 1, 2}, num); got != "1.00–3.00" {
		t.Errorf("spread = %q", got)
	}
	if got := spread(nil, num); got != "" {
		t.Errorf("spread of nothing = %q", got)
	}
}
