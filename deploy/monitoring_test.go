package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestAlertRules: promtool accepts the rules, and each rule's unit test (which drives its
// condition, and a case that must not fire) passes.
func TestAlertRules(t *testing.T) {
	promtool := debianTool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "prometheus/alerts.yaml"},
		{"test", "rules", "prometheus/alerts_test.yaml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestEveryAlertIsUnitTested: an alert without a promtool unit test is an alert nobody saw fire.
func TestEveryAlertIsUnitTested(t *testing.T) {
	rules, _ := os.ReadFile("prometheus/alerts.yaml")
	tests, _ := os.ReadFile("prometheus/alerts_test.yaml")
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) == 0 {
		t.Fatal("no alerts in prometheus/alerts.yaml")
	}
	for _, a := range alerts {
		if !regexp.MustCompile(`alertname: ` + a[1] + `\s*\n\s*exp_alerts:\s*\n\s*- exp_labels`).Match(tests) {
			t.Errorf("alert %s has no unit test in prometheus/alerts_test.yaml that expects it to fire", a[1])
		}
	}
}

// TestDashboard: the dashboard is JSON Grafana can import, and every panel queries airlock's
// metrics (the queries themselves run against a real Prometheus in host/prometheus_test.go).
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/airlock.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/airlock.json: %v", err)
	}
	if d.UID == "" || len(d.Panels) < 10 {
		t.Fatalf("dashboard uid %q with %d panels; want a uid and a panel per family group", d.UID, len(d.Panels))
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, "airlock_") {
				t.Errorf("panel %q queries %q, not an airlock metric", p.Title, q.Expr)
			}
		}
	}
}

// debianTool returns the path of a command from a Debian package, skipping the test when it is
// not installed, or failing it under AIRLOCK_TEST_REQUIRE_SERVICES=1 (CI installs it: .ci/run).
// (This module cannot import airlock's internal/testenv, which does the same for the host.)
func debianTool(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := name + " is not installed: run `apt-get install " + pkg + "` to run this test"
	if os.Getenv("AIRLOCK_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
