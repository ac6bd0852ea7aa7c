package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newApproval(c *clock, id string) Approval {
	return Approval{ID: id, Connector: "slack", Tool: "delete_channel", Agent: "bot-1", Subject: "acme",
		ArgsSHA256: "ab12", Args: []byte(`{"channel":"C1"}`), Expires: c.Now().Add(time.Hour)}
}

func TestApprovals(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		_, err := s.GetApproval(ctx, "nope")
		wantErr(t, "GetApproval missing", err, ErrNotFound)
		wantErr(t, "ConsumeApproval missing", s.ConsumeApproval(ctx, "nope", "slack", "delete_channel", "acme", "ab12", c.Now()), ErrNotFound)
		_, err = s.DecideApproval(ctx, "nope", ApprovalApproved, "alice", "")
		wantErr(t, "DecideApproval missing", err, ErrNotFound)

		a := newApproval(c, "ap1")
		must(t, "CreateApproval", s.CreateApproval(ctx, a))
		wantErr(t, "CreateApproval duplicate id", s.CreateApproval(ctx, a), ErrConflict)

		// Nobody creates an approval that is approved already.
		pre := newApproval(c, "ap-pre")
		pre.Status = ApprovalApproved
		if err := s.CreateApproval(ctx, pre); err == nil {
			t.Fatalf("CreateApproval accepted a pre-approved approval")
		}
		noExp := newApproval(c, "ap-noexp")
		noExp.Expires = time.Time{}
		if err := s.CreateApproval(ctx, noExp); err == nil {
			t.Fatalf("CreateApproval accepted an approval that never expires")
		}

		got, err := s.GetApproval(ctx, "ap1")
		must(t, "GetApproval", err)
		if got.Status != ApprovalPending || !got.Created.Equal(c.Now()) || string(got.Args) != `{"channel":"C1"}` || !got.Decided.IsZero() {
			t.Fatalf("GetApproval = %+v", got)
		}
		wantErr(t, "Consume a pending approval", s.ConsumeApproval(ctx, "ap1", "slack", "delete_channel", "acme", "ab12", c.Now()), ErrConflict)
		if _, err := s.DecideApproval(ctx, "ap1", ApprovalUsed, "alice", ""); err == nil {
			t.Fatalf("DecideApproval accepted the decision %q", ApprovalUsed)
		}

		c.Add(time.Minute)
		dec, err := s.DecideApproval(ctx, "ap1", ApprovalApproved, "alice", "looks right")
		must(t, "DecideApproval", err)
		if dec.Status != ApprovalApproved || dec.DecidedBy != "alice" || dec.Reason != "looks right" || !dec.Decided.Equal(c.Now()) {
			t.Fatalf("DecideApproval = %+v", dec)
		}
		_, err = s.DecideApproval(ctx, "ap1", ApprovalDenied, "mallory", "")
		wantErr(t, "DecideApproval twice", err, ErrConflict)

		// The approval is for one exact call.
		for _, bad := range []struct{ connector, tool, subject, hash string }{
			{"github", "delete_channel", "acme", "ab12"},
			{"slack", "archive_channel", "acme", "ab12"},
			{"slack", "delete_channel", "globex", "ab12"},
			{"slack", "delete_channel", "acme", "ab13"},
		} {
			err := s.ConsumeApproval(ctx, "ap1", bad.connector, bad.tool, bad.subject, bad.hash, c.Now())
			wantErr(t, fmt.Sprintf("Consume for another call %v", bad), err, ErrConflict)
		}
		// Past its expiry it does not run.
		wantErr(t, "Consume after expiry", s.ConsumeApproval(ctx, "ap1", "slack", "delete_channel", "acme", "ab12", a.Expires), ErrConflict)

		must(t, "ConsumeApproval", s.ConsumeApproval(ctx, "ap1", "slack", "delete_channel", "acme", "ab12", c.Now()))
		wantErr(t, "ConsumeApproval twice", s.ConsumeApproval(ctx, "ap1", "slack", "delete_channel", "acme", "ab12", c.Now()), ErrConflict)
		got, _ = s.GetApproval(ctx, "ap1")
		if got.Status != ApprovalUsed {
			t.Fatalf("status after consume = %q, want used", got.Status)
		}

		// Denied approvals never run.
		c.Add(time.Minute)
		must(t, "create ap2", s.CreateApproval(ctx, newApproval(c, "ap2")))
		_, err = s.DecideApproval(ctx, "ap2", ApprovalDenied, "alice", "no")
		must(t, "deny", err)
		wantErr(t, "Consume denied", s.ConsumeApproval(ctx, "ap2", "slack", "delete_channel", "acme", "ab12", c.Now()), ErrConflict)

		// A pending approval past its expiry cannot be decided.
		c.Add(time.Minute)
		must(t, "create ap3", s.CreateApproval(ctx, newApproval(c, "ap3")))
		c.Add(2 * time.Hour)
		_, err = s.DecideApproval(ctx, "ap3", ApprovalApproved, "alice", "")
		wantErr(t, "Decide expired", err, ErrConflict)

		list, err := s.ListApprovals(ctx, "")
		must(t, "ListApprovals", err)
		if len(list) != 3 || list[0].ID != "ap3" || list[1].ID != "ap2" || list[2].ID != "ap1" {
			t.Fatalf("ListApprovals not newest first: %v", ids(list))
		}
		pending, _ := s.ListApprovals(ctx, ApprovalPending)
		if len(pending) != 1 || pending[0].ID != "ap3" {
			t.Fatalf("ListApprovals(pending) = %v", ids(pending))
		}

		// Housekeeping marks it expired.
		n, err := s.PurgeExpired(ctx, c.Now())
		must(t, "PurgeExpired", err)
		if n != 1 {
			t.Fatalf("PurgeExpired changed %d records, want 1", n)
		}
		got, _ = s.GetApproval(ctx, "ap3")
		if got.Status != ApprovalExpired {
			t.Fatalf("status after purge = %q, want expired", got.Status)
		}
	})
}

func ids(as []Approval) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

// An approval runs exactly once, however many callers race for it.
func TestConsumeApprovalOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		must(t, "create", s.CreateApproval(ctx, newApproval(c, "ap")))
		_, err := s.DecideApproval(ctx, "ap", ApprovalApproved, "alice", "")
		must(t, "approve", err)
		var (
			wg  sync.WaitGroup
			ran atomic.Int32
		)
		for range 20 {
			wg.Go(func() {
				err := s.ConsumeApproval(ctx, "ap", "slack", "delete_channel", "acme", "ab12", c.Now())
				if err == nil {
					ran.Add(1)
				} else if !isConflict(err) {
					t.Errorf("ConsumeApproval: %v", err)
				}
			})
		}
		wg.Wait()
		if n := ran.Load(); n != 1 {
			t.Fatalf("the approval ran %d times, want 1", n)
		}
	})
}

// TestFindApprovals: only the approvals of the exact call (connector, tool, subject, arguments
// digest) come back, whatever their status, newest first.
func TestFindApprovals(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		mk := func(id string, edit func(*Approval)) {
			a := newApproval(c, id)
			if edit != nil {
				edit(&a)
			}
			must(t, "CreateApproval "+id, s.CreateApproval(ctx, a))
			c.Add(time.Second)
		}
		mk("first", nil)
		mk("other-args", func(a *Approval) { a.ArgsSHA256 = "cd34" })
		mk("other-subject", func(a *Approval) { a.Subject = "globex" })
		mk("other-tool", func(a *Approval) { a.Tool = "post_message" })
		mk("other-connector", func(a *Approval) { a.Connector = "github" })
		mk("second", nil)
		if _, err := s.DecideApproval(ctx, "first", ApprovalDenied, "alice", "no"); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindApprovals(ctx, "slack", "delete_channel", "acme", "ab12")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(got)) != "[second first]" || got[1].Status != ApprovalDenied {
			t.Errorf("FindApprovals = %v (statuses %v), want [second first] with first denied", ids(got), got)
		}
		if got, _ := s.FindApprovals(ctx, "slack", "delete_channel", "acme", "ffff"); len(got) != 0 {
			t.Errorf("FindApprovals for other arguments = %v, want none", ids(got))
		}
	})
}
