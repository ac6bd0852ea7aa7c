package host_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// Attack (hostile agent, red team s9): a tools/call whose tool name holds a NUL byte ("x\u0000"
// in the MCP request's JSON) is refused as an unknown tool, and audited as every call is. On a
// PostgreSQL store, which refuses NUL in text, that audit record failed its INSERT; the store
// sink kept retrying the batch and, failing closed, refused every later call of every agent on
// the host. The refusal is audited now and the host goes on serving.
func TestHostileToolNameDoesNotStopAudit(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sink := audit.NewStoreSink(st, &audit.StoreSinkOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { sink.Close() })
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, _ := hosttest.New(t, host.Config{Secrets: secrets(), Audit: sink})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"noop"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN", "other_key": "env:OTHER_KEY"})}
	if err := h.LoadModule(ctx, m, wasm, g); err != nil {
		t.Fatal(err)
	}
	noop := func(i int) {
		t.Helper()
		if res := h.Call(ctx, host.CallRequest{Tool: "hostile.noop", Arguments: json.RawMessage(`{}`), Agent: "honest"}); !res.OK {
			t.Fatalf("honest call %d: %+v", i, res.Error)
		}
	}
	noop(1)
	for _, tool := range []string{"x\x00", "hostile.no\x00op", "\x00.\x00"} {
		res := h.Call(ctx, host.CallRequest{Tool: tool, Arguments: json.RawMessage(`{}`), Agent: "evil"})
		if res.OK || res.Error.Code != abi.CodeUnknownTool {
			t.Errorf("call of %q: %+v, want unknown_tool (audited)", tool, res.Error)
		}
	}
	noop(2)
	recs, err := st.QueryAudit(ctx, store.AuditFilter{Agent: "evil"})
	if err != nil || len(recs) != 3 {
		t.Errorf("audit records of the hostile calls: %d, %v; want 3", len(recs), err)
	}
	if n, err := st.VerifyAudit(ctx); err != nil || n < 5 {
		t.Errorf("VerifyAudit = %d, %v; want at least 5 records, nil", n, err)
	}
}
