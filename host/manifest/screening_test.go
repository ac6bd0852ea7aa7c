package manifest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A grant's screening section parses into Grant.Screening; an unknown action, detector or
// on_error value, a link host with a scheme and a classifier URL that is not http(s) are
// refused at parse, with the field named.
func TestParseGrantScreening(t *testing.T) {
	g, err := ParseGrant("grant.yaml", []byte(`
connector: slack
screening:
  action: require_approval
  detectors: [instruction, invisible, exfiltration, link]
  link_hosts: ["*.slack-edge.com", files.example.com]
  classifier: {url: "http://127.0.0.1:8700/v1/screen", timeout_ms: 800, on_error: closed,
               auth: {header: X-Api-Key, secret: "env:CLASSIFIER_TOKEN"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Screening{Action: ScreenRequireApproval, Detectors: []string{"instruction", "invisible", "exfiltration", "link"},
		LinkHosts: []string{"*.slack-edge.com", "files.example.com"},
		Classifier: &ScreeningClassifier{URL: "http://127.0.0.1:8700/v1/screen", TimeoutMS: 800, OnError: "closed",
			Auth: &ClassifierAuth{Header: "X-Api-Key", Secret: "env:CLASSIFIER_TOKEN"}}}
	if diff := cmp.Diff(want, g.Screening); diff != "" {
		t.Errorf("ParseGrant screening mismatch (-want +got):\n%s", diff)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"screening: {action: quarantine}", "screening.action: must be one of"},
		{"screening: {detectors: [sentiment]}", "screening.detectors[0]"},
		{"screening: {link_hosts: [\"https://evil.example\"]}", "without scheme"},
		{"screening: {classifier: {url: \"file:///etc/passwd\"}}", "screening.classifier.url"},
		{"screening: {classifier: {url: \"http://c\", on_error: maybe}}", "screening.classifier.on_error"},
		{"screening: {classifier: {timeout_ms: 100}}", "url"},
		{"screening: {actions: block}", "actions"},
		{"screening: {classifier: {url: \"http://c\", auth: {header: X-Key}}}", "secret"},
		{"screening: {classifier: {url: \"http://c\", auth: {header: \"Bad Header\", secret: \"env:T\"}}}", "header"},
	} {
		_, err := ParseGrant("grant.yaml", []byte("connector: slack\n"+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseGrant(%s) = %v, want an error naming %s", tc.yaml, err, tc.want)
		}
	}
}
