package host_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
)

// callNoopAllocs is what host.Call of a no-I/O tool allocates today, the whole path (profile,
// grant, validation, quotas, sandbox, audit, the log line at Info): the call's state (Result,
// audit record, handler, request ID), the sandbox call's context, the egress binding and
// observer of the call with their two contexts, the decoded arguments, the empty result's
// "null" and the log record's attributes beyond slog's five inline ones (RATIONALE.md, "Where
// each microsecond of a call goes"). It was 30.
const callNoopAllocs = 9

// TestCallNoopAllocations pins the allocations of a no-I/O tool call, so a change that adds one
// to every call fails here rather than only showing in a benchmark nobody reads.
func TestCallNoopAllocations(t *testing.T) {
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, _ := hosttest.New(t, host.Config{Secrets: secrets(), Audit: discardSink{}, Logger: benchLogger()})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"noop"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN", "other_key": "env:OTHER_KEY"})}
	ctx := context.Background()
	if err := h.LoadModule(ctx, m, wasm, g); err != nil {
		t.Fatal(err)
	}
	req := host.CallRequest{Tool: "hostile.noop", Arguments: json.RawMessage(`{}`), Agent: "bench"}
	call := func() {
		if res := h.Call(ctx, req); !res.OK {
			t.Fatalf("Call(hostile.noop) = %+v", res.Error)
		}
	}
	for range 20 { // the instance pool warmed and refilled
		call()
	}
	if got := testing.AllocsPerRun(200, call); got > callNoopAllocs {
		t.Errorf("host.Call of a no-I/O tool: %v allocations per call, want at most %d; "+
			"find the new one with go test -bench CallNoop -memprofile m.out -memprofilerate 1 ./host", got, callNoopAllocs)
	}
}
