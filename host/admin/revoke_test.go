package admin_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
)

// Revocation under load: 8 callers hammer a tool; calls in flight when Revoke runs finish;
// no call that starts after Revoke returned is admitted; every call has its audit record.
func TestRevokeUnderLoad(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, envOptions{dsn: b.dsn(t)})
			e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
			e.grant(t, "", e.slackGrant())

			const callers = 8
			var (
				revoked     atomic.Bool
				calls, oks  atomic.Int64
				warm        = make(chan struct{})
				warmOnce    sync.Once
				wg          sync.WaitGroup
				postRevoke  [callers]int
				admittedAft atomic.Int64
			)
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for postRevoke[i] < 5 {
						after := revoked.Load() // read before the call starts
						res := e.call("slack.list_channels", `{"limit":3}`)
						calls.Add(1)
						switch {
						case res.OK:
							oks.Add(1)
							if after {
								admittedAft.Add(1)
							}
						case res.Error.Code == abi.CodeUnknownTool || res.Error.Code == abi.CodeNotGranted:
						default:
							t.Errorf("a call failed with %+v, want it to run or be refused as not granted", res.Error)
						}
						if after {
							postRevoke[i]++
						}
						if calls.Load() >= 40 {
							warmOnce.Do(func() { close(warm) })
						}
					}
				}()
			}
			<-warm
			// Hold the next request of every caller at the upstream, so 8 calls are in flight.
			arrived := e.hold.Hold(callers)
			for range callers {
				<-arrived
			}
			if err := e.a.Revoke(ctx, "slack", nil, "alice", "incident 42"); err != nil {
				t.Fatal(err)
			}
			revoked.Store(true)
			// New calls are refused at once, while the old ones are still in flight.
			for range 3 {
				res := e.call("slack.list_channels", `{"limit":3}`)
				calls.Add(1)
				if res.OK || res.Error.Code != abi.CodeUnknownTool && res.Error.Code != abi.CodeNotGranted {
					t.Errorf("a call after Revoke returned = %+v, want refused", res.Error)
				}
			}
			if tools := e.h.Tools(); len(tools) != 0 {
				t.Errorf("Tools() after revoke = %v, want none", tools)
			}
			e.hold.Release()
			wg.Wait()

			if n := admittedAft.Load(); n != 0 {
				t.Errorf("%d calls that started after Revoke returned were admitted", n)
			}
			// Each successful call made exactly one upstream request, and every upstream request
			// (the 8 in flight included) belongs to a call that succeeded: none was cut short.
			if up := int64(e.slackCalls("conversations.list")); up != oks.Load() {
				t.Errorf("upstream served %d requests but %d calls succeeded: in-flight calls were cut short", up, oks.Load())
			}
			if oks.Load() < 40 {
				t.Errorf("only %d calls succeeded before the revoke", oks.Load())
			}

			recs := e.auditRecords(t, store.AuditFilter{Kind: audit.KindCall})
			if int64(len(recs)) != calls.Load() {
				t.Errorf("audit has %d call records, %d calls were made: records were lost", len(recs), calls.Load())
			}
			reqs := e.auditRecords(t, store.AuditFilter{Kind: audit.KindRequest})
			if int64(len(reqs)) != oks.Load() {
				t.Errorf("audit has %d request records for %d upstream requests", len(reqs), oks.Load())
			}
			if _, err := e.st.VerifyAudit(ctx); err != nil {
				t.Errorf("VerifyAudit: %v", err)
			}
			cur, err := e.st.CurrentGrant(ctx, "slack")
			if err != nil || !cur.Revoked || cur.Admin != "alice" {
				t.Errorf("current grant = %+v (%v), want revoked by alice", cur, err)
			}
		})
	}
}

// Revoking some tools narrows the served set at once; revoking what is not granted says so.
func TestRevokeSomeTools(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	e.grant(t, "", e.slackGrant())
	if err := e.a.Revoke(ctx, "slack", []string{"post_message", "channel_history"}, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if got := e.toolNames(); !slices.Equal(got, []string{"slack.list_channels"}) {
		t.Errorf("Tools() = %v, want only slack.list_channels", got)
	}
	wantRefused(t, e.call("slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`), abi.CodeNotGranted, "not granted")
	if err := e.a.Revoke(ctx, "slack", []string{"no_such_tool"}, "alice", ""); err == nil {
		t.Error("Revoke(no_such_tool) = nil, want an error")
	}
	if err := e.a.Revoke(ctx, "github", nil, "alice", ""); err == nil {
		t.Error("Revoke(github), never granted = nil, want an error")
	}
	if err := e.a.Revoke(ctx, "slack", nil, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Revoke(ctx, "slack", nil, "alice", ""); err == nil {
		t.Error("a second full Revoke = nil, want an error saying there is nothing to revoke")
	}
}

// When the narrowed grant cannot be applied (the stored grant is unreadable), the host must not
// go on serving the wider grant it had: it stops serving the connector.
func TestRevokeFailsClosed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	e.grant(t, "", e.slackGrant())
	// Valid JSON that is not a grant, as a broken writer or a hand edit could leave it.
	if _, err := e.st.PutGrant(ctx, "slack", []byte(`{"tools": 5}`), "mallory", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Sync(ctx); err == nil {
		t.Fatal("Sync = nil although the current grant could not be applied, want an error")
	}
	if res := e.call("slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`); res.OK {
		t.Fatal("the connector still runs under the grant the store replaced")
	}
	if got := e.toolNames(); len(got) != 0 {
		t.Errorf("Tools() = %v, want none while the current grant cannot be applied", got)
	}
	// A readable grant recorded afterwards is served.
	g := e.slackGrant()
	g.Tools = []string{"list_channels"}
	e.grant(t, "", g)
	if got := e.toolNames(); !slices.Equal(got, []string{"slack.list_channels"}) {
		t.Errorf("Tools() after recovery = %v, want the new grant", got)
	}
}

// A secret that no longer resolves does not stop a revoke, nor the connector's other decisions:
// the narrowed grant applies, and the remaining tools say what an admin must do.
func TestRevokeWithUnresolvableSecret(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	e.grant(t, "", e.slackGrant())
	e.mu.Lock()
	delete(e.vals, "SLACK_BOT_TOKEN")
	e.mu.Unlock()
	if err := e.a.Revoke(ctx, "slack", []string{"post_message"}, "alice", ""); err != nil {
		t.Fatalf("Revoke = %v, want the narrowed grant recorded and applied", err)
	}
	wantRefused(t, e.call("slack.post_message", `{"channel":"C0GENERAL","text":"hi"}`), abi.CodeNotGranted)
	wantRefused(t, e.call("slack.list_channels", `{}`), abi.CodeCredential, "SLACK_BOT_TOKEN", "admin")
	// Once the secret is back, the next call runs: no reload needed.
	e.setSecret("SLACK_BOT_TOKEN", canary)
	if res := e.call("slack.list_channels", `{}`); !res.OK {
		t.Fatalf("list_channels after the secret came back: %+v", res.Error)
	}
}
