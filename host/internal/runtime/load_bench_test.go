package runtime

import (
	"context"
	"testing"
)

// BenchmarkNewInstance is what the pool pays for each instance of the Slack connector it adds
// (at load, and whenever it refills): instantiation, the module's data segments and its
// initialiser.
//
//	go test -run '^$' -bench NewInstance -benchmem ./host/internal/runtime
func BenchmarkNewInstance(b *testing.B) {
	m := load(b, Options{Name: "slack", Wasm: plugin(b, "./plugins/slack"), Exports: []string{"post_message"},
		PoolSize: 1, Warm: -1})
	ctx := context.Background()
	for b.Loop() {
		in, err := m.newInstance(ctx)
		if err != nil {
			b.Fatal(err)
		}
		in.mod.Close(ctx)
	}
}
