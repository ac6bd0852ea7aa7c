package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"slices"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// The regression guard (make bench-check): the full path's ratio to the native call, measured
// now, against the ratio in a committed baseline file. Ratios, not times: both halves run in
// the same process, interleaved, so a slower or busier machine moves both.

// defaultTolerance is how much worse than the baseline the measured ratio may be.
const defaultTolerance = 0.15

// Baseline is the committed reference of make bench-check (internal/cmd/bench/baseline.json).
type Baseline struct {
	// FullPathRatio is the median of host.Call slack.post_message over the native call.
	FullPathRatio float64 `json:"full_path_ratio"`
	// Tolerance is the allowed regression, as a fraction of FullPathRatio (0.15: 15%).
	Tolerance float64 `json:"tolerance"`
	// Samples are the per-pair ratios the median came from, Machine and Go say where.
	Samples []float64 `json:"samples,omitempty"`
	Machine string    `json:"machine,omitempty"`
	Go      string    `json:"go,omitempty"`
	Date    string    `json:"date,omitempty"`
}

func readBaseline(path string) (Baseline, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Baseline{}, fmt.Errorf("read the baseline: %w (write one with go run ./internal/cmd/bench -write-baseline %s)", err, path)
	}
	var bl Baseline
	if err := json.Unmarshal(b, &bl); err != nil {
		return Baseline{}, fmt.Errorf("baseline %s: %w", path, err)
	}
	if !(bl.FullPathRatio > 0) {
		return Baseline{}, fmt.Errorf("baseline %s: full_path_ratio must be a positive number", path)
	}
	if bl.Tolerance < 0 || bl.Tolerance > 10 {
		return Baseline{}, fmt.Errorf("baseline %s: tolerance %v is not a fraction between 0 and 10", path, bl.Tolerance)
	}
	if bl.Tolerance == 0 {
		bl.Tolerance = defaultTolerance
	}
	return bl, nil
}

// compareRatio says whether a measured full-path ratio regressed past the baseline's tolerance.
func compareRatio(bl Baseline, measured float64) error {
	if !(measured > 0) {
		return fmt.Errorf("the measured ratio %v is not a positive number", measured)
	}
	limit := bl.FullPathRatio * (1 + bl.Tolerance)
	if measured > limit {
		return fmt.Errorf("the full path is %s× the native call, more than %s× (the baseline %s× plus %.0f%%): "+
			"a regression; profile it (go test -bench CallSlack -cpuprofile ./host) or, if the cost is intended, "+
			"write a new baseline with -write-baseline and say why in the commit",
			num(measured), num(limit), num(bl.FullPathRatio), bl.Tolerance*100)
	}
	return nil
}

func runCheck(ctx context.Context, o *options, stdout, stderr io.Writer) int {
	var bl Baseline
	if o.check != "" {
		var err error
		if bl, err = readBaseline(o.check); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
	}
	o.ratioOnly = true
	o.stderr = stderr
	testing.Init()
	if err := setBenchtime(o.benchtime); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	rows, err := measure(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	full := rows[1]
	fmt.Fprintf(stdout, "native %s, full path %s: ratio %s× (median of %d interleaved pairs, spread %s); in CPU time %s×\n",
		duration(rows[0].Median), duration(full.Median), num(full.Ratio), len(full.RatioSamples), spread(full.RatioSamples, num), num(full.CPURatio))
	if o.writeBaseline != "" {
		nb := Baseline{FullPathRatio: full.Ratio, Tolerance: defaultTolerance, Samples: full.RatioSamples,
			Machine: machine(), Go: goruntime.Version(), Date: time.Now().UTC().Format(time.DateOnly)}
		b, _ := json.MarshalIndent(nb, "", "  ")
		if err := os.WriteFile(o.writeBaseline, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s\n", o.writeBaseline)
	}
	if o.check != "" {
		if err := compareRatio(bl, full.Ratio); err != nil {
			fmt.Fprintln(stdout, "bench-check: FAIL:", err)
			return 1
		}
		fmt.Fprintf(stdout, "bench-check: ok (baseline %s×, limit %s×)\n", num(bl.FullPathRatio), num(bl.FullPathRatio*(1+bl.Tolerance)))
	}
	return 0
}

// pairedRows measures native and full count times each, alternating, and gives the full row
// the median of the per-pair ratios: drift on a shared machine hits both halves of a pair.
func pairedRows(count int, native, full func() error) ([]*Row, error) {
	var ns, fs, ratios, nCPU, fCPU, cpuRatios []float64
	var last [2]testing.BenchmarkResult
	for range count {
		for i, fn := range []func() error{native, full} {
			r, err := benchOnce(fn)
			if err != nil {
				return nil, err
			}
			last[i] = r
		}
		n, f := nsPerOp(last[0]), nsPerOp(last[1])
		ns, fs, ratios = append(ns, n), append(fs, f), append(ratios, f/n)
		if nc, fc := last[0].Extra["cpu-ns/op"], last[1].Extra["cpu-ns/op"]; nc > 0 {
			nCPU, fCPU, cpuRatios = append(nCPU, nc), append(fCPU, fc), append(cpuRatios, fc/nc)
		}
	}
	nr := &Row{Group: "1", Key: "native", What: "native", Unit: "ns/op", Median: median(ns), Samples: ns,
		AllocsPerOp: last[0].AllocsPerOp(), BytesPerOp: last[0].AllocedBytesPerOp(), Ratio: 1, RatioTo: "native"}
	fr := &Row{Group: "2", Key: "full", What: "full path", Unit: "ns/op", Median: median(fs), Samples: fs,
		AllocsPerOp: last[1].AllocsPerOp(), BytesPerOp: last[1].AllocedBytesPerOp(),
		Ratio: median(ratios), RatioTo: "native", RatioSamples: ratios}
	if len(cpuRatios) > 0 {
		fr.CPURatio = median(cpuRatios)
		nr.CPU, fr.CPU = median(nCPU), median(fCPU)
	}
	return []*Row{nr, fr}, nil
}

// benchOnce runs fn under testing.Benchmark once.
func benchOnce(fn func() error) (testing.BenchmarkResult, error) {
	var failure error
	goruntime.GC()
	r := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		c0 := testenv.CPUTime()
		for b.Loop() {
			if err := fn(); err != nil {
				failure = err
				b.SkipNow()
			}
		}
		if c := testenv.CPUTime(); c0 > 0 {
			b.ReportMetric(float64(c-c0)/float64(b.N), "cpu-ns/op")
		}
	})
	if failure != nil {
		return r, failure
	}
	if r.N == 0 {
		return r, errors.New("the benchmark did not run")
	}
	return r, nil
}

// spread is "min–max" of xs.
func spread(xs []float64, format func(float64) string) string {
	if len(xs) == 0 {
		return ""
	}
	return format(slices.Min(xs)) + "–" + format(slices.Max(xs))
}
