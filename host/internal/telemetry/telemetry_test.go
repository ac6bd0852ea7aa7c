package telemetry

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestLabelsAreClosedSets(t *testing.T) {
	hosts := NewHosts([]string{"slack.com", "*.Slack-Edge.com"})
	for _, c := range []struct{ got, want string }{
		{hosts.Label("slack.com"), "slack.com"},
		{hosts.Label("SLACK.COM"), "slack.com"},
		{hosts.Label("files.slack-edge.com"), "*.slack-edge.com"},
		{hosts.Label("slack-edge.com"), Other}, // a wildcard rule is subdomains only
		{hosts.Label("evil.example"), Other},
		{hosts.Label("slack.com.evil.example"), Other},
		{Hosts{}.Label("slack.com"), Other},
		{Code(""), ""},
		{Code("rate_limited"), "rate_limited"},
		{Code("made_up_by_a_plugin"), Other},
		{Method("post"), "POST"},
		{Method("BREW"), Other},
		{StatusClass(0), "none"},
		{StatusClass(204), "2xx"},
		{StatusClass(503), "5xx"},
		{StatusClass(999), "none"},
	} {
		if c.got != c.want {
			t.Errorf("label = %q, want %q", c.got, c.want)
		}
	}
}

// TestUnvouchedValuesAreOther: outcomes, categories, listeners, credential events and agents
// outside their sets count as "other".
func TestUnvouchedValuesAreOther(t *testing.T) {
	m := NewMetrics(MetricsConfig{Agent: func(n string) bool { return strings.HasPrefix(n, "bot") }})
	m.Call(CallLabels{Connector: "slack", Tool: "x", Outcome: "weird", Category: "odd", Agent: "intruder"}, time.Millisecond)
	m.AuthRefused("backdoor")
	m.Credential("slack", "bot_token", "stolen")
	for i := range MaxAgents + 10 {
		m.Call(CallLabels{Connector: "slack", Tool: "x", Outcome: "ok", Agent: "bot" + strings.Repeat("x", i)}, time.Millisecond)
	}
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	text := rr.Body.String()
	for _, want := range []string{
		`airlock_tool_calls_total{category="other",code="",connector="slack",outcome="other",tool="x"} 1`,
		`airlock_auth_refusals_total{listener="other"} 1`,
		`airlock_credential_events_total{connector="slack",event="other",slot="bot_token"} 1`,
		`airlock_agent_calls_total{agent="other"} 11`, // the intruder and the 10 past MaxAgents
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if n := strings.Count(text, "airlock_agent_calls_total{"); n != MaxAgents+1 {
		t.Errorf("%d agent series, want %d (MaxAgents and other)", n, MaxAgents+1)
	}
}
