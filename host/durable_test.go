package host_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

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

// closingSink is an audit sink that refuses writes once the host closed it (OnClose), as
// StoreSink does. Its call records take a while to write, and writing says when it began.
type closingSink struct {
	writing chan struct{}
	mu      sync.Mutex
	closed  bool
	calls   []audit.Event
}

func (s *closingSink) Write(_ context.Context, e audit.Event) error {
	if e.Kind == audit.KindCall {
		close(s.writing)
		time.Sleep(200 * time.Millisecond) // long enough for a Close started meanwhile to finish
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return audit.ErrSinkClosed
	}
	if e.Kind == audit.KindCall {
		s.calls = append(s.calls, e)
	}
	return nil
}

// Closing the host while a call is writing its audit record (its connector's part already
// over) waits for the record: the call succeeds and the record is kept. A server shutting down
// closes its host this way; the host used to close the sink under the last calls.
func TestCloseWaitsForTheLastAuditRecord(t *testing.T) {
	sink := &closingSink{writing: make(chan struct{})}
	h, _, _ := slackHostWith(t, host.Config{Audit: sink, OnClose: func() error {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		sink.closed = true
		return nil
	}})
	result := make(chan *host.Result, 1)
	go func() { result <- call(h, "slack.list_channels", `{}`) }()
	<-sink.writing
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := <-result
	if !res.OK {
		t.Fatalf("the call whose record was being written during Close failed: %+v", res.Error)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.calls) != 1 || sink.calls[0].Outcome != "ok" {
		t.Fatalf("call records kept = %+v, want the one call's, outcome ok", sink.calls)
	}
}
