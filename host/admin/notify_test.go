package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/notify"
	"github.com/airlock-dev/airlock/host/secret"
)

const hookSecret = "whsec-CANARY-admin-Zp4q"

// hookSink is a webhook receiver recording bodies and headers.
type hookSink struct {
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
	url    string
}

func newHookSink(t *testing.T) *hookSink {
	s := &hookSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies, s.heads = append(s.bodies, b), append(s.heads, r.Header.Clone())
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *hookSink) payloads(t *testing.T) []notify.Payload {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []notify.Payload
	for _, b := range s.bodies {
		var p notify.Payload
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("webhook body %s: %v", b, err)
		}
		out = append(out, p)
	}
	return out
}

// newNotifier starts a Notifier over webhooks (their secret is env:HOOK_SECRET) and returns
// it with a func that drains it.
func newNotifier(t *testing.T, hooks ...notify.Webhook) (*notify.Notifier, func()) {
	t.Helper()
	for i := range hooks {
		if hooks[i].Format != notify.FormatSlack {
			hooks[i].Secret = "env:HOOK_SECRET"
		}
	}
	n, err := notify.New(notify.Config{PublicURL: "https://airlock.example.com", Webhooks: hooks, Backoff: time.Millisecond,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Secrets: secret.Mux{"env": secret.Env{Lookup: func(string) (string, bool) { return hookSecret, true }}}})
	if err != nil {
		t.Fatal(err)
	}
	drain := sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Close(ctx)
	})
	t.Cleanup(drain)
	return n, drain
}

// A call waiting for approval notifies the webhooks once, with the approval's ID and console
// link; arguments go only where asked for, scrubbed: the connector's secret, which an agent
// slipped into the arguments, appears in no payload or header, nor does the signing secret.
func TestApprovalNotifiesWithoutSecrets(t *testing.T) {
	generic, slack := newHookSink(t), newHookSink(t)
	n, drain := newNotifier(t, notify.Webhook{Name: "ops", URL: generic.url, IncludeArguments: true},
		notify.Webhook{Name: "slack", URL: slack.url, Format: notify.FormatSlack, IncludeArguments: true})
	e := approvalEnvWith(t, envOptions{onNotice: n.Notify})
	args := fmt.Sprintf(`{"channel":"C0GENERAL","text":"the token is %s"}`, canary)
	id := pendingID(t, e.call("slack.post_message", args))
	pendingID(t, e.call("slack.post_message", args)) // asking again: the same request, no second notice
	drain()

	ps := generic.payloads(t)
	if len(ps) != 1 {
		t.Fatalf("generic webhook got %d notices, want 1", len(ps))
	}
	p := ps[0]
	if p.Event != host.NoticeApprovalPending || p.ID != id || p.Connector != "slack" || p.Tool != "post_message" ||
		p.Agent != "test-agent" || p.Subject != "default" || p.Link != "https://airlock.example.com/console/approvals/"+id {
		t.Errorf("payload %+v, want approval %s of slack.post_message by test-agent with its console link", p, id)
	}
	var a map[string]string
	if err := json.Unmarshal(p.Arguments, &a); err != nil || a["channel"] != "C0GENERAL" {
		t.Errorf("payload arguments %s (%v), want the call's arguments as an object", p.Arguments, err)
	}
	for _, s := range []*hookSink{generic, slack} {
		s.mu.Lock()
		if len(s.bodies) != 1 {
			t.Errorf("webhook got %d notices, want 1", len(s.bodies))
		}
		for i, b := range s.bodies {
			head := fmt.Sprint(s.heads[i])
			if containsCanary(b) || containsCanary([]byte(head)) || strings.Contains(string(b)+head, hookSecret) {
				t.Errorf("a notice holds a secret: %s %s", head, b)
			}
		}
		s.mu.Unlock()
	}
}

// Webhooks that hang or fail neither fail nor hold up calls: every call is answered while the
// hanging webhook still holds its first request.
func TestFailingWebhooksDoNotHoldCalls(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	n, _ := newNotifier(t, notify.Webhook{Name: "hang", URL: hang.URL}, notify.Webhook{Name: "failing", URL: failing.URL})
	t.Cleanup(func() { close(release) }) // before the notifier drains
	e := approvalEnvWith(t, envOptions{onNotice: n.Notify})

	answered := make(chan error, 1)
	go func() {
		for i := range 40 {
			res := e.call("slack.post_message", fmt.Sprintf(`{"channel":"C0GENERAL","text":"deploy v%d"}`, i))
			if res.OK || res.Error.Code != host.CodeApprovalPending {
				answered <- fmt.Errorf("call %d: %+v, want approval_pending", i, res.Error)
				return
			}
		}
		if res := e.call("slack.list_channels", `{"limit":2}`); !res.OK {
			answered <- fmt.Errorf("list_channels: %+v", res.Error)
			return
		}
		answered <- nil
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second): // only calls waiting on a webhook get here
		t.Fatal("calls did not return while a webhook hung")
	}
}

// With two replicas on one state store, the replica that created an approval notifies, once;
// the agent asking again through the other replica finds the same request and notifies nobody.
func TestOneNoticePerApprovalAcrossReplicas(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			dsn := b.dsn(t)
			sinkA, sinkB := newHookSink(t), newHookSink(t)
			nA, drainA := newNotifier(t, notify.Webhook{URL: sinkA.url})
			nB, drainB := newNotifier(t, notify.Webhook{URL: sinkB.url})
			a := approvalEnvWith(t, envOptions{dsn: dsn, onNotice: nA.Notify})
			b := newEnv(t, envOptions{dsn: dsn, approvalTTL: time.Hour, onNotice: nB.Notify})
			if err := b.a.Sync(context.Background()); err != nil {
				t.Fatal(err)
			}
			id := pendingID(t, a.call("slack.post_message", argsA))
			if again := pendingID(t, b.call("slack.post_message", argsA2)); again != id {
				t.Fatalf("replica B made request %s, want the pending %s", again, id)
			}
			drainA()
			drainB()
			if pa, pb := sinkA.payloads(t), sinkB.payloads(t); len(pa) != 1 || pa[0].ID != id || len(pb) != 0 {
				t.Errorf("replica A sent %d notices, B %d; want 1 (approval %s) from A only", len(pa), len(pb), id)
			}
		})
	}
}

// An upstream that keeps failing opens its circuit breaker, and that is notified once however
// many probes fail after.
func TestBreakerOpenNotifies(t *testing.T) {
	sink := newHookSink(t)
	n, drain := newNotifier(t, notify.Webhook{URL: sink.url, Events: []string{host.NoticeBreakerOpen}})
	e := newEnv(t, envOptions{onNotice: n.Notify})
	e.install(t, "slack", "1.0.0", "active", e.slackYAML(t, nil), e.slackW)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	g := e.slackGrant()
	g.Upstreams = map[string]string{"https://slack.com": down.URL}
	e.grant(t, "", g)
	for range 4 {
		e.call("slack.list_channels", `{"limit":2}`)
	}
	drain()
	ps := sink.payloads(t)
	if len(ps) != 1 || ps[0].Event != host.NoticeBreakerOpen || ps[0].Connector != "slack" || ps[0].Host != "slack.com" ||
		ps[0].Link != "https://airlock.example.com/console/" {
		t.Errorf("notices %+v, want one breaker.open for slack.com", ps)
	}
}
