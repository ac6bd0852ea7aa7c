package main

import (
	"strings"
	"testing"
)

// An admin reviewing the Slack connector sees what history_tier's values bring, and a grant
// with a value the manifest does not list is refused with the allowed ones.
func TestGrantConfigValues(t *testing.T) {
	w := newGrantWorld(t)
	w.install(t)
	out, _ := w.must(t, exitOK, "grant", "slack", "--set", "history_tier=non_marketplace", "--dry-run")
	want := "history_tier (default standard): one of non_marketplace → slack.com/api/conversations.history at most 0.0166/s, burst 1; standard"
	if !strings.Contains(out, want) {
		t.Errorf("grant --dry-run lacks %q:\n%s", want, out)
	}
	code, _, errOut := w.run(t, "grant", "slack", "--tools", "*", "--scopes", "*", "--hosts", "*",
		"--credential", "bot_token=store:slack_bot", "--set", "history_tier=non-marketplace")
	if want := `"non-marketplace" is not a value manifest slack allows for it; set one of: non_marketplace, standard`; code == exitOK || !strings.Contains(errOut, want) {
		t.Errorf("grant with history_tier=non-marketplace = %d, stderr %q; want a refusal containing %q", code, errOut, want)
	}
}
