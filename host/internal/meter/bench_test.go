package meter

import (
	"context"
	"os"
	"testing"

	"github.com/airlock-dev/airlock/internal/pluginbuild"
)

// BenchmarkInstrument rewrites the Slack connector (a 3.7 MB standard-Go module): the cost the
// meter adds to every load, cached or not.
func BenchmarkInstrument(b *testing.B) {
	path, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/slack"})
	if err != nil {
		b.Fatal(err)
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	var st Stats
	for b.Loop() {
		if _, st, err = Instrument(wasm); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.Sites), "sites")
	b.ReportMetric(float64(st.Functions), "functions")
	b.ReportMetric(float64(st.Sized), "sized")
}
