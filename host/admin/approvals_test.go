package admin_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
)

var approvalID = regexp.MustCompile(`\bap_[0-9a-f]+\b`)

// pendingID checks that res waits for approval and returns the approval's ID from its message.
func pendingID(t *testing.T, res *host.Result) string {
	t.Helper()
	if res.OK {
		t.Fatalf("%s ran without approval", res.Meta.Tool)
	}
	if res.Error.Code != host.CodeApprovalPending || res.Error.Category != abi.Correctable {
		t.Fatalf("%s: error %+v, want a correctable %s", res.Meta.Tool, res.Error, host.CodeApprovalPending)
	}
	id := approvalID.FindString(res.Error.Message)
	if id == "" {
		t.Fatalf("the message %q names no approval ID", res.Error.Message)
	}
	return id
}

// approvalEnv grants Slack with post_message behind a human's approval.
func approvalEnv(t *testing.T, dsn string) *env {
	t.Helper()
	return approvalEnvWith(t, envOptions{dsn: dsn})
}

// approvalEnvWith is approvalEnv with more options (approvals last an hour).
func approvalEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	o.approvalTTL = time.Hour
	e := newEnv(t, o)
	e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
	g := e.slackGrant()
	g.Confirm = []string{"post_message"}
	e.grant(t, "", g)
	return e
}

const (
	argsA  = `{"channel":"C0GENERAL","text":"deploy v42 to production"}`
	argsA2 = `{ "text" : "deploy v42 to production", "channel":"C0GENERAL" }` // A, spelled differently
	argsB  = `{"channel":"C0GENERAL","text":"deploy v43 to production"}`
)

func TestApprovalLifecycle(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			e := approvalEnv(t, b.dsn(t))
			posts := func() int { return e.slackCalls("chat.postMessage") }

			// The first call waits, records the exact arguments, and reaches nothing.
			id := pendingID(t, e.call("slack.post_message", argsA))
			ap, err := e.st.GetApproval(ctx, id)
			if err != nil || ap.Status != store.ApprovalPending || string(ap.Args) != argsA || ap.Agent != "test-agent" {
				t.Fatalf("approval %s = %+v (%v), want pending with the exact arguments", id, ap, err)
			}
			if again := pendingID(t, e.call("slack.post_message", argsA)); again != id {
				t.Errorf("asking again made a second request %s, want the pending %s", again, id)
			}
			if n := posts(); n != 0 {
				t.Fatalf("the upstream received %d posts before approval", n)
			}

			// Approved: the same call runs once (however its JSON is spelled).
			if _, err := e.a.Approve(ctx, id, "alice"); err != nil {
				t.Fatal(err)
			}
			if res := e.call("slack.post_message", argsA2); !res.OK {
				t.Fatalf("the approved call: %+v", res.Error)
			}
			if n := posts(); n != 1 {
				t.Fatalf("upstream posts = %d, want 1", n)
			}
			if ap, _ := e.st.GetApproval(ctx, id); ap.Status != store.ApprovalUsed || ap.DecidedBy != "alice" {
				t.Errorf("approval after use = %+v, want used, decided by alice", ap)
			}
			// A second identical call needs a new approval.
			if id2 := pendingID(t, e.call("slack.post_message", argsA)); id2 == id {
				t.Errorf("the second identical call reused the used approval %s", id)
			}
			if n := posts(); n != 1 {
				t.Fatalf("upstream posts = %d after a second identical call, want 1", n)
			}
			// Approving a used approval again is refused.
			if _, err := e.a.Approve(ctx, id, "alice"); err == nil {
				t.Error("approving a used approval = nil, want an error")
			}
		})
	}
}

func TestApprovalBoundToArgumentsAndSubject(t *testing.T) {
	ctx := context.Background()
	e := approvalEnv(t, "")
	id := pendingID(t, e.call("slack.post_message", argsA))
	if _, err := e.a.Approve(ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	// Changed arguments: refused, with a new pending approval of their own.
	idB := pendingID(t, e.call("slack.post_message", argsB))
	if idB == id {
		t.Fatalf("changed arguments were let through on approval %s", id)
	}
	for _, changed := range []string{
		`{"channel":"C0GENERAL","text":"deploy v42 to production","thread_ts":"1.2"}`,
		`{"channel":"C0RANDOM","text":"deploy v42 to production"}`,
		`{"channel":"C0GENERAL","text":"deploy v42 to production "}`,
	} {
		if got := pendingID(t, e.call("slack.post_message", changed)); got == id {
			t.Errorf("%s ran on the approval of %s", changed, argsA)
		}
	}
	// Another subject (tenant) cannot use it either.
	if got := pendingID(t, e.callAs("tenant-b", "slack.post_message", argsA)); got == id {
		t.Errorf("another subject used approval %s", id)
	}
	// Another tool with the same arguments cannot either: channel_history is not gated, so
	// check at the store level that the approval names its tool.
	if err := e.st.ConsumeApproval(ctx, id, "slack", "channel_history", "default", "x", e.clock.Now()); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ConsumeApproval for another tool = %v, want a conflict", err)
	}
	if n := e.slackCalls("chat.postMessage"); n != 0 {
		t.Fatalf("upstream posts = %d, want 0", n)
	}
	if ap, _ := e.st.GetApproval(ctx, id); ap.Status != store.ApprovalApproved {
		t.Errorf("the approval is %s after refused calls, want still approved", ap.Status)
	}
	// The approved call itself still runs, once.
	if res := e.call("slack.post_message", argsA); !res.OK {
		t.Fatalf("the approved call: %+v", res.Error)
	}
}

// Concurrent identical calls on one approval: exactly one runs.
func TestApprovalRunsOnceUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	e := approvalEnv(t, "")
	id := pendingID(t, e.call("slack.post_message", argsA))
	if _, err := e.a.Approve(ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]*host.Result, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.call("slack.post_message", argsA)
		}()
	}
	wg.Wait()
	ran := 0
	for _, r := range results {
		if r.OK {
			ran++
		} else if r.Error.Code != host.CodeApprovalPending {
			t.Errorf("a concurrent call failed with %+v, want approval_pending", r.Error)
		}
	}
	if ran != 1 || e.slackCalls("chat.postMessage") != 1 {
		t.Errorf("%d calls ran and the upstream got %d posts on one approval, want 1 and 1", ran, e.slackCalls("chat.postMessage"))
	}
}

func TestApprovalExpires(t *testing.T) {
	ctx := context.Background()
	e := approvalEnv(t, "")

	// An approved call not run within the TTL is refused and needs a new approval.
	id := pendingID(t, e.call("slack.post_message", argsA))
	if _, err := e.a.Approve(ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour + time.Second)
	if got := pendingID(t, e.call("slack.post_message", argsA)); got == id {
		t.Errorf("the expired approval %s was used", id)
	}
	if n := e.slackCalls("chat.postMessage"); n != 0 {
		t.Fatalf("upstream posts = %d after an expired approval, want 0", n)
	}

	// A pending request that expired cannot be approved, and the admin is told why.
	idB := pendingID(t, e.call("slack.post_message", argsB))
	e.clock.Advance(2 * time.Hour)
	_, err := e.a.Approve(ctx, idB, "alice")
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("approving an expired request = %v, want an error saying it expired", err)
	}
	if ap, _ := e.st.GetApproval(ctx, idB); ap.Status == store.ApprovalApproved {
		t.Error("the expired request was approved")
	}
	if got := pendingID(t, e.call("slack.post_message", argsB)); got == idB {
		t.Errorf("the expired pending request %s was reused", idB)
	}
}

func TestApprovalDenied(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			e := approvalEnv(t, b.dsn(t))
			id := pendingID(t, e.call("slack.post_message", argsA))
			if _, err := e.a.Deny(ctx, id, "bob", "not during the change freeze"); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				res := e.call("slack.post_message", argsA)
				if res.OK {
					t.Fatal("the denied call ran")
				}
				msg := res.Error.Message
				if !strings.Contains(msg, "denied") || !strings.Contains(msg, "not during the change freeze") || res.Error.Category != abi.Fatal {
					t.Errorf("denied call = %+v, want a fatal error saying an admin denied it and why", res.Error)
				}
			}
			if _, err := e.a.Approve(ctx, id, "alice"); err == nil {
				t.Error("approving a denied request = nil, want an error")
			}
			if n := e.slackCalls("chat.postMessage"); n != 0 {
				t.Errorf("upstream posts = %d, want 0: a denied action reached the upstream", n)
			}
			if ap, _ := e.st.GetApproval(ctx, id); ap.Status != store.ApprovalDenied || ap.DecidedBy != "bob" {
				t.Errorf("approval = %+v, want denied by bob", ap)
			}
			if _, err := e.a.Deny(ctx, "ap_nonexistent", "bob", ""); err == nil {
				t.Error("denying an unknown request = nil, want an error")
			}
		})
	}
}

// Duplicate keys make one JSON text mean different things to different parsers: an approval of
// one reading must not let the other run.
func TestApprovalRefusesAmbiguousArguments(t *testing.T) {
	ctx := context.Background()
	e := approvalEnv(t, "")
	id := pendingID(t, e.call("slack.post_message", argsA))
	if _, err := e.a.Approve(ctx, id, "alice"); err != nil {
		t.Fatal(err)
	}
	dup := `{"channel":"C0OPS","text":"rm -rf","channel":"C0GENERAL","text":"deploy v42 to production"}`
	res := e.call("slack.post_message", dup)
	if res.OK {
		t.Fatalf("arguments with duplicate keys ran on the approval of %s", argsA)
	}
	if ap, _ := e.st.GetApproval(ctx, id); ap.Status != store.ApprovalApproved {
		t.Errorf("the approval is %s, want still approved (unused)", ap.Status)
	}
}
