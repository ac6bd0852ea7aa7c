package grant

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/host/manifest"
)

// The file grants everything; the store narrows tools, adds a confirm rule and changes the
// credential; each side tightens a different limit. The result is what both allow, with both
// confirm rules, the store's values and the tighter limits — and says where each part is from.
func TestMerge(t *testing.T) {
	m := parse(t)
	file := &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"slack.com", "hooks.example.com"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:BOT", "user_token": "env:USER"}),
		Upstreams:   map[string]string{"https://slack.com": "http://127.0.0.1:9"},
		Confirm:     []string{"ping"}, Limits: manifest.Limits{TimeoutMS: 5000},
		Quotas: &manifest.Quotas{PerAgent: &manifest.Quota{Calls: 10, PeriodS: 60}}}
	store := &manifest.Grant{Connector: "slack", Tools: []string{"list_channels", "post_message", "ping"}, Scopes: []string{"channels:read"},
		Hosts: []string{"*"}, Credentials: manifest.SecretRefs(map[string]string{"bot_token": "store:bot"}),
		Confirm: []string{"post_message"}, Limits: manifest.Limits{MaxRequests: 3, TimeoutMS: 9000},
		Quotas: &manifest.Quotas{PerAgent: &manifest.Quota{Calls: 100, PeriodS: 60}}}
	got, from := Merge(m, file, store)
	want := &manifest.Grant{Connector: "slack", Tools: []string{"list_channels", "ping", "post_message"}, Scopes: []string{"channels:read"},
		Hosts:       []string{"hooks.example.com", "slack.com"},
		Credentials: manifest.SecretRefs(map[string]string{"bot_token": "store:bot", "user_token": "env:USER"}),
		Upstreams:   map[string]string{"https://slack.com": "http://127.0.0.1:9"},
		Confirm:     []string{"ping", "post_message"}, Limits: manifest.Limits{TimeoutMS: 5000, MaxRequests: 3},
		Quotas: &manifest.Quotas{PerAgent: &manifest.Quota{Calls: 10, PeriodS: 60}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Merge mismatch (-want +got):\n%s", diff)
	}
	wantFrom := map[string]string{"tools": FromBoth, "scopes": FromBoth, "hosts": FromBoth, "confirm": FromEach,
		"credentials.bot_token": FromStore, "credentials.user_token": FromFile, "upstreams.https://slack.com": FromFile,
		"limits": FromBoth, "quotas": FromBoth}
	if diff := cmp.Diff(wantFrom, from); diff != "" {
		t.Errorf("Merge sources mismatch (-want +got):\n%s", diff)
	}
	p, err := Effective(m, got)
	if err != nil {
		t.Fatal(err)
	}
	if !p.NeedsConfirmation("post_message") || !p.NeedsConfirmation("ping") || p.Tools["post_message"] != nil {
		t.Errorf("policy of the merge: confirm %v, tools %v", p.Confirm, names(p.Tools))
	}

	// A store grant that names nothing grants nothing, whatever the file says.
	if got, _ := Merge(m, file, &manifest.Grant{Connector: "slack"}); len(got.Tools) != 0 || len(got.Hosts) != 0 {
		t.Errorf("Merge with an empty store grant = %+v, want no tools or hosts", got)
	}
	// One source alone is returned as is.
	if got, from := Merge(m, file, nil); got != file || from["tools"] != FromFile {
		t.Errorf("Merge(file, nil) = %+v, %v", got, from)
	}
}
