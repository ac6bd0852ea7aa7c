// Package telemetry keeps the host's Prometheus metrics and OpenTelemetry spans: what operators
// see of the calls, without ever seeing their arguments, secrets or callers' free text.
//
// Every label comes from a closed set: a connector or tool the admin loaded, an error code the
// host defines, a host the connector's grant allows, an HTTP method, a status class, an agent
// name the embedder vouches for. Anything else — a tool name an agent invented, a plugin's own
// error code, a host a plugin tried and was denied — is counted under "other", so no caller can
// create series.
//
//	m := telemetry.NewMetrics(telemetry.MetricsConfig{})
//	m.Call(telemetry.CallLabels{Connector: "slack", Tool: "post_message", Outcome: "ok"}, 12*time.Millisecond)
//	http.Handle("/metrics", m.Handler())
package telemetry

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/airlock-dev/airlock/host/internal/breaker"
	"github.com/airlock-dev/airlock/host/internal/egress"
	"github.com/airlock-dev/airlock/host/internal/ratelimit"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Other is the label value of anything outside a label's closed set.
const Other = "other"

// MaxAgents bounds the agent label: past this many distinct names, further ones count as
// "other" even when MetricsConfig.Agent vouches for them.
const MaxAgents = 256

// MetricsConfig configures NewMetrics. The zero value is valid.
type MetricsConfig struct {
	// Agent reports whether an agent name belongs to a closed set an admin controls (agents
	// registered with 'airlock agent add'), so it may be a label value. Nil: every agent is
	// "other", and airlock_agent_calls_total has one series.
	Agent func(name string) bool
}

// Metrics holds the host's metric families in a registry of their own. Safe for concurrent use;
// a nil *Metrics records nothing.
type Metrics struct {
	reg   *prometheus.Registry
	agent func(string) bool

	calls        *prometheus.CounterVec
	callDuration *prometheus.HistogramVec
	agentCalls   *prometheus.CounterVec
	quota        *prometheus.CounterVec
	screened     *prometheus.CounterVec
	requests     *prometheus.CounterVec
	reqDuration  *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	waits        *prometheus.CounterVec
	auditAppend  prometheus.Histogram
	auditFail    prometheus.Counter
	authRefused  *prometheus.CounterVec
	credentials  *prometheus.CounterVec
	compile      *prometheus.HistogramVec
	instantiate  *prometheus.HistogramVec

	mu     sync.Mutex
	agents map[string]bool // agent label values handed out so far
}

// NewMetrics returns the metric families, registered with the Go runtime and process
// collectors in a new registry (never prometheus.DefaultRegisterer, so an embedder's own
// metrics and ours do not collide).
func NewMetrics(cfg MetricsConfig) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), agent: cfg.Agent, agents: map[string]bool{}}
	f := factory{m.reg}
	callLabels := []string{"connector", "tool", "outcome", "code", "category"}
	m.calls = f.counter("airlock_tool_calls_total", "Tool calls by connector, tool, outcome (ok, error, denied), error code and category.", callLabels...)
	m.callDuration = f.histogram("airlock_tool_call_duration_seconds", "Duration of tool calls, end to end.",
		[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "connector", "tool", "outcome")
	m.agentCalls = f.counter("airlock_agent_calls_total", `Tool calls by agent name; only admin-registered agent names are labels, the rest are "other".`, "agent")
	m.quota = f.counter("airlock_quota_refusals_total", "Tool calls refused by a grant's call quota.", "connector", "tool")
	m.screened = f.counter("airlock_screened_results_total", `Tool results in which screening found signs of prompt injection ("found") or whose classifier failed open ("unscreened"), by the grant's action (label, redact, require_approval, block).`, "connector", "tool", "action", "outcome")
	reqLabels := []string{"connector", "host", "method", "status_class", "decision"}
	m.requests = f.counter("airlock_egress_requests_total", `Outbound requests (each attempt and redirect hop) by connector, granted host ("other" for any other), method, status class (2xx … 5xx, "none" without a response) and decision (allowed, denied, error).`, reqLabels...)
	m.reqDuration = f.histogram("airlock_egress_request_duration_seconds", "Latency of outbound requests, per hop.",
		[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "connector", "host")
	m.retries = f.counter("airlock_egress_retries_total", "Outbound attempts after the first (retries).", "connector", "host")
	m.waits = f.counter("airlock_egress_wait_seconds_total", "Time outbound requests waited before an attempt (backoff, rate limit, upstream-requested pause).", "connector", "host")
	m.auditAppend = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "airlock_audit_append_duration_seconds",
		Help: "Time the host waited for the audit sink to accept a call's record.", Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		NativeHistogramBucketFactor: 1.1})
	m.auditFail = prometheus.NewCounter(prometheus.CounterOpts{Name: "airlock_audit_write_failures_total",
		Help: "Audit records the sink refused (the call's result is withheld)."})
	m.authRefused = f.counter("airlock_auth_refusals_total", "HTTP requests refused for a missing, invalid or revoked token.", "listener")
	m.credentials = f.counter("airlock_credential_events_total", "OAuth credential events by connector, slot and event (minted, refreshed, failed, needs_reauth, connected).", "connector", "slot", "event")
	m.compile = f.histogram("airlock_plugin_compile_seconds", "Time to compile a connector's module at load, by whether the compilation cache had it (hit, miss).",
		[]float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "connector", "cache")
	m.instantiate = f.histogram("airlock_plugin_instantiate_seconds", "Time to make a plugin instance (instantiation and the module's initialiser).",
		[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}, "connector")
	for _, l := range []string{"mcp", "admin"} {
		m.authRefused.WithLabelValues(l) // from zero, so a rate over the first refusals is right
	}
	m.reg.MustRegister(m.auditAppend, m.auditFail,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The limiters', breakers' and retry loop's process-wide counters.
	snap := func(name, help string, read func() map[string]int64, key string) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(read()[key]) }))
	}
	snap("airlock_ratelimit_waits_total", "Outbound requests that waited for a rate-limit token.", ratelimit.Snapshot, "waits")
	snap("airlock_ratelimit_refusals_total", "Outbound requests refused because their rate-limit wait was too long.", ratelimit.Snapshot, "refusals")
	snap("airlock_ratelimit_local_fallbacks_total", "Times a shared (Redis) limit fell back to local limiting.", ratelimit.Snapshot, "local_fallbacks")
	snap("airlock_breaker_opens_total", "Times an upstream's circuit breaker opened.", breaker.Snapshot, "opens")
	snap("airlock_breaker_closes_total", "Times an upstream's circuit breaker closed again.", breaker.Snapshot, "closes")
	snap("airlock_breaker_refusals_total", "Outbound requests an open circuit breaker refused.", breaker.Snapshot, "refusals")
	return m
}

type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

// histogram has classic buckets and a native (exponential) histogram: a scraper that speaks
// the protobuf format gets the latter, a text scraper the former.
func (f factory) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets,
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 160, NativeHistogramMinResetDuration: time.Hour}, labels)
	f.reg.MustRegister(h)
	return h
}

// Registry is where the metrics live, for an embedder who adds collectors of its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format or, when the scraper asks for it,
// OpenMetrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError})
}

// Register adds collectors (the host's pool and approval gauges) to the registry.
func (m *Metrics) Register(cs ...prometheus.Collector) {
	if m != nil {
		m.reg.MustRegister(cs...)
	}
}

// CallLabels describes one finished tool call. Connector and Tool must already be from the
// loaded set ("" or Other otherwise); Code and Category are checked here.
type CallLabels struct {
	Connector, Tool, Outcome, Code, Category, Agent string
}

// Call records one finished tool call.
func (m *Metrics) Call(l CallLabels, d time.Duration) {
	if m == nil {
		return
	}
	conn, tool := orOther(l.Connector), orOther(l.Tool)
	outcome := closed(l.Outcome, "ok", "error", "denied")
	m.calls.WithLabelValues(conn, tool, outcome, Code(l.Code), closed(l.Category, "", string(abi.Retryable), string(abi.Correctable), string(abi.Fatal))).Inc()
	m.callDuration.WithLabelValues(conn, tool, outcome).Observe(d.Seconds())
	m.agentCalls.WithLabelValues(m.agentLabel(l.Agent)).Inc()
}

// QuotaRefused counts a call a grant's quota refused; connector and tool are loaded ones.
func (m *Metrics) QuotaRefused(connector, tool string) {
	if m != nil {
		m.quota.WithLabelValues(orOther(connector), orOther(tool)).Inc()
	}
}

// Screened counts a result screening flagged (found) or could not fully screen (a classifier
// that failed open); action is the grant's screening action.
func (m *Metrics) Screened(connector, tool, action string, found bool) {
	if m != nil {
		outcome := "unscreened"
		if found {
			outcome = "found"
		}
		m.screened.WithLabelValues(orOther(connector), orOther(tool), action, outcome).Inc()
	}
}

// AuditAppend records how long the audit sink took to accept a record, and whether it refused.
func (m *Metrics) AuditAppend(d time.Duration, failed bool) {
	if m == nil {
		return
	}
	m.auditAppend.Observe(d.Seconds())
	if failed {
		m.auditFail.Inc()
	}
}

// AuthRefused counts a request refused for its token on listener ("mcp", "admin").
func (m *Metrics) AuthRefused(listener string) {
	if m != nil {
		m.authRefused.WithLabelValues(closed(listener, "mcp", "admin")).Inc()
	}
}

// Credential counts an OAuth credential event of a loaded connector's declared slot.
func (m *Metrics) Credential(connector, slot, event string) {
	if m != nil {
		m.credentials.WithLabelValues(orOther(connector), orOther(slot), closed(event, "minted", "refreshed", "failed", "needs_reauth", "connected")).Inc()
	}
}

// Compile records a module's compilation; connector is the name of the connector being loaded.
func (m *Metrics) Compile(connector string, d time.Duration, cached bool) {
	if m != nil {
		cache := "miss"
		if cached {
			cache = "hit"
		}
		m.compile.WithLabelValues(orOther(connector), cache).Observe(d.Seconds())
	}
}

// Instantiate records the making of one plugin instance of connector.
func (m *Metrics) Instantiate(connector string, d time.Duration) {
	if m != nil {
		m.instantiate.WithLabelValues(orOther(connector)).Observe(d.Seconds())
	}
}

// Request records one outbound hop of connector. host is the label value from Hosts.Label.
func (m *Metrics) Request(connector, host string, r egress.Record) {
	if m == nil {
		return
	}
	conn := orOther(connector)
	m.requests.WithLabelValues(conn, host, Method(r.Method), StatusClass(r.Status), closed(r.Decision, egress.DecisionAllowed, egress.DecisionDenied, egress.DecisionError)).Inc()
	if r.Decision != egress.DecisionDenied {
		m.reqDuration.WithLabelValues(conn, host).Observe(r.Duration.Seconds())
	}
	if r.Redirect == 0 && !r.Replay {
		if r.Attempt > 1 {
			m.retries.WithLabelValues(conn, host).Inc()
		}
		if r.Wait > 0 {
			m.waits.WithLabelValues(conn, host).Add(r.Wait.Seconds())
		}
	}
}

func (m *Metrics) agentLabel(name string) string {
	if m.agent == nil || name == "" || !m.agent(name) {
		return Other
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.agents[name] {
		if len(m.agents) >= MaxAgents {
			return Other
		}
		m.agents[name] = true
	}
	return name
}

func orOther(s string) string {
	if s == "" {
		return Other
	}
	return s
}

func closed(v string, set ...string) string {
	for _, s := range set {
		if v == s {
			return v
		}
	}
	return Other
}

var hostCodes = map[string]bool{}

func init() {
	for _, c := range []string{abi.CodeEgressDenied, abi.CodeBadRequest, abi.CodeUnknownSlot, abi.CodeCredential,
		abi.CodeUpstreamError, abi.CodeTimeout, abi.CodeResponseTooLarge, abi.CodeRateLimited, abi.CodeNotGranted,
		abi.CodeUnknownTool, abi.CodeInvalidArguments, abi.CodeInvalidOutput, abi.CodePluginTrap, abi.CodePluginError,
		abi.CodeTooLarge, abi.CodeInternal, abi.CodeUnavailable, abi.CodeNeedsConfirm,
		"approval_pending"} { // host.CodeApprovalPending
		hostCodes[c] = true
	}
}

// Code is the label value of an error code: "" for none, a code the host or the ABI defines, or
// "other" for a code a plugin made up.
func Code(c string) string {
	if c == "" || hostCodes[c] {
		return c
	}
	return Other
}

// Method is the label value of an HTTP method.
func Method(m string) string {
	m = strings.ToUpper(m)
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "DB":
		return m
	}
	return Other
}

// Hosts gives the host label of an outbound request: a host of the connector's granted rules
// (a wildcard rule's pattern for the hosts it matches), or "other". The zero value labels
// every host "other".
type Hosts struct {
	exact    map[string]bool
	suffixes map[string]string // ".example.com" -> "*.example.com"
}

// NewHosts returns the labels of the granted rule hosts.
func NewHosts(hosts []string) Hosts {
	h := Hosts{exact: map[string]bool{}, suffixes: map[string]string{}}
	for _, s := range hosts {
		s = strings.ToLower(s)
		if suf, ok := strings.CutPrefix(s, "*"); ok {
			h.suffixes[suf] = s
		} else {
			h.exact[s] = true
		}
	}
	return h
}

// Labels returns the labels of the granted rule hosts (a wildcard rule's pattern).
func (h Hosts) Labels() []string {
	out := make([]string, 0, len(h.exact)+len(h.suffixes))
	for s := range h.exact {
		out = append(out, s)
	}
	for _, p := range h.suffixes {
		out = append(out, p)
	}
	return out
}

// BreakerStates folds breaker states by upstream host into one value per host label: 0 closed,
// 1 half-open, 2 open — the worst state of the hosts a label stands for — with 0 for every
// granted host that has no breaker yet.
func (h Hosts) BreakerStates(states map[string]breaker.State) map[string]float64 {
	out := map[string]float64{}
	for _, l := range h.Labels() {
		out[l] = 0
	}
	for host, s := range states {
		v := 0.0
		switch s {
		case breaker.HalfOpen:
			v = 1
		case breaker.Open:
			v = 2
		}
		l := h.Label(host)
		out[l] = max(out[l], v)
	}
	return out
}

// Label returns host's label.
func (h Hosts) Label(host string) string {
	host = strings.ToLower(host)
	if h.exact[host] {
		return host
	}
	for suf, pattern := range h.suffixes {
		if strings.HasSuffix(host, suf) && len(host) > len(suf) {
			return pattern
		}
	}
	return Other
}

// StatusClass is "2xx" … "5xx", or "none" when there was no response.
func StatusClass(status int) string {
	if status < 100 || status > 599 {
		return "none"
	}
	return strconv.Itoa(status/100) + "xx"
}
