package grant

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/host/manifest"
)

// Without a screening section the policy labels results with the default detectors and allows
// images and links to the granted hosts; the grant's link hosts come after them.
func TestScreeningDefaults(t *testing.T) {
	m := parse(t)
	g := &manifest.Grant{Connector: "slack", Hosts: []string{"slack.com"}}
	p, err := Effective(m, g)
	if err != nil {
		t.Fatal(err)
	}
	want := manifest.Screening{Action: manifest.ScreenLabel, Detectors: []string{"instruction", "invisible", "exfiltration"}, LinkHosts: []string{"slack.com"}}
	if diff := cmp.Diff(want, p.Screening); diff != "" {
		t.Errorf("default screening mismatch (-want +got):\n%s", diff)
	}
	g.Screening = &manifest.Screening{Action: manifest.ScreenBlock, Detectors: []string{"link"}, LinkHosts: []string{"*.example.com"}}
	if p, err = Effective(m, g); err != nil {
		t.Fatal(err)
	}
	want = manifest.Screening{Action: manifest.ScreenBlock, Detectors: []string{"link"}, LinkHosts: []string{"slack.com", "*.example.com"}}
	if diff := cmp.Diff(want, p.Screening); diff != "" {
		t.Errorf("screening mismatch (-want +got):\n%s", diff)
	}
}

// A grant built in code (not parsed, so not checked by the schema) with a bad screening section
// is refused with every problem named.
func TestScreeningRefused(t *testing.T) {
	m := parse(t)
	g := &manifest.Grant{Connector: "slack", Screening: &manifest.Screening{Action: "quarantine", Detectors: []string{"sentiment"},
		Classifier: &manifest.ScreeningClassifier{URL: "ftp://classifier.internal", OnError: "maybe"}}}
	_, err := Effective(m, g)
	if err == nil {
		t.Fatal("Effective accepted a bad screening section")
	}
	for _, want := range []string{`screening.action: "quarantine"`, `screening.detectors: "sentiment"`, "screening.classifier.url", "screening.classifier.on_error"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// Merging the configuration's and the store's screening keeps the most restrictive: the
// stricter action (whichever side has it), every detector either runs, the link hosts both
// allow, the store's classifier failing closed when the file says closed.
func TestMergeScreening(t *testing.T) {
	m := parse(t)
	base := func(s *manifest.Screening) *manifest.Grant {
		return &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"}, Screening: s}
	}
	for _, tc := range []struct {
		name        string
		file, store *manifest.Screening
		want        *manifest.Screening
		from        string
	}{
		{"store stricter", &manifest.Screening{Action: "redact"}, &manifest.Screening{Action: "block"}, &manifest.Screening{Action: "block"}, FromBoth},
		{"file stricter", &manifest.Screening{Action: "require_approval"}, &manifest.Screening{Action: "label"}, &manifest.Screening{Action: "require_approval"}, FromBoth},
		{"default loses", &manifest.Screening{}, &manifest.Screening{Action: "redact"}, &manifest.Screening{Action: "redact"}, FromBoth},
		{"typo never loosens", &manifest.Screening{Action: "blokc"}, &manifest.Screening{Action: "label"}, &manifest.Screening{Action: "blokc"}, FromBoth},
		{"one side", nil, &manifest.Screening{Action: "block"}, &manifest.Screening{Action: "block"}, FromStore},
		{"detectors union with defaults", &manifest.Screening{Detectors: []string{"link"}}, &manifest.Screening{},
			&manifest.Screening{Detectors: []string{"exfiltration", "instruction", "invisible", "link"}}, FromBoth},
		{"link hosts both allow", &manifest.Screening{LinkHosts: []string{"a.example", "b.example"}}, &manifest.Screening{LinkHosts: []string{"b.example", "c.example"}},
			&manifest.Screening{LinkHosts: []string{"b.example"}}, FromBoth},
		{"classifier closed wins", &manifest.Screening{Classifier: &manifest.ScreeningClassifier{URL: "http://a", OnError: "closed"}},
			&manifest.Screening{Classifier: &manifest.ScreeningClassifier{URL: "http://b", TimeoutMS: 500}},
			&manifest.Screening{Classifier: &manifest.ScreeningClassifier{URL: "http://b", TimeoutMS: 500, OnError: "closed"}}, FromBoth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var file *manifest.Grant
			if tc.file != nil {
				file = base(tc.file)
			} else {
				file = base(nil)
			}
			got, from := Merge(m, file, base(tc.store))
			if diff := cmp.Diff(tc.want, got.Screening); diff != "" {
				t.Errorf("merged screening mismatch (-want +got):\n%s", diff)
			}
			if from["screening"] != tc.from {
				t.Errorf("screening from %q, want %q", from["screening"], tc.from)
			}
		})
	}
}
