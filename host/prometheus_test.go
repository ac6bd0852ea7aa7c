package host_test

// A real Prometheus server (Debian's prometheus package) scrapes a running host's metrics while
// the test drives calls of every kind, then the test asks Prometheus' HTTP API whether the
// counters and histogram counts are what it did, evaluates deploy/'s alert rules on what was
// scraped, and runs every query of the Grafana dashboard.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// prometheus is a Prometheus server the test started.
type prometheus struct{ url string }

// startPrometheus runs Debian's prometheus binary scraping target every second, with the alert
// rules of deploy/ evaluated every second, its storage in a temporary directory.
func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	bin := testenv.Tool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	rules, err := filepath.Abs("../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: airlock
    static_configs: [{targets: [%q]}]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := &prometheus{url: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not become ready:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// api GETs a Prometheus API path and decodes its data.
func (p *prometheus) api(t *testing.T, path string, q url.Values, data any) error {
	t.Helper()
	resp, err := http.Get(p.url + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status, Error string
		Data          json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return err
	}
	if body.Status != "success" {
		return fmt.Errorf("%s %v: %s", path, q, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// query returns an instant query's samples, keyed by their labels' values joined by "/".
func (p *prometheus) query(t *testing.T, expr string) map[string]float64 {
	t.Helper()
	var data struct {
		Result []struct {
			Metric map[string]string
			Value  [2]any
		}
	}
	if err := p.api(t, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	out := map[string]float64{}
	for _, r := range data.Result {
		var keys []string
		for k := range r.Metric {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, r.Metric[k])
		}
		v, _ := strconv.ParseFloat(r.Value[1].(string), 64)
		out[strings.Join(parts, "/")] = v
	}
	return out
}

func TestPrometheusScrapesHost(t *testing.T) {
	ctx := context.Background()
	fake := fakeslack.New(canary)
	var listHits atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "conversations.list") { // an upstream outage for one tool
			listHits.Add(1)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	st := sqliteStore(t)
	sink := audit.NewStoreSink(st, nil)
	metrics := host.NewMetrics(&host.MetricsOptions{Agent: func(name string) bool { return name == "ci-bot" }})
	h, _ := hosttest.New(t, host.Config{Secrets: secrets(), Resolver: fakeDNS{}, Metrics: metrics, Store: st, Audit: sink, OnClose: sink.Close})
	slack, wasm := hosttest.Connector(t, "./plugins/slack", "manifests/slack.yaml")
	g := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
		Upstreams:   map[string]string{"https://slack.com": front.URL},
		Quotas:      &manifest.Quotas{PerAgent: &manifest.Quota{Calls: 5, PeriodS: 3600}}}
	if err := h.LoadModule(ctx, slack, wasm, g); err != nil {
		t.Fatal(err)
	}
	api := newUpstream(t)
	hostile, hwasm := hosttest.Connector(t, "./host/testdata/plugins/hostile", "host/testdata/hostile.yaml")
	hg := &manifest.Grant{Connector: "hostile", Tools: []string{"fetch", "noop"}, Scopes: []string{"test"}, Hosts: []string{"*"},
		Confirm:     []string{"noop"},
		Credentials: manifest.SecretRefs(map[string]string{"token": "env:HOSTILE_TOKEN", "other_key": "env:OTHER_KEY"}),
		Upstreams:   map[string]string{"https://api.example.test": api.URL, "https://other.example.test": api.URL}}
	if err := h.LoadModule(ctx, hostile, hwasm, hg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(metrics.Handler())
	t.Cleanup(srv.Close)
	prom := startPrometheus(t, strings.TrimPrefix(srv.URL, "http://"))

	var results []*host.Result
	do := func(agent, tool, args string) *host.Result {
		r := h.Call(ctx, host.CallRequest{Tool: tool, Arguments: json.RawMessage(args), Agent: agent})
		results = append(results, r)
		return r
	}
	for range 3 { // success
		if r := do("ci-bot", "slack.post_message", `{"channel":"C0GENERAL","text":"ok"}`); !r.OK {
			t.Fatalf("post_message = %+v", r.Error)
		}
	}
	if r := do("ops", "slack.list_channels", `{}`); r.OK || r.Error.Category != abi.Retryable { // upstream error
		t.Fatalf("list_channels during an outage = %+v, want a retryable error", r.Error)
	}
	for range 2 { // validation error
		if r := do("ops", "slack.post_message", `{"channel":"C0GENERAL"}`); r.OK || r.Error.Code != abi.CodeInvalidArguments {
			t.Fatalf("post_message without text = %+v", r.Error)
		}
	}
	for i := range 7 { // rate-limited: the quota allows 5 calls per agent
		r := do("flood", "slack.post_message", `{"channel":"C0GENERAL","text":"again"}`)
		if (i < 5) != r.OK || (i >= 5 && r.Error.Code != abi.CodeRateLimited) {
			t.Fatalf("call %d of agent flood = %+v", i+1, r.Error)
		}
	}
	// denied egress: the hostile connector asks for a host outside its manifest.
	if r := do("ops", "hostile.fetch", `{"method":"GET","url":"https://evil.example.test/"}`); !r.OK || !strings.Contains(string(r.Data), abi.CodeEgressDenied) {
		t.Fatalf("fetch of an undeclared host = %s %+v, want the plugin to see egress_denied", r.Data, r.Error)
	}
	// waiting for a human: the call is refused and an approval request waits.
	if r := do("ops", "hostile.noop", `{}`); r.OK || r.Error.Code != host.CodeApprovalPending {
		t.Fatalf("noop under confirm = %+v, want approval_pending", r.Error)
	}
	if err := sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// What was done, as the metrics should count it.
	want := map[string]float64{}
	for _, r := range results {
		key := "ok" // Prometheus drops the empty code label
		if r.Error != nil {
			key = r.Error.Code + "/error"
		}
		want[key]++
	}
	calls := float64(len(results))
	var got map[string]float64
	deadline := time.Now().Add(60 * time.Second)
	for {
		got = prom.query(t, `sum by (code, outcome) (airlock_tool_calls_total)`)
		if n := prom.query(t, `sum(airlock_tool_call_duration_seconds_count)`)[""]; n == calls || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("airlock_tool_calls_total by code/outcome = %v, want %v", got, want)
	}
	checks := []struct {
		expr string
		want map[string]float64
	}{
		{`sum(airlock_tool_call_duration_seconds_count)`, map[string]float64{"": calls}},
		{`sum by (connector, tool) (airlock_quota_refusals_total)`, map[string]float64{"slack/post_message": 2}},
		{`sum by (agent) (airlock_agent_calls_total)`, map[string]float64{"ci-bot": 3, "other": calls - 3}},
		{`sum by (connector, host, status_class) (airlock_egress_requests_total{decision="denied"})`, map[string]float64{"hostile/other/none": 1}},
		{`sum by (host) (airlock_egress_requests_total{decision!="denied",status_class="5xx"})`, map[string]float64{"slack.com": float64(listHits.Load())}},
		{`sum by (host) (airlock_egress_retries_total)`, map[string]float64{"slack.com": float64(listHits.Load() - 1)}},
		{`sum(airlock_egress_request_duration_seconds_count) - sum(airlock_egress_requests_total{decision!="denied"})`, map[string]float64{"": 0}},
		{`sum(airlock_audit_append_duration_seconds_count)`, map[string]float64{"": calls}},
		{`airlock_audit_dropped_total + airlock_audit_write_failures_total`, map[string]float64{"": 0}},
		{`sum(airlock_audit_queue_depth)`, map[string]float64{"": 0}}, // flushed
		{`sum(airlock_approvals_pending)`, map[string]float64{"": 1}},
		{`sum(airlock_instances{state="busy"})`, map[string]float64{"": 0}}, // every call has returned
		{`airlock_connectors`, map[string]float64{"airlock_connectors": 2}},
	}
	for _, c := range checks {
		g := prom.query(t, c.expr)
		if fmt.Sprint(stripTarget(g)) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, want %v", c.expr, stripTarget(g), c.want)
		}
	}
	if listHits.Load() < 2 {
		t.Errorf("the upstream outage saw %d attempts; want a retry", listHits.Load())
	}

	// The alert rules evaluate without error on what was scraped.
	var rules struct {
		Groups []struct {
			Rules []struct{ Name, Health, LastError string }
		}
	}
	time.Sleep(2 * time.Second)
	if err := prom.api(t, "/api/v1/rules", nil, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health == "err" {
				t.Errorf("alert %s: %s", r.Name, r.LastError)
			}
		}
	}
	if n < 10 {
		t.Errorf("prometheus loaded %d rules from deploy/prometheus/alerts.yaml, want 10", n)
	}

	// Every metric the dashboard and the alerts name is one the host exports, and every
	// dashboard query runs.
	var names []string
	if err := prom.api(t, "/api/v1/label/__name__/values", nil, &names); err != nil {
		t.Fatal(err)
	}
	dash, _ := os.ReadFile("../deploy/grafana/airlock.json")
	alerts, _ := os.ReadFile("../deploy/prometheus/alerts.yaml")
	for _, m := range regexp.MustCompile(`airlock_[a-z_]+`).FindAllString(string(dash)+string(alerts), -1) {
		if !slices.Contains(names, m) {
			t.Errorf("deploy/ names %s, which the host does not export", m)
		}
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	json.Unmarshal(dash, &d)
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			expr := strings.NewReplacer("$__rate_interval", "1m", "$connector", ".*").Replace(q.Expr)
			var v json.RawMessage
			if err := prom.api(t, "/api/v1/query", url.Values{"query": {expr}}, &v); err != nil {
				t.Errorf("dashboard panel %q: %v", p.Title, err)
			}
		}
	}
}

// stripTarget removes the job and instance Prometheus adds from query keys ("airlock/127.0.0.1:…").
func stripTarget(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	re := regexp.MustCompile(`^127\.0\.0\.1:\d+/airlock$|/?127\.0\.0\.1:\d+/airlock$`)
	for k, v := range m {
		out[re.ReplaceAllString(k, "")] = v
	}
	return out
}
