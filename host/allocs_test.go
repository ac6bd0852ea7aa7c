package host_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/airlock-dev/airlock/host"
)

// callNoopAllocs is what host.Call of a no-I/O tool allocates today, the whole path (profile,
// grant, validation, quotas, sandbox, audit, the log line at Info): the call's state, which is
// the Result it returns and holds the audit record, the host functions' handler, the sandbox
// call's context, the egress binding's context, an empty result's "null", the request ID and
// the arguments' hash (RATIONALE.md, "Where each microsecond of a call goes"). It was 30, then
// 9, then 5. Empty arguments ("{}") under a types-only schema are not decoded.
const callNoopAllocs = 1

// TestCallNoopAllocations pins the allocations of a no-I/O tool call, so a change that adds one
// to every call fails here rather than only showing in a benchmark nobody reads.
func TestCallNoopAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocations (sync.Pool drops items at random)")
	}
	h := noopHost(t, benchLogger())
	ctx := context.Background()
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
