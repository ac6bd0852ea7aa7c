// Package deploy holds deployment files — the Grafana dashboard (grafana/airlock.json) and the
// Prometheus alert rules (prometheus/alerts.yaml, with their unit tests in
// prometheus/alerts_test.yaml) — and the tests that check them with Prometheus' own tools:
//
//	promtool check rules deploy/prometheus/alerts.yaml
//	promtool test rules deploy/prometheus/alerts_test.yaml
//
// It has no code; host/prometheus_test.go scrapes a running host with a real Prometheus server
// and evaluates these rules and the dashboard's queries against what it scraped.
package deploy
