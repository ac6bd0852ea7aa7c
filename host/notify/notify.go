// Package notify sends a host's notices ([host.Notice]: a call waiting for approval, a
// connection needing re-consent, a circuit breaker opening) to admins' webhooks: a generic
// JSON webhook signed with HMAC-SHA256, or a Slack incoming webhook whose message links to
// the approval page of the web console.
//
// A [Notifier] never blocks nor fails the call that caused a notice: [Notifier.Notify] puts the
// notice in a bounded queue per webhook (dropping it, counted and logged, when that queue is
// full) and returns; a goroutine per webhook delivers, retrying network errors, 408, 429 and
// 5xx with exponential backoff and full jitter (honouring Retry-After), so a slow or failing
// webhook delays only its own queue.
//
//	n, err := notify.New(notify.Config{PublicURL: "https://airlock.example.com", Secrets: secrets,
//		Webhooks: []notify.Webhook{{Name: "ops", URL: "https://hooks.example.com/airlock", Secret: "env:HOOK_SECRET"}}})
//	h, err := host.New(host.Config{OnNotice: n.Notify, …})
//	defer n.Close(ctx)
//
// A generic webhook's request carries X-Airlock-Signature: t=UNIX,v1=HEX, where HEX is the
// lowercase hex HMAC-SHA256, keyed with the webhook's secret, of the decimal UNIX time, a
// period and the exact body. A receiver recomputes it, compares in constant time, and refuses a
// timestamp more than five minutes from its clock (replay); X-Airlock-Delivery identifies the
// notice, the same on every retry, for a receiver to drop duplicates ([Verify] does the
// first two for Go receivers).
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/secret"
)

// Formats of a webhook's body.
const (
	FormatJSON  = "json"  // the notice as a JSON object, signed (the default)
	FormatSlack = "slack" // a Slack incoming-webhook message: text and blocks with a link
)

// Defaults for zero Config fields.
const (
	DefaultQueueSize   = 256
	DefaultMaxAttempts = 5
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = time.Minute
	DefaultTimeout     = 10 * time.Second
	DefaultRepeat      = 15 * time.Minute
	// MaxArgumentBytes bounds the arguments a notice carries (to webhooks that ask for them);
	// larger ones are left out and the payload says so.
	MaxArgumentBytes = 4 << 10
)

// Config configures a Notifier. Zero fields take the defaults named on each; New copies it.
type Config struct {
	// PublicURL is the base URL admins open the console at (https://airlock.example.com);
	// links are PublicURL/console/approvals/ID for an approval and PublicURL/console/ for the
	// other events. Empty: notices carry no link.
	PublicURL string
	// Webhooks are where notices go.
	Webhooks []Webhook
	// Secrets resolves the webhooks' secret references (Webhook.Secret, and Webhook.URL when it
	// is one), at each delivery, so a rotated secret is used without a restart.
	Secrets secret.Source
	// Logger receives delivery failures and drops. Default slog.Default().
	Logger *slog.Logger
	// QueueSize bounds the notices waiting per webhook (default 256); beyond it a notice is
	// dropped, counted and logged.
	QueueSize int
	// MaxAttempts bounds the attempts per notice and webhook (default 5).
	MaxAttempts int
	// Backoff is the wait before the first retry (default 1 s), doubling up to MaxBackoff
	// (default 1 min), with full jitter. A Retry-After of up to MaxBackoff is honoured.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// Repeat is how long a connection or breaker notice for the same connector and subject or
	// host is not sent again (default 15 min): a breaker that fails its probes would otherwise
	// notify every cool-down. Approvals are each notified.
	Repeat time.Duration
	// Transport sends the requests (default http.DefaultTransport). Redirects are not followed.
	Transport http.RoundTripper
	// Now is the clock of signatures (default time.Now).
	Now func() time.Time
}

// Webhook is one destination.
type Webhook struct {
	// Name names the webhook in logs (default webhook-N, N from 1).
	Name string
	// URL is the https URL to POST to (http only to a loopback address), or a secret reference
	// holding it (env:SLACK_WEBHOOK_URL): a Slack incoming-webhook URL is a secret.
	URL string
	// Format is FormatJSON (default) or FormatSlack.
	Format string
	// Secret is the secret reference of the HMAC key (env:NAME, file:PATH, store:NAME, vault:…).
	// Required for FormatJSON (a receiver must be able to tell airlock's notices from a
	// forger's); optional for Slack, which ignores the signature headers.
	Secret string
	// Events are the host.Notice events to send (default all: host.NoticeEvents).
	Events []string
	// IncludeArguments adds an approval's arguments (scrubbed of every secret the host knows,
	// at most MaxArgumentBytes). Default false: arguments stay on the console.
	IncludeArguments bool
}

// Notifier delivers notices to webhooks. Safe for concurrent use; Close it when done.
type Notifier struct {
	cfg   Config
	hooks []*hook
	log   *slog.Logger

	mu     sync.Mutex
	recent map[string]time.Time // key of a repeatable notice → when it was last sent
	closed bool

	stop   context.Context // cancelled by Close when its context ends: abandon retries
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stats Stats
}

type hook struct {
	Webhook
	queue  chan host.Notice
	client *http.Client
}

// Stats are a Notifier's counters (the process's totals are published with expvar as
// "airlock_notify", which the admin API's /metrics serves).
type Stats struct {
	Sent       atomic.Int64 // delivered (2xx)
	Failed     atomic.Int64 // given up after the last attempt, or refused for good (4xx, redirect)
	Retries    atomic.Int64 // attempts after the first
	Dropped    atomic.Int64 // not queued: the webhook's queue was full, or the Notifier closed
	Suppressed atomic.Int64 // repeats within Config.Repeat
}

var total Stats

func init() {
	expvar.Publish("airlock_notify", expvar.Func(func() any {
		return map[string]int64{"sent": total.Sent.Load(), "failed": total.Failed.Load(), "retries": total.Retries.Load(),
			"dropped": total.Dropped.Load(), "suppressed": total.Suppressed.Load()}
	}))
}

func (n *Notifier) count(f func(*Stats) *atomic.Int64) {
	f(&n.stats).Add(1)
	f(&total).Add(1)
}

// New checks cfg and starts a Notifier with a goroutine per webhook.
func New(cfg Config) (*Notifier, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Repeat <= 0 {
		cfg.Repeat = DefaultRepeat
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("notify: public_url %q: give the URL admins open airlock at, like https://airlock.example.com", cfg.PublicURL)
		}
		cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	n := &Notifier{cfg: cfg, log: cfg.Logger, recent: map[string]time.Time{}}
	names := map[string]bool{}
	for i, w := range cfg.Webhooks {
		if w.Name == "" {
			w.Name = fmt.Sprintf("webhook-%d", i+1)
		}
		if names[w.Name] {
			return nil, fmt.Errorf("notify: two webhooks are named %q: give each its own name", w.Name)
		}
		names[w.Name] = true
		if err := check(&w, cfg.Secrets); err != nil {
			return nil, fmt.Errorf("notify: webhook %s: %w", w.Name, err)
		}
		n.hooks = append(n.hooks, &hook{Webhook: w, queue: make(chan host.Notice, cfg.QueueSize),
			client: &http.Client{Transport: cfg.Transport, Timeout: cfg.Timeout,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}})
	}
	n.stop, n.cancel = context.WithCancel(context.Background())
	for _, h := range n.hooks {
		n.wg.Add(1)
		go n.run(h)
	}
	return n, nil
}

// check validates w and fills its defaults.
func check(w *Webhook, secrets secret.Source) error {
	switch w.Format {
	case "":
		w.Format = FormatJSON
	case FormatJSON, FormatSlack:
	default:
		return fmt.Errorf("format %q: use json or slack", w.Format)
	}
	if w.URL == "" {
		return errors.New("no url: give the https URL to POST to, or a secret reference holding it (env:SLACK_WEBHOOK_URL)")
	}
	isURL := strings.HasPrefix(w.URL, "https://") || strings.HasPrefix(w.URL, "http://")
	if isURL {
		if err := checkURL(w.URL); err != nil {
			return err
		}
	} else if _, ok := secret.Scheme(w.URL); !ok {
		return fmt.Errorf("url %s: give an https URL or a secret reference (env:NAME, file:PATH, store:NAME)", secret.Display(w.URL))
	}
	if (!isURL || w.Secret != "") && secrets == nil {
		return errors.New("its url or secret is a secret reference, but no secret source is configured")
	}
	if w.Secret == "" && w.Format == FormatJSON {
		return errors.New("no secret: a generic webhook is signed, so its receiver can tell airlock's notices from a forger's; " +
			"give secret: a secret reference (env:AIRLOCK_WEBHOOK_SECRET, store:NAME)")
	}
	if w.Secret != "" {
		if _, ok := secret.Scheme(w.Secret); !ok {
			return errors.New("secret: give a secret reference (env:NAME, file:PATH, store:NAME), not the value")
		}
	}
	if len(w.Events) == 0 {
		w.Events = host.NoticeEvents
	}
	for _, e := range w.Events {
		if !slices.Contains(host.NoticeEvents, e) {
			return fmt.Errorf("event %q: use %s", e, strings.Join(host.NoticeEvents, ", "))
		}
	}
	return nil
}

// checkURL allows https, and http to a loopback address only (a test receiver, a local relay):
// notices must not cross a network in clear text.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return errors.New("url: give an absolute URL without user:password (put credentials in the secret)")
	}
	if u.Scheme == "https" {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); u.Scheme == "http" && (u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("url scheme %s to %s: use https (http only to a loopback address)", u.Scheme, u.Hostname())
}

// Notify queues n for every webhook that wants its event and returns at once; pass it as
// host.Config.OnNotice. A webhook whose queue is full drops the notice (counted, logged).
func (n *Notifier) Notify(nt host.Notice) {
	n.mu.Lock() // held while queueing (never blocking), so Close cannot close a queue under it
	defer n.mu.Unlock()
	if n.closed {
		n.count(func(s *Stats) *atomic.Int64 { return &s.Dropped })
		return
	}
	if nt.Event != host.NoticeApprovalPending && n.repeated(nt) {
		n.count(func(s *Stats) *atomic.Int64 { return &s.Suppressed })
		return
	}
	for _, h := range n.hooks {
		if !slices.Contains(h.Events, nt.Event) {
			continue
		}
		select {
		case h.queue <- nt:
		default:
			n.count(func(s *Stats) *atomic.Int64 { return &s.Dropped })
			n.log.Warn("notify: the webhook's queue is full; notice dropped", "webhook", h.Name, "event", nt.Event, "id", nt.ID)
		}
	}
}

// repeated reports whether a notice like nt (same event, connector, subject, slot and host)
// went out less than Config.Repeat ago, and records this one otherwise. Called with n.mu held.
func (n *Notifier) repeated(nt host.Notice) bool {
	key := strings.Join([]string{nt.Event, nt.Connector, nt.Subject, nt.Slot, nt.Host}, "\x00")
	now := n.cfg.Now()
	if last, ok := n.recent[key]; ok && now.Sub(last) < n.cfg.Repeat {
		return true
	}
	if len(n.recent) >= 4096 {
		for k, t := range n.recent {
			if now.Sub(t) >= n.cfg.Repeat {
				delete(n.recent, k)
			}
		}
	}
	n.recent[key] = now
	return false
}

// Stats returns the Notifier's counters.
func (n *Notifier) Stats() *Stats { return &n.stats }

// Close stops taking notices and waits for the queued ones to be delivered until ctx ends;
// then it abandons the rest (counted as failed).
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	for _, h := range n.hooks {
		close(h.queue)
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel()
		<-done
		return ctx.Err()
	}
}

func (n *Notifier) run(h *hook) {
	defer n.wg.Done()
	for nt := range h.queue {
		n.deliver(h, nt)
	}
}

// deliver sends nt to h, with retries; it gives up after MaxAttempts or when Close gives up.
func (n *Notifier) deliver(h *hook, nt host.Notice) {
	body, err := n.body(h, nt)
	if err != nil {
		n.count(func(s *Stats) *atomic.Int64 { return &s.Failed })
		n.log.Error("notify: the notice cannot be encoded", "webhook", h.Name, "event", nt.Event, "id", nt.ID, "err", err)
		return
	}
	var why string
	for attempt := 1; ; attempt++ {
		retry, wait, err := n.attempt(h, nt, body)
		if err == nil {
			n.count(func(s *Stats) *atomic.Int64 { return &s.Sent })
			return
		}
		why = err.Error()
		if !retry || attempt >= n.cfg.MaxAttempts || n.stop.Err() != nil {
			break
		}
		if wait <= 0 {
			wait = time.Duration(rand.Int64N(int64(n.backoff(attempt)) + 1)) // full jitter
		}
		n.log.Info("notify: delivery failed; retrying", "webhook", h.Name, "event", nt.Event, "id", nt.ID, "attempt", attempt, "wait", wait, "err", why)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-n.stop.Done():
			t.Stop()
		}
		n.count(func(s *Stats) *atomic.Int64 { return &s.Retries })
	}
	n.count(func(s *Stats) *atomic.Int64 { return &s.Failed })
	n.log.Error("notify: notice not delivered", "webhook", h.Name, "event", nt.Event, "id", nt.ID, "err", why)
}

// backoff is the cap of the wait after the attempt-th attempt: Backoff doubled each time, at
// most MaxBackoff.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.cfg.Backoff
	for i := 1; i < attempt && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, n.cfg.MaxBackoff)
}

// attempt makes one request; retry says whether another may succeed, wait is a Retry-After.
func (n *Notifier) attempt(h *hook, nt host.Notice, body []byte) (retry bool, wait time.Duration, err error) {
	ctx, cancel := context.WithTimeout(n.stop, n.cfg.Timeout)
	defer cancel()
	target := h.URL
	if !strings.HasPrefix(target, "https://") && !strings.HasPrefix(target, "http://") {
		v, err := n.cfg.Secrets.Resolve(ctx, h.URL)
		if err != nil {
			return true, 0, fmt.Errorf("the url reference %s cannot be read: %w", secret.Display(h.URL), err)
		}
		if target = v.Expose(); checkURL(target) != nil {
			return false, 0, fmt.Errorf("the url reference %s does not hold an https URL", secret.Display(h.URL))
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return false, 0, errors.New("the url is not a valid URL") // never the URL: it may be a secret
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "airlock-notify")
	req.Header.Set("X-Airlock-Event", nt.Event)
	req.Header.Set("X-Airlock-Delivery", nt.ID)
	if h.Secret != "" {
		key, err := n.cfg.Secrets.Resolve(ctx, h.Secret)
		if err != nil || key.Expose() == "" {
			return true, 0, fmt.Errorf("the secret %s cannot be read (%v): the notice is not sent unsigned", secret.Display(h.Secret), err)
		}
		req.Header.Set(SignatureHeader, Sign([]byte(key.Expose()), n.cfg.Now(), body))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return true, 0, fmt.Errorf("the webhook cannot be reached: %s", redactURL(err, target))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch s := resp.StatusCode; {
	case s/100 == 2:
		return false, 0, nil
	case s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s >= 500:
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
			wait = min(time.Duration(secs)*time.Second, n.cfg.MaxBackoff)
		}
		return true, wait, fmt.Errorf("the webhook answered %s", resp.Status)
	default:
		return false, 0, fmt.Errorf("the webhook answered %s, which a retry would not change", resp.Status)
	}
}

// redactURL is err's text without the target URL (a Slack URL is a secret).
func redactURL(err error, target string) string {
	msg := err.Error()
	if target != "" {
		msg = strings.ReplaceAll(msg, target, "[webhook url]")
		if u, perr := url.Parse(target); perr == nil {
			msg = strings.ReplaceAll(msg, u.Path, "/[path]")
		}
	}
	return msg
}

// Payload is the body of a generic (FormatJSON) webhook.
type Payload struct {
	Event     string `json:"event"`
	ID        string `json:"id"` // the approval's ID; X-Airlock-Delivery carries it too
	Connector string `json:"connector,omitempty"`
	Tool      string `json:"tool,omitempty"`
	Agent     string `json:"agent,omitempty"`
	Subject   string `json:"subject,omitempty"`
	Slot      string `json:"slot,omitempty"`
	Host      string `json:"host,omitempty"`
	Detail    string `json:"detail,omitempty"`
	CreatedAt string `json:"created_at"`
	ExpiresAt string `json:"expires_at,omitempty"`
	Link      string `json:"link,omitempty"`
	// Arguments only when the webhook asks for them (include_arguments), scrubbed.
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// ArgumentsOmitted says why arguments the webhook asked for are not here.
	ArgumentsOmitted string `json:"arguments_omitted,omitempty"`
}

// payload is what nt becomes for a webhook.
func (n *Notifier) payload(h *hook, nt host.Notice) Payload {
	p := Payload{Event: nt.Event, ID: nt.ID, Connector: nt.Connector, Tool: nt.Tool, Agent: nt.Agent, Subject: nt.Subject,
		Slot: nt.Slot, Host: nt.Host, Detail: nt.Detail, CreatedAt: nt.Created.UTC().Format(time.RFC3339), Link: n.link(nt)}
	if !nt.Expires.IsZero() {
		p.ExpiresAt = nt.Expires.UTC().Format(time.RFC3339)
	}
	if h.IncludeArguments && nt.Arguments != nil {
		if len(nt.Arguments) > MaxArgumentBytes {
			p.ArgumentsOmitted = fmt.Sprintf("larger than %d bytes: see the console", MaxArgumentBytes)
		} else {
			p.Arguments = nt.Arguments
		}
	}
	return p
}

// link is where an admin acts on nt, "" without a public URL.
func (n *Notifier) link(nt host.Notice) string {
	switch {
	case n.cfg.PublicURL == "":
		return ""
	case nt.Event == host.NoticeApprovalPending:
		return n.cfg.PublicURL + "/console/approvals/" + url.PathEscape(nt.ID)
	}
	return n.cfg.PublicURL + "/console/"
}

func (n *Notifier) body(h *hook, nt host.Notice) ([]byte, error) {
	p := n.payload(h, nt)
	if h.Format == FormatSlack {
		return json.Marshal(slackMessage(p))
	}
	return json.Marshal(p)
}
