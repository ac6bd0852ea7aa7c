package telemetry

import (
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/internal/egress"
)

// BenchmarkPerCall is what metrics add to one tool call that makes one outbound request: the
// call's counters and histogram, the agent label, and the request's counter and histogram.
func BenchmarkPerCall(b *testing.B) {
	m := NewMetrics(MetricsConfig{Agent: func(n string) bool { return n == "ci-bot" }})
	hosts := NewHosts([]string{"slack.com", "*.slack.com"})
	rec := egress.Record{Method: "POST", Host: "slack.com", Status: 200, Duration: 80 * time.Microsecond,
		Decision: egress.DecisionAllowed, Attempt: 1}
	l := CallLabels{Connector: "slack", Tool: "post_message", Outcome: "ok", Agent: "ci-bot"}
	b.ReportAllocs()
	for b.Loop() {
		m.Request("slack", hosts.Label(rec.Host), rec)
		m.Call(l, 400*time.Microsecond)
		m.AuditAppend(2*time.Microsecond, false)
	}
}
