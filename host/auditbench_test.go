package host_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

// BenchmarkCallSlackAudited is BenchmarkCallSlack with the audit trail a deployment runs: a
// StoreSink into SQLite with the keyed chain and signed checkpoints (every 1000 records, every
// 10 s, in the store and an anchor file). Appends happen on the sink's goroutine, so this is
// BenchmarkCallSlack plus what that goroutine costs the processors the call shares.
func BenchmarkCallSlackAudited(b *testing.B) {
	ctx := context.Background()
	url := benchSlack(b)
	m, wasm := hosttest.Connector(b, "./plugins/slack", "manifests/slack.yaml")
	dir := b.TempDir()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	key, _ := secret.NewMasterKey()
	ss, err := secret.OpenStore(ctx, &secret.MemoryBackend{}, key)
	if err != nil {
		b.Fatal(err)
	}
	trail, err := audit.Attach(ctx, st, ss, &audit.TrailOptions{Anchor: filepath.Join(dir, audit.AnchorFile)})
	if err != nil {
		b.Fatal(err)
	}
	sink := audit.NewStoreSink(st, &audit.StoreSinkOptions{Logger: benchLogger(), Trail: trail})
	b.Cleanup(func() { sink.Close() })
	h, _ := hosttest.New(b, host.Config{Secrets: secrets(), Audit: sink, Logger: benchLogger()})
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": url}}
	if err := h.LoadModule(ctx, m, wasm, g); err != nil {
		b.Fatal(err)
	}
	req := host.CallRequest{Tool: "slack.post_message", Arguments: json.RawMessage(benchPostArgs), Agent: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		if res := h.Call(ctx, req); !res.OK {
			b.Fatalf("post_message: %+v", res.Error)
		}
	}
	b.StopTimer()
	if err := sink.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
