// Package deploy holds the files a platform team applies to run airlock as a service, and the
// tests that check them with the tools they are made for:
//
//   - helm/airlock, the Helm chart: it renders with `helm lint --strict` / `helm template`, and
//     its manifests decode strictly into the Kubernetes API types (an unknown or misspelt field
//     fails);
//   - compose.yaml and nginx.conf: three replicas behind a proxy, checked against the Compose
//     specification's schema;
//   - grafana/airlock.json, the dashboard, and prometheus/alerts.yaml, the alert rules, checked
//     with promtool (`promtool check rules`, and `promtool test rules` on
//     prometheus/alerts_test.yaml, which drives each alert's condition).
//
// None of them holds a secret (a canary is checked for). It is a module of its own so that
// airlock itself does not depend on Kubernetes: run its tests with `make test-deploy`.
// host/prometheus_test.go scrapes a running host with a real Prometheus server and evaluates
// these rules and the dashboard's queries against what it scraped.
package deploy
