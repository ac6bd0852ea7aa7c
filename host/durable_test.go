package host_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/fakeslack"
)

// brokenSink is an audit sink with begin records (as StoreSink) whose begin or call records
// cannot be made durable.
type brokenSink struct {
	mu                  sync.Mutex
	failBegin, failCall bool
	begun               int
}

func (s *brokenSink) Write(_ context.Context, e audit.Event) error {
	if s.failCall && e.Kind == audit.KindCall {
		return audit.ErrStoreUnavailable
	}
	return nil
}

func (s *brokenSink) Begin(context.Context, audit.Event) (func(context.Context) error, error) {
	s.mu.Lock()
	s.begun++
	s.mu.Unlock()
	return func(context.Context) error {
		if s.failBegin {
			return errors.New("disk full")
		}
		return nil
	}, nil
}

func brokenSlackHost(t *testing.T, sink *brokenSink) (*host.Host, *fakeslack.Server) {
	t.Helper()
	fake := fakeslack.New(canary)
	url, stop := fake.Start()
	t.Cleanup(stop)
	m, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	h, _ := hosttest.New(t, host.Config{Secrets: secrets(), Audit: sink})
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": url}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, fake
}

// A call that ran (its message reached Slack) but whose record cannot be made durable does not
// report success, and tells the agent the outcome is unknown and not to retry blindly.
func TestUnrecordableCallIsNotASuccess(t *testing.T) {
	h, fake := brokenSlackHost(t, &brokenSink{failCall: true})
	res := call(h, "slack.post_message", `{"channel":"C0GENERAL","text":"deploy finished"}`)
	if res.OK || res.Data != nil || res.Error == nil {
		t.Fatalf("result = %+v, want a failure without data", res)
	}
	if len(fake.Requests()) != 1 {
		t.Fatalf("upstream saw %d requests, want 1 (the call ran)", len(fake.Requests()))
	}
	if res.Error.Code != abi.CodeUnavailable || res.Error.Category != abi.Fatal ||
		!strings.Contains(res.Error.Message, "outcome is unknown") || !strings.Contains(res.Error.Message, "do not repeat") {
		t.Fatalf("error = %+v, want unavailable, fatal, saying the outcome is unknown and not to repeat it", res.Error)
	}
}

// When the begin record cannot be made durable, nothing leaves the host.
func TestUnrecordableBeginSendsNothing(t *testing.T) {
	sink := &brokenSink{failBegin: true}
	h, fake := brokenSlackHost(t, sink)
	res := call(h, "slack.post_message", `{"channel":"C0GENERAL","text":"deploy finished"}`)
	if res.OK {
		t.Fatalf("result = %+v, want a failure", res)
	}
	if sink.begun != 1 || len(fake.Requests()) != 0 {
		t.Fatalf("begun %d, upstream saw %d requests; want 1 and 0", sink.begun, len(fake.Requests()))
	}
}
