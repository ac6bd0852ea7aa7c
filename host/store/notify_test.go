package store

import (
	"context"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// Another process's decision reaches a listener as soon as it is committed, and a lost
// connection is followed, once back, by a resync (changes made meanwhile were not delivered).
func TestListenDeliversChanges(t *testing.T) {
	dsn := testenv.Postgres(t)
	listener, writer := openT(t, dsn, nil), openT(t, dsn, nil)
	if !listener.Notifies() {
		t.Fatal("a PostgreSQL store does not notify")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan Change, 16)
	errs := make(chan error, 16)
	done := make(chan struct{})
	go func() {
		listener.Listen(ctx, func(c Change) { changes <- c }, func(err error) { errs <- err })
		close(done)
	}()
	next := func(what string) Change {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("no change delivered after %s", what)
			return Change{}
		}
	}
	// Listen has no "ready" signal: write until the first change arrives.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := writer.RevokeGrant(context.Background(), "slack", "alice", "")
		must(t, "revoking", err)
		select {
		case c := <-changes:
			if c != (Change{Kind: ChangeGrant, Key: "slack"}) {
				t.Fatalf("change = %+v; want grant slack", c)
			}
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no change delivered for a revoke")
			}
			continue
		}
		break
	}
	for len(changes) > 0 {
		<-changes
	}
	must(t, "adding a token", writer.AddToken(context.Background(), Token{Kind: TokenAgent, Name: "bot", SHA256: "00"}))
	must(t, "revoking a token", writer.RevokeToken(context.Background(), TokenAgent, "bot"))
	if c := next("a token revocation"); c != (Change{Kind: ChangeToken, Key: "agent/bot"}) {
		t.Errorf("change = %+v; want token agent/bot", c)
	}
	_, err := writer.PutProfile(context.Background(), "support", []byte(`{"members":["bot"]}`), "alice", "")
	must(t, "setting a profile", err)
	if c := next("a profile change"); c != (Change{Kind: ChangeProfile, Key: "support"}) {
		t.Errorf("change = %+v; want profile support", c)
	}

	// The listening connection is cut (a failover, a proxy timeout): the listener says why,
	// reconnects, and asks for a resync.
	if _, err := writer.exec(context.Background(),
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-errs:
	case <-time.After(10 * time.Second):
		t.Fatal("a lost connection was not reported")
	}
	if c := next("a reconnection"); c.Kind != ChangeResync {
		t.Errorf("first change after a reconnection = %+v; want a resync", c)
	}
	cancel()
	<-done
}
