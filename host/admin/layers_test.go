package admin_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
)

// fileGrant is the grant an operator wrote in airlock.yaml for the Slack connector: everything,
// no confirm rule.
func (e *env) fileGrant() *manifest.Grant {
	g := e.slackGrant()
	g.Hosts = []string{"*"}
	return g
}

// configure loads the Slack connector as airlock.yaml would (the host's configuration layer) and
// tells the Admin about it, as the CLI and the server do.
func (e *env) configure(t *testing.T, g *manifest.Grant) {
	t.Helper()
	if err := e.h.LoadModule(context.Background(), e.slackM, e.slackW, g); err != nil {
		t.Fatal(err)
	}
	e.a.SetConfigured(func(name string) (*manifest.Manifest, *manifest.Grant, bool) {
		if name != "slack" {
			return nil, nil, false
		}
		return e.slackM, g, true
	})
}

// A connector in airlock.yaml that is also installed and granted in the store: the most
// restrictive decision wins (the store's confirm rule and narrower tools hold although the file
// grants everything), and a revoke refuses the very next call, however the two were loaded.
func TestRevokeWinsOverConfigurationFile(t *testing.T) {
	ctx := context.Background()
	for _, order := range []string{"store first", "file first"} {
		t.Run(order, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
			stored := e.slackGrant()
			stored.Tools = []string{"list_channels", "post_message"}
			stored.Confirm = []string{"post_message"}
			if order == "file first" {
				e.configure(t, e.fileGrant())
				e.grant(t, "", stored)
			} else {
				e.grant(t, "", stored)
				e.configure(t, e.fileGrant()) // what `airlock serve` does after Sync
			}
			if got := e.toolNames(); !slices.Equal(got, []string{"slack.list_channels", "slack.post_message"}) {
				t.Errorf("Tools() = %v, want only what both grant", got)
			}
			res := e.call("slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`)
			if res.OK || e.slackCalls("chat.postMessage") != 0 {
				t.Fatalf("post_message ran without the approval the store's confirm rule asks for: %+v", res.Error)
			}
			if res := e.call("slack.list_channels", `{}`); !res.OK {
				t.Fatalf("list_channels: %+v", res.Error)
			}

			if err := e.a.Revoke(ctx, "slack", nil, "alice", "INC-9"); err != nil {
				t.Fatal(err)
			}
			wantRefused(t, e.call("slack.list_channels", `{}`), abi.CodeNotGranted, "revoked")
			// Reloading the configuration file (SIGHUP, an edit) does not bring it back.
			e.configure(t, e.fileGrant())
			if err := e.a.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			wantRefused(t, e.call("slack.list_channels", `{}`), abi.CodeNotGranted, "revoked")
			if got := e.toolNames(); len(got) != 0 {
				t.Errorf("Tools() after revoke = %v, want none", got)
			}
		})
	}
}

// A connector only airlock.yaml grants can be revoked (all of it, or some tools): the revoke is
// recorded in the store and overrides the file.
func TestRevokeConfiguredOnlyConnector(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.configure(t, e.fileGrant())
	if err := e.a.Revoke(ctx, "slack", []string{"post_message"}, "alice", ""); err != nil {
		t.Fatalf("Revoke of some tools of a configured connector = %v", err)
	}
	wantRefused(t, e.call("slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`), abi.CodeNotGranted)
	if res := e.call("slack.list_channels", `{}`); !res.OK {
		t.Fatalf("list_channels after revoking post_message: %+v (the file's credential and upstream must still apply)", res.Error)
	}
	if err := e.a.Revoke(ctx, "slack", nil, "alice", ""); err != nil {
		t.Fatalf("Revoke of a configured connector = %v, want it recorded", err)
	}
	wantRefused(t, e.call("slack.list_channels", `{}`), abi.CodeNotGranted, "revoked")
	cur, err := e.st.CurrentGrant(ctx, "slack")
	if err != nil || !cur.Revoked {
		t.Errorf("CurrentGrant = %+v, %v, want a revocation in the store", cur, err)
	}
	if err := e.a.Revoke(ctx, "github", nil, "alice", ""); err == nil || !strings.Contains(err.Error(), "no grant") {
		t.Errorf("Revoke(github), neither configured nor granted = %v, want 'no grant to revoke'", err)
	}
}

// One connector's credential reference does not resolve: the other connector keeps serving,
// the broken one's tools say what an admin must do, and a server syncing every second logs the
// problem once, not at every sync or call.
func TestBadReferenceIsIsolated(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	e.install(t, "chat", "1.0.0", store.InstalledActive, e.slackYAML(t, func(s string) string {
		return strings.Replace(s, "name: slack\n", "name: chat\n", 1)
	}), e.slackW)
	e.grant(t, "", e.slackGrant())
	broken := e.slackGrant()
	broken.Connector = "chat"
	broken.Credentials = manifest.SecretRefs(map[string]string{"bot_token": "env:CHAT_TOKEN_NOT_SET"})
	e.grant(t, "", broken) // an env reference: the admin's shell cannot tell, so it is accepted
	for range 3 {
		if err := e.a.Sync(ctx); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if res := e.call("slack.list_channels", `{}`); !res.OK {
			t.Fatalf("the healthy connector: %+v", res.Error)
		}
		wantRefused(t, e.call("chat.list_channels", `{}`), abi.CodeCredential, "CHAT_TOKEN_NOT_SET", "admin must")
	}
	if n := strings.Count(e.rec.Logs(), "a credential is unavailable"); n != 1 {
		t.Errorf("the unavailable credential was logged %d times, want once:\n%s", n, e.rec.Logs())
	}
}
