package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/store"
)

// An agent cannot make its arguments read otherwise on the approver's screen: a right-to-left
// override and zero-width characters show as \u escapes in 'airlock approvals', and arguments
// cut short to fit the table say so and where to read them whole.
func TestApprovalsShowArgumentsAsTheToolGetsThem(t *testing.T) {
	hermetic(t)
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "state.db")
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for id, args := range map[string]string{
		"ap_1": "{\"channel\":\"C0GENERAL\",\"text\":\"all good \u202eBD eht pord\u202c\"}",
		"ap_2": "{\"channel\":\"C0\u200bGENERAL\",\"text\":\"" + strings.Repeat("harmless words ", 8) + "and then rm -rf /\"}",
	} {
		if err := st.CreateApproval(context.Background(), store.Approval{ID: id, Connector: "slack", Tool: "post_message",
			Agent: "bot", Subject: "acme", ArgsSHA256: strings.Repeat("0", 64), Args: []byte(args), Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := airlock(t, "approvals", "--state-dir", filepath.Join(dir, "state"), "--state", dsn)
	if code != exitOK {
		t.Fatalf("airlock approvals = %d: %s", code, errOut)
	}
	if strings.ContainsAny(out, "\u202e\u202c\u200b") {
		t.Errorf("an invisible or bidi character reached the screen as itself:\n%q", out)
	}
	if !strings.Contains(out, `\u202eBD eht pord\u202c`) || !strings.Contains(out, `C0\u200bGENERAL`) {
		t.Errorf("the escapes are missing:\n%s", out)
	}
	if !strings.Contains(out, "characters)") || !strings.Contains(out, "airlock approvals --json") {
		t.Errorf("the cut arguments do not say so:\n%s", out)
	}
}
