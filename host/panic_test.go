package host_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
)

// panicOnceSink is an audit sink whose Begin panics the first time it is called: a stand-in for
// any bug on the call path, in airlock or in a library it calls, that panics on some input.
type panicOnceSink struct {
	audit.Memory
	panicked atomic.Bool
}

func (s *panicOnceSink) Begin(context.Context, audit.Event) (func(context.Context) error, error) {
	if s.panicked.CompareAndSwap(false, true) {
		panic("boom: a bug on the call path")
	}
	return nil, nil
}

// Host.Call never panics (its doc says so): a panic in a call's own work fails that call with an
// internal error, recorded in the audit trail and logged with its stack, and the host goes on
// serving the next call. Before the backstop, the panic ended the calling goroutine (over stdio
// MCP, the whole process).
func TestCallPanicIsContained(t *testing.T) {
	sink := &panicOnceSink{}
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	h, rec := hosttest.New(t, host.Config{Secrets: secrets(), Resolver: fakeDNS{}, Audit: sink})
	g := &manifest.Grant{Connector: "hostile", Tools: []string{"noop"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN", "other_key": "env:OTHER_KEY"})}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	var res *host.Result
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Host.Call panicked: %v", p)
			}
		}()
		res = call(h, "hostile.noop", `{}`)
	}()
	if res.OK || res.Error == nil || res.Error.Code != "internal" || !strings.Contains(res.Error.Message, res.Meta.RequestID) {
		t.Fatalf("the call that panicked = %+v, want an internal error naming its request ID", res.Error)
	}
	evs := sink.Events()
	if len(evs) != 1 || evs[0].RequestID != res.Meta.RequestID || evs[0].Outcome != "error" || evs[0].Code != "internal" {
		t.Fatalf("audit records = %+v, want the failed call's, with code internal", evs)
	}
	if logs := rec.Logs(); !strings.Contains(logs, "a tool call panicked") || !strings.Contains(logs, "boom: a bug on the call path") ||
		!strings.Contains(logs, "callRecovered") {
		t.Errorf("the panic was not logged with its value and stack:\n%s", logs)
	}
	if next := call(h, "hostile.noop", `{}`); !next.OK {
		t.Fatalf("the next call = %+v, want it served", next.Error)
	}
}
