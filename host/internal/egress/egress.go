// Package egress implements airlock_http: it sends a plugin's HTTP request if, and only if, the
// connector's effective permission (manifest ∩ grant) allows it, injects the named credential,
// and hands back a response with every known secret scrubbed out.
//
// One [Client] serves one connector grant:
//
//	c, err := egress.New(egress.Config{
//		Rules: []egress.Rule{{Scheme: "https", Host: "slack.com", PathPrefix: "/api/", Methods: []string{"GET", "POST"}}},
//		Slots: map[string]egress.Slot{"bot_token": {
//			Name: "bot_token", Kind: "bearer", Hosts: []string{"slack.com"}, Secret: token,
//		}},
//	})
//	if err != nil { … }
//	defer c.Close()
//	resp := c.Do(ctx, abi.HTTPRequest{
//		Method: "POST", URL: "https://slack.com/api/chat.postMessage", Credential: "bot_token", …,
//	})
//	if resp.Error != nil { … } // refused or failed: Code, Category and an agent-readable Message
//
// What Do enforces, in order (DESIGN.md, "One tool call", step 5 a–c and f):
//
//  1. The URL is parsed strictly and normalised: http and https only; no userinfo; the host is
//     lowercased and loses one trailing dot; percent-encoded and non-ASCII hosts (use punycode),
//     IPv6 zones and numeric hosts that are not a canonical dotted quad or a bracketed IPv6 address
//     are refused (so 2130706433, 0177.0.0.1, 0x7f.1 and 127.1 never reach a resolver that would
//     read them as 127.0.0.1); an IPv4-mapped IPv6 address is treated as the IPv4 address. Paths
//     with dot segments (also "%2e%2e" and Tomcat's "..;"), encoded slashes or backslashes and
//     control characters are refused.
//  2. The scheme, host, port, path prefix (on segment boundaries, against the path as sent)
//     and method must match one [Rule]. CONNECT, TRACE and unknown methods are never sent.
//  3. Headers the plugin must not set are dropped: Authorization, Proxy-*, Cookie, Host,
//     hop-by-hop headers, Accept-Encoding (the host asks for gzip itself so the body can be
//     decoded and scrubbed), and every header or query parameter an api_key slot uses.
//  4. The named credential slot is injected if the host is one of the slot's Hosts; naming a slot
//     for another host is refused rather than sent without credentials.
//  5. The host is resolved and only addresses that are public unicast, inside AllowPrivate, or an
//     Upstreams target are dialed, by IP, with a second check in net.Dialer.Control. Resolution
//     happens at dial time, so DNS rebinding cannot swap in an address after the check.
//     Upstreams targets have their own transport, so a pooled connection to a (trusted, maybe
//     private) target is never reused by a direct request that would have to pass the checks.
//  6. Redirects are followed by hand, each hop checked as in 1–5; the credential is re-injected
//     only on a hop to the same host that its slot allows, and never on an https → http downgrade.
//  7. The response is capped at MaxResponseBytes; Set-Cookie is dropped; every registered form
//     of every secret is scrubbed from headers and body. Every Content-Encoding line and list
//     element counts: gzip, x-gzip and deflate are decoded (within MaxResponseBytes, then
//     scrubbed, the header removed), identity and empty elements are ignored, and a response in
//     any other coding is refused. A redirect whose Location holds a form of a secret is not
//     followed. Upstream-chosen URLs and header values appear in messages only quoted, at most
//     100 bytes, escaped and marked "(upstream text)", and only after scrubbing.
//
// Around each attempt (step 5 d–e), per upstream host h and credential slot s:
//
//  8. The circuit breaker of h: after Breaker.Failures consecutive transient failures (network
//     errors, 5xx, timeouts of an attempt — not 4xx, not cancellations, not a caller's short
//     deadline) it answers at once with unavailable (retryable, RetryAfterMS = the rest of the
//     cool-down), then lets one probe through.
//  9. The token bucket of (h, s), sized by the first matching RateLimit (none: unlimited), and
//     paused when the upstream says so: Retry-After (seconds or HTTP date), GitHub's
//     x-ratelimit-remaining: 0 with x-ratelimit-reset, Salesforce's daily REQUEST_LIMIT_EXCEEDED
//     (paused for Retry.QuotaPause; its concurrency variant for seconds), Slack's
//     429 and {"ok":false,"error":"ratelimited"}. A request that would wait longer than
//     Retry.MaxWait or past its deadline fails at once with rate_limited (retryable,
//     RetryAfterMS set); the goroutine is not held.
//  10. Retries (package retry classifies): network errors, timeouts of an attempt, 429 and 5xx
//     except 501 are retried up to Retry.MaxAttempts with capped exponential backoff and full
//     jitter, never past the deadline; an upstream-requested wait longer than Retry.MaxWait
//     ends the request with rate_limited instead. 400, 401, 403 and 404 are not retried, except
//     the rate-limit signals above. POST and PATCH are replayed only if the plugin gave an
//     idempotency_key (sent as Idempotency-Key unless the plugin set that header) or the
//     connection was never made. A rate limit that ends the request is reported as
//     rate_limited; an exhausted 5xx is handed over as the response it was. The response is
//     buffered, so no byte reaches the plugin before the last attempt.
//
// Do never panics and never returns a Go error: a refusal or failure is an [abi.HTTPResponse]
// whose Error has a code from internal/abi and a message an agent can act on. Messages and
// [Record]s never contain a secret or a query string. A non-2xx status is not an error here.
package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/airlock-dev/airlock/host/internal/breaker"
	"github.com/airlock-dev/airlock/host/internal/credential"
	"github.com/airlock-dev/airlock/host/internal/ratelimit"
	"github.com/airlock-dev/airlock/host/internal/retry"
	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Defaults for zero Config fields.
const (
	DefaultMaxResponseBytes = 4 << 20 // 4 MiB
	DefaultMaxRedirects     = 5
)

// Credential kinds (Slot.Kind).
const (
	KindBearer = "bearer"
	KindAPIKey = "api_key"
	KindBasic  = "basic"
	// The OAuth kinds inject "Authorization: Bearer <access token>" from the slot's Source.
	KindOAuth2ClientCredentials = "oauth2_client_credentials"
	KindOAuth2AuthorizationCode = "oauth2_authorization_code"
	KindOAuth2JWTBearer         = "oauth2_jwt_bearer"
)

// isOAuth reports whether kind takes its token from a Source.
func isOAuth(kind string) bool {
	return kind == KindOAuth2ClientCredentials || kind == KindOAuth2AuthorizationCode || kind == KindOAuth2JWTBearer
}

// TokenSource supplies the credential of an OAuth slot for the calling subject.
// *credential.Provider implements it; it must be safe for concurrent use.
type TokenSource interface {
	// Credential returns the access token for subject and the hosts it may be sent to (a subset
	// of the slot's Hosts). Its errors should be *credential.Error, whose message is safe to
	// show the plugin.
	Credential(ctx context.Context, subject string) (credential.Credential, error)
	// Invalidate reports that the upstream refused token (HTTP 401), so the next Credential
	// fetches a new one.
	Invalidate(subject string, token secret.Value)
}

// Record decisions.
const (
	DecisionAllowed = "allowed"
	DecisionDenied  = "denied"
	DecisionError   = "error"
)

// Rule is one entry of the effective network permission.
type Rule struct {
	// Scheme is "http" or "https". Empty means "https".
	Scheme string
	// Host is a lowercase DNS name, an IP literal, or "*.example.com", which matches every
	// subdomain of example.com but not example.com itself.
	Host string
	// Port defaults to 80 for http and 443 for https.
	Port int
	// PathPrefix limits the paths, matched on segment boundaries against the escaped path:
	// "/api/" and "/api" both match "/api" and "/api/x" but never "/apiX". Empty means "/".
	PathPrefix string
	// Methods lists the allowed methods. Empty means GET only. CONNECT and TRACE are refused.
	Methods []string
}

// Slot is a credential the plugin may ask to have injected, with its secret.
type Slot struct {
	// Name is the slot's name in the manifest. It must equal its key in Config.Slots (or be
	// empty, meaning the key).
	Name string
	// Kind is "bearer" (Authorization: Bearer <secret>), "api_key" (the secret in the header or
	// query parameter Param) or "basic" (Authorization: Basic base64(<secret>), the secret being
	// "user:password").
	Kind string
	// In is where an api_key goes: "header" (the default) or "query".
	In string
	// Param is the api_key header or query parameter name. Required for api_key.
	Param string
	// Hosts are the only hosts the credential is sent to: exact names or "*.example.com".
	Hosts []string
	// Secret is the credential of a static kind. A zero Secret makes requests naming the slot
	// fail with credential_unavailable (the grant has not filled it).
	Secret secret.Value
	// Source supplies the access token of an OAuth kind, per calling subject (see
	// [WithSubject]), or the current secret of a static kind when it can change while the
	// client lives (a rotated secret: then Secret stays zero). Nil for an OAuth kind makes
	// requests naming the slot fail with credential_unavailable. On a 401 from the upstream the
	// value is invalidated, a new one fetched and the request replayed once if it changed.
	Source TokenSource
}

// Record describes one outbound request attempt or redirect hop, for the audit log. It never
// holds a secret or a query string.
type Record struct {
	Method     string
	URL        string // scheme://host[:port]/path: no userinfo, no query, no fragment
	Host       string // the host policy was checked on (the origin, not an Upstreams target)
	Status     int    // 0 if no response
	Duration   time.Duration
	Credential string // slot named by the plugin, "" for none
	Injected   bool   // whether the credential was actually sent on this hop
	Decision   string // DecisionAllowed, DecisionDenied or DecisionError
	Reason     string // why it was denied or what failed (safe text)
	Redirect   int    // hop number, 0 for the plugin's own request
	// Attempt numbers the attempts of one Do: 1 for the first, 2 for the first retry …; 0 for a
	// request refused by policy before any attempt. Every hop of an attempt carries its number,
	// and each attempt has exactly one record with Redirect 0, so counting those records counts
	// attempts. A first attempt the circuit breaker or rate limiter refuses has a record
	// (Status 0, Decision error); a retry they would refuse is not made and has none.
	Attempt int
	// Wait is how long the request waited before this attempt (backoff, rate limit, pause);
	// set on the Redirect 0 record only.
	Wait time.Duration
	// Replay marks the resend of a hop after the upstream answered 401 to an OAuth token and a
	// new token was obtained (at most once per request). It is not a new attempt: count
	// attempts on records with Redirect 0 and Replay false.
	Replay bool
}

// Resolver resolves host names. *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a [Client]. New copies it; changing it afterwards has no effect.
type Config struct {
	// Rules is the effective permission (manifest ∩ grant), computed by the caller. No rules
	// means every request is denied.
	Rules []Rule
	// Slots are the credential slots, keyed by name.
	Slots map[string]Slot
	// AllowPrivate lists private, loopback, link-local or otherwise non-public addresses the
	// grant explicitly allows dialing (private_targets).
	AllowPrivate []netip.Prefix
	// Upstreams maps an origin ("https://slack.com") to the base URL actually dialed
	// ("http://127.0.0.1:8099"): policy and credential hosts are checked on the origin; the target
	// is trusted (it may be private) and receives the request with its own Host header. A
	// redirect to the target's origin is mapped back to the origin.
	Upstreams map[string]string
	// MaxResponseBytes caps a response body (after gzip decoding), in bytes. 0 means 4 MiB.
	MaxResponseBytes int64
	// MaxRedirects caps the redirect hops followed per request. 0 means 5; a negative value
	// means redirects are not followed and the 3xx response is returned to the plugin.
	MaxRedirects int
	// Resolver resolves host names at dial time. Nil means net.DefaultResolver.
	Resolver Resolver
	// Scrubber receives the value of every slot at New and scrubs responses and messages.
	// Nil means a private one; pass a shared one to scrub other output with the same secrets.
	Scrubber *scrub.Scrubber
	// Observe, if set, is called once per request attempt or redirect hop, on the calling
	// goroutine, including for refused requests.
	Observe func(Record)
	// Logger receives a line per refused or failed request (never a secret or query string).
	// Nil means no logging.
	Logger *slog.Logger

	// RateLimits are static request rates per upstream host; the first entry whose Host matches
	// applies, to each credential slot separately. None (the default) means no static limit.
	// Pauses that upstreams ask for (Retry-After, rate-limit headers) apply regardless.
	RateLimits []RateLimit
	// Retry says how failed attempts are retried. The zero value means the defaults of
	// [RetryPolicy]: 3 attempts, 200 ms base, 5 s cap, waits held at most 10 s.
	Retry RetryPolicy
	// Breaker configures the circuit breaker kept per upstream host. The zero value means the
	// defaults: open after 5 consecutive transient failures, probe after 30 s.
	Breaker BreakerPolicy
	// OnBreakerOpen, if set, is called when the circuit breaker of an upstream host opens (again
	// after a failed probe too), with the host and the cool-down; it must return at once.
	OnBreakerOpen func(host string, coolDown time.Duration)
	// SharedLimits, if set, keeps the rate limits and upstream pauses in a store shared by every
	// replica (Redis); if it becomes unreachable, each replica limits locally at LocalShare of
	// each rate (default 1/2). Connector names the buckets' owner in that store.
	SharedLimits ratelimit.Store
	LocalShare   float64
	Connector    string
}

// Client sends plugin requests under one Config. It is safe for concurrent use; its zero value
// is not usable, call [New].
type Client struct {
	rules        []rule
	slots        map[string]*slot
	allowPrivate []netip.Prefix
	upstreams    map[string]*url.URL // origin key (scheme://host:port) → target base URL
	reverse      map[string]string   // target origin key → origin key
	trusted      map[string]bool     // "host:port" of upstream targets, dialed by upTransport only
	maxResponse  int64
	maxRedirects int
	resolver     Resolver
	scrub        *scrub.Scrubber
	observe      func(Record)
	log          *slog.Logger
	dropHeader   map[string]bool // canonical header names the plugin may not set
	dropQuery    []string        // query parameters the plugin may not set (api_key in query)
	transport    *http.Transport // checked destinations (https)
	client       *http.Client
	upTransport  *http.Transport // Upstreams targets only (https)
	upClient     *http.Client
	plain        *h1Transport // checked destinations (http)
	upPlain      *h1Transport // Upstreams targets only (http)
	closed       atomic.Bool

	limits   []rateRule
	limiter  *ratelimit.Limiter
	retry    retry.Policy // defaults applied
	breakerC breaker.Config
	onOpen   func(host string, coolDown time.Duration)
	brMu     sync.Mutex
	breakers map[string]*breaker.Breaker // upstream host → breaker

	// randN draws the backoff jitter, in [0, n). Tests replace it.
	randN func(n int64) int64

	// dialAddr dials one checked address. Tests replace it to observe dials without a network.
	dialAddr func(ctx context.Context, network string, ap netip.AddrPort, trusted bool) (net.Conn, error)
}

type slot struct {
	name   string
	kind   string
	query  bool   // api_key in the query
	param  string // api_key header (canonical) or query name
	hosts  []hostPattern
	secret secret.Value
	source TokenSource // OAuth kinds
}

// New validates cfg and returns a Client. Errors name the offending rule, slot or upstream.
func New(cfg Config) (*Client, error) {
	c := &Client{
		slots:        make(map[string]*slot, len(cfg.Slots)),
		allowPrivate: slices.Clone(cfg.AllowPrivate),
		upstreams:    make(map[string]*url.URL),
		reverse:      make(map[string]string),
		trusted:      make(map[string]bool),
		maxResponse:  cfg.MaxResponseBytes,
		maxRedirects: cfg.MaxRedirects,
		resolver:     cfg.Resolver,
		scrub:        cfg.Scrubber,
		observe:      cfg.Observe,
		log:          cfg.Logger,
		dropHeader:   make(map[string]bool),
	}
	switch {
	case c.maxResponse < 0:
		return nil, fmt.Errorf("egress: MaxResponseBytes is negative (%d)", c.maxResponse)
	case c.maxResponse == 0:
		c.maxResponse = DefaultMaxResponseBytes
	}
	switch {
	case c.maxRedirects < 0:
		c.maxRedirects = -1
	case c.maxRedirects == 0:
		c.maxRedirects = DefaultMaxRedirects
	}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	if c.scrub == nil {
		c.scrub = scrub.New()
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for i, p := range c.allowPrivate {
		if !p.IsValid() {
			return nil, fmt.Errorf("egress: AllowPrivate[%d] is not a valid prefix", i)
		}
		c.allowPrivate[i] = p.Masked()
	}

	for i, r := range cfg.Rules {
		nr, err := newRule(r)
		if err != nil {
			return nil, fmt.Errorf("egress: rule %d (%s): %w", i, r.Host, err)
		}
		c.rules = append(c.rules, nr)
	}

	for _, name := range sortedKeys(cfg.Slots) {
		s, err := newSlot(name, cfg.Slots[name])
		if err != nil {
			return nil, fmt.Errorf("egress: credential slot %q: %w", name, err)
		}
		c.slots[name] = s
		if s.kind == KindAPIKey {
			if s.query {
				c.dropQuery = append(c.dropQuery, s.param)
			} else {
				c.dropHeader[s.param] = true
			}
		}
		if v := s.secret.Expose(); v != "" {
			c.scrub.Add(v)
			if s.kind == KindBasic {
				_, pw, _ := strings.Cut(v, ":")
				c.scrub.Add(pw)
			}
		}
	}

	for i, rl := range cfg.RateLimits {
		r, err := newRateRule(rl)
		if err != nil {
			return nil, fmt.Errorf("egress: rate limit %d (%s): %w", i, rl.Host, err)
		}
		c.limits = append(c.limits, r)
	}
	c.limiter = ratelimit.New(c.limitFor)
	if cfg.SharedLimits != nil {
		c.limiter = ratelimit.NewShared(c.limitFor, ratelimit.SharedConfig{Store: cfg.SharedLimits, Connector: cfg.Connector, LocalShare: cfg.LocalShare})
	}
	if cfg.Retry.MaxAttempts < 0 || cfg.Retry.BaseDelay < 0 || cfg.Retry.MaxDelay < 0 || cfg.Retry.MaxWait < 0 ||
		cfg.Retry.AttemptTimeout < 0 || cfg.Retry.QuotaPause < 0 || cfg.Retry.SlowTimeout < 0 {
		return nil, errors.New("egress: Retry has a negative field")
	}
	if cfg.Breaker.CoolDown < 0 {
		return nil, errors.New("egress: Breaker.CoolDown is negative")
	}
	c.retry = cfg.Retry.WithDefaults()
	c.breakerC, c.onOpen = cfg.Breaker, cfg.OnBreakerOpen
	c.breakers = make(map[string]*breaker.Breaker)
	c.randN = rand.Int64N

	for _, origin := range sortedKeys(cfg.Upstreams) {
		if err := c.addUpstream(origin, cfg.Upstreams[origin]); err != nil {
			return nil, fmt.Errorf("egress: upstream %q: %w", origin, err)
		}
	}

	c.dialAddr = c.dialChecked
	// Two transports, so connections never cross between trusted upstream targets and
	// checked destinations: a pooled connection to a target must not serve a direct request
	// to the same address, which has to pass the address checks.
	c.transport = c.newTransport(false)
	c.upTransport = c.newTransport(true)
	c.client = newHTTPClient(c.transport)
	c.upClient = newHTTPClient(c.upTransport)
	c.plain = newH1Transport(c.dialer(false))
	c.upPlain = newH1Transport(c.dialer(true))
	return c, nil
}

// dialer is the transports' DialContext: dialContext, its failures marked as not sent.
func (c *Client) dialer(trusted bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := c.dialContext(ctx, network, addr, trusted)
		if err != nil {
			return nil, &notSentError{err}
		}
		return conn, nil
	}
}

func (c *Client) newTransport(trusted bool) *http.Transport {
	return &http.Transport{
		Proxy: nil, // never an environment proxy: it would bypass the address checks
		// Decoding is done by readResponse, which reads every Content-Encoding value; the
		// transport's own looks at the first only.
		DisableCompression: true,
		DialContext:        c.dialer(trusted),
		// HTTP/1.1 only, over TLS too: net/http's HTTP/2 client starts a goroutine per request
		// and writes headers and body apart, 40-50 µs of CPU more per call on a pooled
		// connection; one request per call gains nothing from multiplexing (RATIONALE.md).
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConns:           maxIdle,
		MaxIdleConnsPerHost:    maxIdlePerHost,
		IdleConnTimeout:        idleTimeout,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeader,
	}
}

func newHTTPClient(t *http.Transport) *http.Client {
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func newRule(r Rule) (rule, error) {
	nr := rule{name: r.Host}
	nr.scheme = strings.ToLower(r.Scheme)
	switch nr.scheme {
	case "":
		nr.scheme = "https"
	case "http", "https":
	default:
		return nr, fmt.Errorf("scheme %q is not http or https", r.Scheme)
	}
	hp, err := parseHostPattern(r.Host)
	if err != nil {
		return nr, err
	}
	nr.host = hp
	nr.port = r.Port
	switch {
	case nr.port == 0:
		nr.port = defaultPort(nr.scheme)
	case nr.port < 0 || nr.port > 65535:
		return nr, fmt.Errorf("port %d is out of range", r.Port)
	}
	nr.prefix = r.PathPrefix
	if nr.prefix == "" {
		nr.prefix = "/"
	}
	if !strings.HasPrefix(nr.prefix, "/") || strings.ContainsAny(nr.prefix, "?#") || hasDotSegment(nr.prefix) {
		return nr, fmt.Errorf("path prefix %q must start with / and have no query, fragment or dot segments", r.PathPrefix)
	}
	if len(r.Methods) == 0 {
		nr.methods = []string{http.MethodGet}
	}
	for _, m := range r.Methods {
		um := strings.ToUpper(m)
		if !allowedMethods[um] {
			return nr, fmt.Errorf("method %q cannot be granted (allowed: %s)", m, methodList)
		}
		if !slices.Contains(nr.methods, um) {
			nr.methods = append(nr.methods, um)
		}
	}
	return nr, nil
}

func newSlot(key string, s Slot) (*slot, error) {
	ns := &slot{name: s.Name, kind: s.Kind, secret: s.Secret, source: s.Source}
	if ns.name == "" {
		ns.name = key
	}
	if ns.name != key {
		return nil, fmt.Errorf("its Name %q differs from its key", s.Name)
	}
	switch s.Kind {
	case KindBearer, KindBasic, KindOAuth2ClientCredentials, KindOAuth2AuthorizationCode, KindOAuth2JWTBearer:
		if s.In != "" || s.Param != "" {
			return nil, fmt.Errorf("in and param apply to api_key slots only, not %s", s.Kind)
		}
		if (isOAuth(s.Kind) || s.Source != nil) && !s.Secret.IsZero() {
			return nil, fmt.Errorf("a %s slot takes its token from its Source, not a static secret", s.Kind)
		}
	case KindAPIKey:
		switch s.In {
		case "", "header":
			ns.param = http.CanonicalHeaderKey(s.Param)
			if !httpguts.ValidHeaderFieldName(s.Param) {
				return nil, fmt.Errorf("param %q is not a valid header name", s.Param)
			}
			if ns.param == "Host" || hopByHop[ns.param] {
				return nil, fmt.Errorf("param %q cannot carry a credential", s.Param)
			}
		case "query":
			ns.query = true
			ns.param = s.Param
			if s.Param == "" || strings.ContainsAny(s.Param, "&=#;+% ") {
				return nil, fmt.Errorf("param %q is not a valid query parameter name", s.Param)
			}
		default:
			return nil, fmt.Errorf("in is %q; want header or query", s.In)
		}
	default:
		return nil, fmt.Errorf("kind %q is not bearer, api_key, basic or an oauth2_ kind", s.Kind)
	}
	if len(s.Hosts) == 0 {
		return nil, errors.New("it names no hosts the credential may be sent to")
	}
	for _, h := range s.Hosts {
		hp, err := parseHostPattern(h)
		if err != nil {
			return nil, err
		}
		ns.hosts = append(ns.hosts, hp)
	}
	if v := s.Secret.Expose(); v != "" {
		if s.Kind == KindBasic && !strings.Contains(v, ":") {
			return nil, errors.New(`a basic credential must have the form "user:password"`)
		}
		if !httpguts.ValidHeaderFieldValue(v) || strings.ContainsAny(v, "\r\n") {
			return nil, errors.New("the secret contains characters not allowed in HTTP (a line break or control character?)")
		}
	}
	return ns, nil
}

func (c *Client) addUpstream(origin, target string) error {
	ot, f := parseTarget(origin)
	if f != nil {
		return errors.New(f.msg)
	}
	if ot.u.EscapedPath() != "/" || ot.u.RawQuery != "" {
		return errors.New("the origin must be scheme://host[:port] with no path or query")
	}
	tu, err := url.Parse(target)
	if err != nil || (tu.Scheme != "http" && tu.Scheme != "https") || tu.Host == "" || tu.User != nil ||
		(tu.Path != "" && tu.Path != "/") || tu.RawQuery != "" || tu.Fragment != "" {
		return fmt.Errorf("target %q must be an http or https base URL with no path, query or userinfo", target)
	}
	tt, f := parseTarget(target)
	if f != nil {
		return fmt.Errorf("target: %s", f.msg)
	}
	c.upstreams[ot.originKey()] = &url.URL{Scheme: tt.scheme, Host: tt.hostPort()}
	c.reverse[tt.originKey()] = ot.originKey()
	c.trusted[net.JoinHostPort(tt.host, strconv.Itoa(tt.port))] = true
	return nil
}

// Close releases idle connections. Do after Close fails with unavailable.
func (c *Client) Close() {
	c.closed.Store(true)
	c.transport.CloseIdleConnections()
	c.upTransport.CloseIdleConnections()
	c.plain.close()
	c.upPlain.close()
}

// Do sends req under the client's policy and returns the upstream's response, or a response
// whose Error says why it was refused or failed. It never panics and is safe for concurrent use.
//
// Each attempt (with its redirect hops) passes the circuit breaker and the rate limiter of its
// upstream host first; failed attempts are retried as the package documentation describes.
func (c *Client) Do(ctx context.Context, req abi.HTTPRequest) (resp abi.HTTPResponse) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("egress: panic in Do", "panic", c.scrub.String(fmt.Sprint(r)))
			resp = (&failure{code: abi.CodeInternal, category: abi.Fatal,
				msg: "the host failed while sending this request; this is a bug in airlock"}).response(c.scrub)
		}
	}()
	if c.closed.Load() {
		return (&failure{code: abi.CodeUnavailable, category: abi.Fatal, msg: "the connector's HTTP client is closed"}).response(c.scrub)
	}
	h, f := c.prepare(ctx, req)
	if f != nil {
		rec := Record{Method: trunc(strings.ToUpper(req.Method), 16), Credential: trunc(req.Credential, 64), Decision: f.decision(), Reason: f.why()}
		if rec.Method == "" {
			rec.Method = http.MethodGet
		}
		if h != nil && h.t != nil {
			rec.URL, rec.Host = h.t.display(), h.t.host
		}
		c.emit(ctx, rec, f)
		return f.response(c.scrub)
	}
	if req.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	h.timeoutMS = req.TimeoutMS
	return c.run(ctx, h)
}

// hop is one request to send: the plugin's, or a redirect.
type hop struct {
	method    string
	t         *target
	header    http.Header // plugin headers after filtering; no credential
	body      []byte
	credName  string // slot the plugin named
	slot      *slot  // slot to inject on this hop, nil for none
	n         int    // redirect hop number
	timeoutMS int64
	keyed     bool          // the plugin gave an idempotency key: non-idempotent methods may be replayed
	attempt   int           // attempt number, for records
	wait      time.Duration // waited before this attempt, for records

	viaUpstream bool     // set by build: the hop is sent to an Upstreams target
	bind        *Binding // the calling tool's binding (WithCall), nil for none

	// OAuth slots: the calling subject, the token injected and the hosts it may go to (nil:
	// slot.hosts); replayed says the one replay after a 401 has been used.
	subject   string
	token     secret.Value
	credHosts []hostPattern
	replayed  bool
	replay    bool // this send is the replay (for its record)
}

// credentialHosts are the hosts h's credential may be sent to.
func (h *hop) credentialHosts() []hostPattern {
	if h.credHosts != nil {
		return h.credHosts
	}
	return h.slot.hosts
}

// prepare validates the plugin's request and checks it against policy.
func (c *Client) prepare(ctx context.Context, req abi.HTTPRequest) (*hop, *failure) {
	h := &hop{credName: req.Credential, body: req.Body}
	m, f := normalizeMethod(req.Method)
	if f != nil {
		return h, f
	}
	h.method = m
	if req.TimeoutMS < 0 {
		return h, badRequest("timeout_ms is negative; use 0 for the rest of the call's time or a positive number of milliseconds")
	}
	t, f := parseTarget(req.URL)
	if f != nil {
		return h, f
	}
	h.t = t
	h.bind = bindingFrom(ctx)
	if why := h.bind.refuseTarget(c.rules, t); why != "" {
		return h, denied(why)
	}
	if why := c.allow(t, m); why != "" {
		return h, denied(fmt.Sprintf("the connector may not reach %s (%s); ask an admin to grant it if this is expected", t.display(), why))
	}
	if h.header, f = c.filterHeaders(req.Headers); f != nil {
		return h, f
	}
	if k := req.IdempotencyKey; k != "" {
		if len(k) > maxIdempotencyKey || !httpguts.ValidHeaderFieldValue(k) || strings.TrimSpace(k) != k {
			return h, badRequest(fmt.Sprintf("idempotency_key must be at most %d printable characters without leading or trailing spaces", maxIdempotencyKey))
		}
		if _, ok := h.header[idempotencyHeader]; !ok {
			h.header[idempotencyHeader] = []string{k}
		}
		h.keyed = true
	}
	c.filterQuery(t)
	if req.Credential != "" {
		s, ok := c.slots[req.Credential]
		if !ok {
			return h, &failure{code: abi.CodeUnknownSlot, category: abi.Fatal,
				msg: fmt.Sprintf("the connector has no credential slot %q%s", trunc(req.Credential, 64), c.slotHint())}
		}
		if why := h.bind.refuseSlot(s.name); why != "" {
			return h, denied(why)
		}
		if s.source == nil && s.secret.IsZero() {
			return h, &failure{code: abi.CodeCredential, category: abi.Correctable,
				msg: fmt.Sprintf("the credential %s has no secret configured; ask an admin to fill it in the grant", s.name)}
		}
		if !matchAny(s.hosts, t) {
			return h, denied(fmt.Sprintf("the credential %s may not be sent to %s (it is limited to %s); request a host the credential is for, or ask an admin",
				s.name, t.host, patternList(s.hosts)))
		}
		h.slot = s
		if s.source != nil {
			h.subject = subjectFrom(ctx)
			if f := c.fetchToken(ctx, h); f != nil {
				return h, f
			}
			if !matchAny(h.credHosts, t) {
				return h, denied(fmt.Sprintf("the credential %s may not be sent to %s: for this connection it is limited to %s; use that host",
					s.name, t.host, patternList(h.credHosts)))
			}
		}
	}
	return h, nil
}

// subjectFrom is the calling subject set by [WithSubject] (from the caller's authenticated
// identity, never from plugin input), "default" if none.
func subjectFrom(ctx context.Context) string {
	if s := requestSubject(ctx); s != "" {
		return s
	}
	return "default"
}

// fetchToken asks h's slot Source for the subject's token and the hosts it may go to.
func (c *Client) fetchToken(ctx context.Context, h *hop) *failure {
	s := h.slot
	cred, err := s.source.Credential(ctx, h.subject)
	if err != nil {
		f := &failure{code: abi.CodeCredential, category: abi.Retryable, cause: err,
			msg: fmt.Sprintf("the host could not obtain a token for credential %s; try again later", s.name)}
		var ce *credential.Error
		if errors.As(err, &ce) {
			f.category, f.msg = ce.Category(), ce.Message
			if ce.Err != nil {
				f.cause = ce.Err
			}
		}
		return f
	}
	if cred.Token.IsZero() {
		return &failure{code: abi.CodeCredential, category: abi.Retryable,
			msg: fmt.Sprintf("the host obtained an empty token for credential %s; try again later", s.name)}
	}
	v := cred.Token.Expose()
	c.scrub.Add(v)
	if s.kind == KindBasic {
		_, pw, _ := strings.Cut(v, ":")
		c.scrub.Add(pw)
	}
	if !httpguts.ValidHeaderFieldValue(v) || strings.ContainsAny(v, "\r\n") {
		return &failure{code: abi.CodeCredential, category: abi.Fatal,
			msg: fmt.Sprintf("the token endpoint of credential %s issued a token that cannot be sent in an HTTP header", s.name)}
	}
	hosts := s.hosts
	if cred.Hosts != nil {
		hosts = nil
		for _, hs := range cred.Hosts {
			hp, err := parseHostPattern(hs)
			if err != nil {
				return &failure{code: abi.CodeCredential, category: abi.Fatal, cause: err,
					msg: fmt.Sprintf("the connection of credential %s names a host that is not valid", s.name)}
			}
			// Never wider than the slot: each host must be one of its patterns or a name they match.
			ht := &target{host: hp.host}
			if a, err := netip.ParseAddr(hp.host); err == nil {
				ht.ip = a
			}
			if slices.Contains(s.hosts, hp) || !hp.wildcard && matchAny(s.hosts, ht) {
				hosts = append(hosts, hp)
			}
		}
		if len(hosts) == 0 {
			return &failure{code: abi.CodeCredential, category: abi.Fatal,
				msg: fmt.Sprintf("the connection of credential %s is limited to hosts outside the slot's hosts (%s); ask an admin to check the connector",
					s.name, patternList(s.hosts))}
		}
	}
	h.token, h.credHosts = cred.Token, hosts
	return nil
}

func (c *Client) slotHint() string {
	if len(c.slots) == 0 {
		return " (it declares none)"
	}
	return " (declared: " + strings.Join(sortedKeys(c.slots), ", ") + ")"
}

func (c *Client) emit(ctx context.Context, rec Record, f *failure) {
	// Scrub, then shorten: a secret cut in two no longer matches.
	rec.URL = trunc(c.scrub.String(rec.URL), maxShownURL)
	rec.Host = c.scrub.String(rec.Host)
	rec.Reason = trunc(c.scrub.String(rec.Reason), maxShownMessage)
	if f != nil {
		level := slog.LevelInfo
		if rec.Decision == DecisionDenied {
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{
			slog.String("method", rec.Method), slog.String("url", rec.URL), slog.Int("hop", rec.Redirect),
			slog.String("code", f.code), slog.String("reason", rec.Reason),
		}
		if f.cause != nil {
			attrs = append(attrs, slog.String("cause", c.scrub.String(f.cause.Error())))
		}
		c.log.LogAttrs(ctx, level, "egress: request "+rec.Decision, attrs...)
	}
	if c.observe != nil {
		c.observe(rec)
	}
	if call := callFrom(ctx); call != nil && call.Observer != nil {
		call.Observer.Observe(rec)
	}
}

// failure is a refusal or failure reported to the plugin. msg is safe for plugins and agents;
// reason, if set, is the (also safe) text recorded for admins; cause is logged after scrubbing.
type failure struct {
	code       string
	category   abi.Category
	msg        string
	reason     string
	cause      error
	retryAfter time.Duration // reported as RetryAfterMS when > 0

	transient bool // a network error or timeout another attempt may not meet
	notSent   bool // the request never left (dial failed): safe to replay for any method
	answered  bool // an upstream answered on some hop
}

func (f *failure) decision() string {
	if f.code == abi.CodeEgressDenied {
		return DecisionDenied
	}
	return DecisionError
}

func (f *failure) why() string {
	if f.reason != "" {
		return f.reason
	}
	return f.msg
}

func (f *failure) response(s *scrub.Scrubber) abi.HTTPResponse {
	e := &abi.Error{Code: f.code, Category: f.category, Message: trunc(s.String(f.msg), maxShownMessage)}
	if f.retryAfter > 0 {
		e.RetryAfterMS = int64((f.retryAfter + time.Millisecond - 1) / time.Millisecond)
	}
	return abi.HTTPResponse{Error: e}
}

// Lengths of the URL in records and of a message to the plugin, applied after scrubbing.
const (
	maxShownURL     = 300
	maxShownMessage = 1000
)

func denied(msg string) *failure {
	return &failure{code: abi.CodeEgressDenied, category: abi.Fatal, msg: msg}
}

func badRequest(msg string) *failure {
	return &failure{code: abi.CodeBadRequest, category: abi.Correctable, msg: msg}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// trunc shortens s to at most n bytes (on a rune boundary) plus an ellipsis.
func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ConnectionMetadata returns the non-secret metadata (such as instance_url) of subject's
// connection for the OAuth slot named slot, obtaining a token first if there is none yet. It
// returns nil and no error for a slot that is not declared or not an OAuth slot. The map never
// holds a token.
func (c *Client) ConnectionMetadata(ctx context.Context, slot, subject string) (map[string]string, error) {
	s, ok := c.slots[slot]
	if !ok || s.source == nil {
		return nil, nil
	}
	if subject == "" {
		subject = "default"
	}
	cred, err := s.source.Credential(ctx, subject)
	if err != nil {
		return nil, err
	}
	c.scrub.Add(cred.Token.Expose())
	return cred.Metadata, nil
}
