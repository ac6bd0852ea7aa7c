package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// memoryRows is row 9: what one pooled instance of the Slack connector costs in memory, from
// BenchmarkInstanceMemory of host/internal/runtime (run in a subprocess: the package is internal
// to host).
func memoryRows(ctx context.Context, o *options) ([]*Row, error) {
	out, err := goTest(ctx, o, "-run", "^$", "-bench", "^BenchmarkInstanceMemory$", "-benchtime", "3x", "-count", "1",
		"./host/internal/runtime")
	if err != nil {
		return nil, err
	}
	what := map[string]string{
		"rss-KiB/instance":           "memory per pooled slack instance: resident set (process growth)",
		"guest-KiB/instance":         "memory per pooled slack instance: guest linear memory (its own mapping)",
		"guest-nonzero-KiB/instance": "memory per pooled slack instance: guest pages written (not zero)",
		"heap-KiB/instance":          "memory per pooled slack instance: Go heap (wazero instance, arena, maps)",
		"same-pages-%":               "memory per pooled slack instance: written guest pages equal to another instance's",
	}
	var rows []*Row
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[0], "BenchmarkInstanceMemory") {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			w, ok := what[f[i+1]]
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("BenchmarkInstanceMemory: %q: %w", line, err)
			}
			unit := "KiB"
			if strings.HasSuffix(f[i+1], "%") {
				unit = "%"
			}
			rows = append(rows, &Row{Group: "9", Key: "mem-" + f[i+1], What: w, Unit: unit, Median: v, Samples: []float64{v}})
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no BenchmarkInstanceMemory results in:\n%s", out)
	}
	return rows, nil
}

// goTest runs `go test args…` in the module's root and returns its standard output.
func goTest(ctx context.Context, o *options, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"test"}, args...)...)
	cmd.Dir = o.root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go test: %w\n%s%s", err, out, stderr.Bytes())
	}
	return out, nil
}
