package store

import (
	"context"
	"errors"
	"testing"
)

// Profiles are versioned like grants: every change is a new version with who made it, a
// deletion is a version too, and the list holds the current versions of the profiles that exist.
func TestProfiles(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store, c *clock) {
		ctx := context.Background()
		if _, err := s.CurrentProfile(ctx, "support"); !errors.Is(err, ErrNotFound) {
			t.Errorf("CurrentProfile of a profile never set = %v; want ErrNotFound", err)
		}
		if _, err := s.PutProfile(ctx, "support", []byte(`{"members":`), "alice", ""); err == nil {
			t.Error("PutProfile accepted a body that is not JSON")
		}
		r1, err := s.PutProfile(ctx, "support", []byte(`{"members":["a"]}`), "alice", "ticket 1")
		must(t, "PutProfile", err)
		c.Add(1)
		r2, err := s.PutProfile(ctx, "support", []byte(`{"members":["a","b"]}`), "bob", "")
		must(t, "PutProfile", err)
		_, err = s.PutProfile(ctx, "reporting", []byte(`{"members":["r"]}`), "bob", "")
		must(t, "PutProfile", err)
		if r1.Version != 1 || r2.Version != 2 || r2.Admin != "bob" {
			t.Errorf("versions = %d, %d (by %s); want 1, 2 by bob", r1.Version, r2.Version, r2.Admin)
		}
		list, err := s.ListProfiles(ctx)
		must(t, "ListProfiles", err)
		if len(list) != 2 || list[0].Name != "reporting" || list[1].Name != "support" || string(list[1].Body) != `{"members":["a","b"]}` {
			t.Errorf("ListProfiles = %+v", list)
		}
		del, err := s.DeleteProfile(ctx, "support", "carol", "gone")
		must(t, "DeleteProfile", err)
		if del.Version != 3 || !del.Deleted {
			t.Errorf("deletion = %+v; want version 3, deleted", del)
		}
		if _, err := s.DeleteProfile(ctx, "support", "carol", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleting twice = %v; want ErrNotFound", err)
		}
		if _, err := s.DeleteProfile(ctx, "nosuch", "carol", ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleting a profile never set = %v; want ErrNotFound", err)
		}
		list, _ = s.ListProfiles(ctx)
		if len(list) != 1 || list[0].Name != "reporting" {
			t.Errorf("ListProfiles after a deletion = %+v; want reporting only", list)
		}
		hist, err := s.ProfileHistory(ctx, "support")
		must(t, "ProfileHistory", err)
		if len(hist) != 3 || hist[0].Note != "ticket 1" || !hist[2].Deleted || hist[2].Body != nil {
			t.Errorf("ProfileHistory = %+v", hist)
		}
	})
}

// The who-asked labels of a call are searchable columns, and a column rewritten to mislead a
// search (someone with database access hiding a user's calls) breaks verification.
func TestAuditWhoAskedColumns(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store, _ *clock) {
		ctx := context.Background()
		_, err := s.AppendAudit(ctx,
			[]byte(`{"kind":"call","agent":"a","subject":"acme","session":"s1","conversation":"c-42","end_user":"alice","outcome":"ok"}`),
			[]byte(`{"kind":"call","agent":"a","subject":"acme","conversation":"c-43","end_user":"bob","outcome":"ok"}`),
			[]byte(`{"kind":"call","agent":"b","subject":"acme","outcome":"ok"}`))
		must(t, "AppendAudit", err)
		for _, c := range []struct {
			f    AuditFilter
			want int
		}{
			{AuditFilter{Conversation: "c-42"}, 1},
			{AuditFilter{User: "bob"}, 1},
			{AuditFilter{Session: "s1", User: "alice"}, 1},
			{AuditFilter{Session: "s1", User: "bob"}, 0},
			{AuditFilter{Agent: "a"}, 2},
		} {
			recs, err := s.QueryAudit(ctx, c.f)
			must(t, "QueryAudit", err)
			if len(recs) != c.want {
				t.Errorf("QueryAudit(%+v) = %d records; want %d", c.f, len(recs), c.want)
			}
		}
		if n, err := s.VerifyAudit(ctx); err != nil || n != 3 {
			t.Fatalf("VerifyAudit = %d, %v", n, err)
		}
		raw(t, s, `UPDATE audit SET end_user = 'carol' WHERE seq = 1`)
		_, err = s.VerifyAudit(ctx)
		var br *AuditBreak
		if !errors.As(err, &br) || br.Seq != 1 {
			t.Errorf("VerifyAudit after an end_user column was rewritten = %v; want a break at record 1", err)
		}
	})
}
