package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/notify"
	"github.com/airlock-dev/airlock/host/secret"
)

const hookSecret = "whsec-CANARY-notify-5tR8"

// receiver is a webhook endpoint that records what it gets and answers with status(n), n the
// request's number from 1.
type receiver struct {
	mu     sync.Mutex
	got    []delivery
	status func(n int) int
	srv    *httptest.Server
}

type delivery struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{req.Header.Clone(), b})
		n := len(r.got)
		r.mu.Unlock()
		code := http.StatusOK
		if r.status != nil {
			code = r.status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

var secrets = secret.Mux{"env": secret.Env{Lookup: func(name string) (string, bool) {
	switch name {
	case "HOOK_SECRET":
		return hookSecret, true
	}
	return "", false
}}}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start returns a Notifier, closed (and drained) when the test ends or by the returned func.
func start(t *testing.T, cfg notify.Config) (*notify.Notifier, func()) {
	t.Helper()
	if cfg.Secrets == nil {
		cfg.Secrets = secrets
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	n, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	closeIt := sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Cleanup(closeIt)
	return n, closeIt
}

var created = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func pending(id string) host.Notice {
	return host.Notice{Event: host.NoticeApprovalPending, ID: id, Connector: "slack", Tool: "post_message", Agent: "support-bot",
		Subject: "acme", Arguments: json.RawMessage(`{"channel":"C0GENERAL","text":"deploy v42"}`),
		Detail: "slack.post_message needs a human's approval before it runs", Created: created, Expires: created.Add(time.Hour)}
}

// A generic webhook gets the documented JSON, signed so that a receiver who knows only the
// README's recipe (HMAC-SHA256 over "t.body", hex) can check it.
func TestGenericWebhookSigned(t *testing.T) {
	r := newReceiver(t, nil)
	n, done := start(t, notify.Config{PublicURL: "https://airlock.example.com/",
		Webhooks: []notify.Webhook{{Name: "ops", URL: r.srv.URL, Secret: "env:HOOK_SECRET"}}})
	n.Notify(pending("ap_1f2e"))
	done()
	got := r.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	d := got[0]

	// The independent check: parse the header, recompute the MAC with the standard library.
	var ts, sig string
	for _, part := range strings.Split(d.header.Get("X-Airlock-Signature"), ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	m := hmac.New(sha256.New, []byte(hookSecret))
	m.Write([]byte(ts + "." + string(d.body)))
	if want := hex.EncodeToString(m.Sum(nil)); sig == "" || !hmac.Equal([]byte(sig), []byte(want)) {
		t.Errorf("X-Airlock-Signature %q does not verify (want v1=%s)", d.header.Get("X-Airlock-Signature"), want)
	}
	if sec, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		t.Errorf("signature timestamp %q is not the time of sending", ts)
	}
	if err := notify.Verify([]byte(hookSecret), d.header.Get("X-Airlock-Signature"), d.body, time.Now(), 0); err != nil {
		t.Errorf("Verify: %v", err)
	}

	var p map[string]any
	if err := json.Unmarshal(d.body, &p); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"event": "approval.pending", "id": "ap_1f2e", "connector": "slack", "tool": "post_message",
		"agent": "support-bot", "subject": "acme", "created_at": "2026-12-04T12:00:00Z", "expires_at": "2026-12-04T13:00:00Z",
		"link": "https://airlock.example.com/console/approvals/ap_1f2e"} {
		if p[k] != want {
			t.Errorf("payload %s = %v, want %v", k, p[k], want)
		}
	}
	if _, ok := p["arguments"]; ok {
		t.Error("the payload carries the arguments, which the webhook did not ask for")
	}
	if h := d.header; h.Get("X-Airlock-Event") != "approval.pending" || h.Get("X-Airlock-Delivery") != "ap_1f2e" || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v: want X-Airlock-Event, X-Airlock-Delivery and a JSON content type", h)
	}
}

// Verify refuses a tampered body, another key, a missing signature and an old timestamp
// (a replayed delivery).
func TestVerifyRefusesReplayAndTampering(t *testing.T) {
	key, body := []byte(hookSecret), []byte(`{"event":"approval.pending"}`)
	now := time.Now()
	good := notify.Sign(key, now, body)
	for _, c := range []struct {
		name   string
		key    []byte
		header string
		body   []byte
		at     time.Time
		want   error
	}{
		{"tampered body", key, good, []byte(`{"event":"breaker.open"}`), now, notify.ErrBadSignature},
		{"other key", []byte("guess"), good, body, now, notify.ErrBadSignature},
		{"no signature", key, "", body, now, notify.ErrNoSignature},
		{"replayed ten minutes later", key, good, body, now.Add(10 * time.Minute), notify.ErrStale},
		{"from the future", key, notify.Sign(key, now.Add(time.Hour), body), body, now, notify.ErrStale},
	} {
		if err := notify.Verify(c.key, c.header, c.body, c.at, 0); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
	if err := notify.Verify(key, good, body, now.Add(4*time.Minute), 0); err != nil {
		t.Errorf("within the tolerance: Verify = %v", err)
	}
}

// slackPostMessageParams reads the parameters of chat.postMessage from Slack's published Web
// API description; an incoming webhook takes a subset of them as its JSON body.
func slackPostMessageParams(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "specs", "slack_web_openapi_v2.json"))
	if err != nil {
		t.Skipf("published descriptions not found (%v): CI has them at ../shared/specs", err)
	}
	var spec struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	params := map[string]bool{}
	for _, p := range spec.Paths["/chat.postMessage"]["post"].Parameters {
		params[p.Name] = true
	}
	if !params["text"] || !params["blocks"] {
		t.Fatalf("chat.postMessage in the spec has no text or blocks parameter: %v", params)
	}
	return params
}

// The Slack message follows Slack's documented incoming-webhook format: only chat.postMessage
// parameters (from Slack's published description), a fallback text, Block Kit blocks within
// Slack's documented limits, and a button linking to the approval's console page. Names and
// arguments cannot inject mrkdwn links or mentions.
func TestSlackMessageShape(t *testing.T) {
	params := slackPostMessageParams(t)
	r := newReceiver(t, nil)
	n, done := start(t, notify.Config{PublicURL: "https://airlock.example.com",
		Webhooks: []notify.Webhook{{Name: "slack", Format: notify.FormatSlack, URL: r.srv.URL, IncludeArguments: true}}})
	nt := pending("ap_77aa")
	nt.Agent = "<!channel> <https://evil.example|click>"
	nt.Arguments = json.RawMessage(`{"text":"` + strings.Repeat("long ", 2000) + `<@U123>"}`)
	n.Notify(nt)
	n.Notify(host.Notice{Event: host.NoticeBreakerOpen, Connector: "slack", Host: "slack.com", Created: created, Detail: "the circuit breaker opened"})
	done()
	got := r.deliveries()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2", len(got))
	}
	for i, d := range got {
		var msg map[string]json.RawMessage
		if err := json.Unmarshal(d.body, &msg); err != nil {
			t.Fatal(err)
		}
		for k := range msg {
			if !params[k] {
				t.Errorf("message %d: key %q is not a chat.postMessage parameter", i, k)
			}
		}
		var m struct {
			Text   string `json:"text"`
			Blocks []struct {
				Type string `json:"type"`
				Text *struct {
					Type, Text string
				} `json:"text"`
				Elements []map[string]any `json:"elements"`
			} `json:"blocks"`
		}
		if err := json.Unmarshal(d.body, &m); err != nil {
			t.Fatal(err)
		}
		if m.Text == "" || utf8.RuneCountInString(m.Text) > 40000 || len(m.Blocks) == 0 || len(m.Blocks) > 50 {
			t.Errorf("message %d: text %d characters, %d blocks; want a fallback text and 1 to 50 blocks", i, len(m.Text), len(m.Blocks))
		}
		var buttons []string
		for _, b := range m.Blocks {
			switch b.Type {
			case "section":
				if b.Text == nil || (b.Text.Type != "mrkdwn" && b.Text.Type != "plain_text") || utf8.RuneCountInString(b.Text.Text) > 3000 || b.Text.Text == "" {
					t.Errorf("message %d: section text %+v: want mrkdwn or plain_text of 1 to 3000 characters", i, b.Text)
				}
				if strings.Contains(b.Text.Text, "<!channel>") || strings.Contains(b.Text.Text, "<@U123>") || strings.Contains(b.Text.Text, "<https://evil") {
					t.Errorf("message %d: a name or argument made mrkdwn markup: %s", i, b.Text.Text)
				}
			case "actions":
				for _, el := range b.Elements {
					txt, _ := el["text"].(map[string]any)
					url, _ := el["url"].(string)
					if el["type"] != "button" || txt["type"] != "plain_text" || utf8.RuneCountInString(txt["text"].(string)) > 75 || len(url) > 3000 {
						t.Errorf("message %d: button %v: want a plain_text label of at most 75 characters and a url", i, el)
					}
					buttons = append(buttons, url)
				}
			case "context":
				for _, el := range b.Elements {
					if el["type"] != "mrkdwn" && el["type"] != "plain_text" {
						t.Errorf("message %d: context element %v", i, el)
					}
				}
			default:
				t.Errorf("message %d: block type %q", i, b.Type)
			}
		}
		want := "https://airlock.example.com/console/"
		if i == 0 {
			want = "https://airlock.example.com/console/approvals/ap_77aa"
		}
		if !slices.Equal(buttons, []string{want}) {
			t.Errorf("message %d: buttons link to %q, want [%s]", i, buttons, want)
		}
	}
}

// A failing webhook is retried with backoff, under the same delivery ID, until it answers;
// one refusing for good (4xx) is not retried. Neither delays the other webhook.
func TestRetriesWithBackoff(t *testing.T) {
	flaky := newReceiver(t, func(n int) int {
		if n < 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	gone := newReceiver(t, func(int) int { return http.StatusGone })
	n, done := start(t, notify.Config{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Webhooks: []notify.Webhook{{Name: "flaky", URL: flaky.srv.URL, Secret: "env:HOOK_SECRET"}, {Name: "gone", URL: gone.srv.URL, Secret: "env:HOOK_SECRET"}}})
	n.Notify(pending("ap_retry"))
	done()
	got := flaky.deliveries()
	if len(got) != 3 {
		t.Fatalf("flaky webhook got %d attempts, want 3", len(got))
	}
	for _, d := range got {
		if d.header.Get("X-Airlock-Delivery") != "ap_retry" {
			t.Errorf("attempt has delivery %q, want ap_retry on every retry", d.header.Get("X-Airlock-Delivery"))
		}
	}
	if len(gone.deliveries()) != 1 {
		t.Errorf("410 Gone was tried %d times, want once", len(gone.deliveries()))
	}
	s := n.Stats()
	if s.Sent.Load() != 1 || s.Failed.Load() != 1 || s.Retries.Load() != 2 {
		t.Errorf("stats sent %d failed %d retries %d, want 1, 1, 2", s.Sent.Load(), s.Failed.Load(), s.Retries.Load())
	}
}

// A webhook that hangs neither blocks Notify nor the other webhooks; its bounded queue drops
// what does not fit, counted.
func TestHangingWebhookDoesNotBlock(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs before hang.Close
	ok := newReceiver(t, nil)
	n, err := notify.New(notify.Config{Secrets: secrets, Logger: quiet(), QueueSize: 4, Timeout: time.Hour,
		Webhooks: []notify.Webhook{{Name: "hang", URL: hang.URL, Secret: "env:HOOK_SECRET"}, {Name: "ok", URL: ok.srv.URL, Secret: "env:HOOK_SECRET"}}})
	if err != nil {
		t.Fatal(err)
	}
	finished := make(chan struct{})
	go func() {
		for i := range 100 {
			n.Notify(pending("ap_" + strconv.Itoa(i)))
		}
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(30 * time.Second): // only a blocked Notify gets here
		t.Fatal("Notify blocked on a hanging webhook")
	}
	// The hanging webhook holds one in flight and 4 queued; the rest were dropped.
	if d := n.Stats().Dropped.Load(); d < 100-4-1-4 {
		t.Errorf("dropped %d notices, want at least %d (queue of 4 for the hanging webhook)", d, 100-4-1-4)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := n.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a hanging webhook = %v, want the context's deadline", err)
	}
	if len(ok.deliveries()) == 0 {
		t.Error("the healthy webhook got nothing while the other hung")
	}
}

// Breaker and connection notices repeat at most once per Config.Repeat; approvals each go.
func TestRepeatsSuppressed(t *testing.T) {
	r := newReceiver(t, nil)
	n, done := start(t, notify.Config{Webhooks: []notify.Webhook{{URL: r.srv.URL, Secret: "env:HOOK_SECRET"}}})
	br := host.Notice{Event: host.NoticeBreakerOpen, Connector: "slack", Host: "slack.com", Created: created}
	n.Notify(br)
	n.Notify(br) // the failed probe 30 s later
	other := br
	other.Host = "files.slack.com"
	n.Notify(other)
	n.Notify(pending("ap_a"))
	n.Notify(pending("ap_b"))
	done()
	if got := len(r.deliveries()); got != 4 {
		t.Errorf("%d deliveries, want 4 (one per breaker host, one per approval)", got)
	}
}

// Configuration mistakes are refused with what to do.
func TestConfigRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		w    notify.Webhook
		want string
	}{
		{"unsigned generic webhook", notify.Webhook{URL: "https://hooks.example.com/x"}, "no secret"},
		{"secret value instead of a reference", notify.Webhook{URL: "https://hooks.example.com/x", Secret: "hunter2"}, "secret reference"},
		{"clear text to another host", notify.Webhook{URL: "http://hooks.example.com/x", Secret: "env:HOOK_SECRET"}, "use https"},
		{"unknown event", notify.Webhook{URL: "https://hooks.example.com/x", Secret: "env:HOOK_SECRET", Events: []string{"approval.created"}}, "approval.pending"},
		{"unknown format", notify.Webhook{URL: "https://hooks.example.com/x", Format: "teams"}, "json or slack"},
	} {
		_, err := notify.New(notify.Config{Secrets: secrets, Webhooks: []notify.Webhook{c.w}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New = %v, want an error saying %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error repeats the secret: %v", c.name, err)
		}
	}
}

// A Slack URL given as a secret reference is read at delivery and never logged.
func TestURLFromSecretReference(t *testing.T) {
	r := newReceiver(t, nil)
	var logs strings.Builder
	var mu sync.Mutex
	src := secret.Mux{"env": secret.Env{Lookup: func(name string) (string, bool) { return r.srv.URL + "/services/T0/B0/SECRETPATH", name == "SLACK_URL" }}}
	n, done := start(t, notify.Config{Secrets: src, Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)),
		Webhooks: []notify.Webhook{{Format: notify.FormatSlack, URL: "env:SLACK_URL"}}})
	n.Notify(pending("ap_ref"))
	done()
	if len(r.deliveries()) != 1 {
		t.Fatalf("%d deliveries, want 1", len(r.deliveries()))
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), "SECRETPATH") {
		t.Errorf("the logs hold the webhook URL: %s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type okTransport struct{}

func (okTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, r.Body)
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

// What Notify costs the call that creates an approval: queueing for two webhooks.
func BenchmarkNotify(b *testing.B) {
	n, err := notify.New(notify.Config{Secrets: secrets, Logger: quiet(), Transport: okTransport{}, QueueSize: 1 << 20,
		Webhooks: []notify.Webhook{{URL: "https://hooks.example.com/a", Secret: "env:HOOK_SECRET"},
			{URL: "https://hooks.example.com/s", Format: notify.FormatSlack}}})
	if err != nil {
		b.Fatal(err)
	}
	nt := pending("ap_bench")
	b.ReportAllocs()
	for b.Loop() {
		n.Notify(nt)
	}
	b.StopTimer()
	n.Close(context.Background())
}
