package admin_test

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/store"
)

// slackV2 is the Slack manifest at version 2.0.0, asking for one more host (which no tool uses
// yet: with two hosts, each tool names the one it reaches).
func slackV2(s string) string {
	s = strings.Replace(s, "version: 1.0.0", "version: 2.0.0", 1)
	head, tools, _ := strings.Cut(s, "\ntools:\n")
	tools = regexp.MustCompile(`(?m)^  - name: .*\n`).ReplaceAllString(tools, "$0    uses: {network: [slack.com]}\n")
	return strings.Replace(head, "network:\n", `network:
  - scheme: https
    host: files.slack.com
    path_prefix: /upload/
    methods: [POST]
`, 1) + "\ntools:\n" + tools
}

// A v2 asking for a new host stays pending while v1 serves; the admin sees exactly the new
// host; granting v2 switches every new call to it at once, with no call failing in between.
func TestUpgradeStaysPendingUntilApproved(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, envOptions{dsn: b.dsn(t)})
			e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
			e.grant(t, "", e.slackGrant())
			version := func() string {
				t.Helper()
				res := e.call("slack.list_channels", `{"limit":2}`)
				if !res.OK {
					t.Fatalf("list_channels: %+v", res.Error)
				}
				return res.Meta.Version
			}
			if v := version(); v != "1.0.0" {
				t.Fatalf("serving version %s, want 1.0.0", v)
			}

			e.install(t, "slack", "2.0.0", store.InstalledPending, e.slackYAML(t, slackV2), e.slackW)
			if err := e.a.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if v := version(); v != "1.0.0" {
				t.Errorf("with v2 pending, serving version %s, want 1.0.0", v)
			}
			act, err := e.st.ActiveInstalled(ctx, "slack")
			if err != nil || act.Version != "1.0.0" {
				t.Errorf("active version = %q (%v), want 1.0.0", act.Version, err)
			}

			asks, diff, err := e.a.Review(ctx, "slack", "")
			if err != nil {
				t.Fatal(err)
			}
			if asks.Version != "2.0.0" {
				t.Errorf("Review shows version %s, want the pending 2.0.0", asks.Version)
			}
			if u := asks.Tools[0].Uses; u != "database: none; network: slack.com; credentials: bot_token" {
				t.Errorf("Review shows tool %s may use %q, want slack.com and bot_token only", asks.Tools[0].Name, u)
			}
			if len(diff) != 1 || diff[0].Kind != manifest.ChangeHost || !strings.Contains(diff[0].Detail, "files.slack.com") {
				t.Fatalf("Review diff = %v, want exactly one change: the new host files.slack.com", diff)
			}

			// Callers run throughout the switch: each sees v1 then v2, never an error and never
			// v1 again once it has seen v2.
			var (
				stop   atomic.Bool
				wg     sync.WaitGroup
				failed atomic.Int64
			)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					seen2 := false
					for !stop.Load() {
						res := e.call("slack.list_channels", `{"limit":2}`)
						switch {
						case !res.OK:
							t.Errorf("a call failed during the switch: %+v", res.Error)
							failed.Add(1)
							return
						case res.Meta.Version == "2.0.0":
							seen2 = true
						case seen2:
							t.Errorf("a call ran on v1 after one ran on v2")
							failed.Add(1)
							return
						}
					}
				}()
			}
			e.grant(t, "2.0.0", e.slackGrant())
			// Every call that starts after the grant returned runs v2.
			for range 5 {
				if v := version(); v != "2.0.0" {
					t.Errorf("after granting v2, serving version %s", v)
				}
			}
			stop.Store(true)
			wg.Wait()

			ins, err := e.st.ListInstalled(ctx)
			if err != nil {
				t.Fatal(err)
			}
			status := map[string]string{}
			for _, in := range ins {
				status[in.Version] = in.Status
			}
			if status["1.0.0"] != store.InstalledRetired || status["2.0.0"] != store.InstalledActive {
				t.Errorf("installed statuses = %v, want 1.0.0 retired and 2.0.0 active", status)
			}
			if _, diff, _ := e.a.Review(ctx, "slack", ""); len(diff) != 0 {
				t.Errorf("after approval, Review still shows changes: %v", diff)
			}
		})
	}
}

// A grant that names no version approves the pending upgrade (GrantRequest.Version's
// documented behaviour); pinned here so that a change to it is deliberate.
func TestGrantWithoutVersionKeepsUpgradePending(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	e.grant(t, "", e.slackGrant())
	e.install(t, "slack", "2.0.0", store.InstalledPending, e.slackYAML(t, slackV2), e.slackW)
	e.grant(t, "", e.slackGrant()) // re-granting without naming v2 must not approve it
	if res := e.call("slack.list_channels", `{}`); !res.OK || res.Meta.Version != "1.0.0" {
		t.Errorf("after a grant without version: %+v version %s, want 1.0.0: approving an upgrade takes naming it", res.Error, res.Meta.Version)
	}
	e.grant(t, "2.0.0", e.slackGrant())
	if res := e.call("slack.list_channels", `{}`); !res.OK || res.Meta.Version != "2.0.0" {
		t.Errorf("after granting 2.0.0: %+v version %s", res.Error, res.Meta.Version)
	}
}

// A grant for v1 explicitly, while v2 is pending, keeps v1 serving and v2 pending.
func TestGrantActiveVersionKeepsUpgradePending(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	e.grant(t, "", e.slackGrant())
	e.install(t, "slack", "2.0.0", store.InstalledPending, e.slackYAML(t, slackV2), e.slackW)
	g := e.slackGrant()
	g.Tools = []string{"list_channels"}
	e.grant(t, "1.0.0", g)
	if res := e.call("slack.list_channels", `{}`); !res.OK || res.Meta.Version != "1.0.0" {
		t.Errorf("list_channels: %+v version %s, want v1", res.Error, res.Meta.Version)
	}
	if in, err := e.st.GetInstalled(ctx, "slack", "2.0.0"); err != nil || in.Status != store.InstalledPending {
		t.Errorf("v2 = %q (%v), want pending", in.Status, err)
	}
}
