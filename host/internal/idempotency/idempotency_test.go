package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

var _ Backend = (*store.Store)(nil) // the state store is a backend as it is

var quiet = slog.New(slog.DiscardHandler)

func hash(t *testing.T, args string) string {
	t.Helper()
	h, err := ArgsHash(json.RawMessage(args))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestReplay: a repeat gets the recorded outcome without running; other arguments are refused;
// an unrecorded (retryable) outcome lets the repeat run.
func TestReplay(t *testing.T) {
	d := New(NewMemory(), Config{Logger: quiet})
	ctx := context.Background()
	var runs atomic.Int64
	call := func(args string, out string, record bool) ([]byte, bool, error) {
		return d.Do(ctx, "slack/agent", "k1", hash(t, args), func(context.Context) ([]byte, bool) {
			runs.Add(1)
			return []byte(out), record
		})
	}
	out, replayed, err := call(`{"a":1,"b":[1,2]}`, "first", true)
	if err != nil || replayed || string(out) != "first" {
		t.Fatalf("first = %q, %v, %v", out, replayed, err)
	}
	// Same arguments in another key order and spacing: the same call.
	out, replayed, err = call(`{ "b":[1,2], "a":1 }`, "second", true)
	if err != nil || !replayed || string(out) != "first" || runs.Load() != 1 {
		t.Fatalf("repeat = %q, %v, %v after %d runs; want the recorded outcome without running", out, replayed, err, runs.Load())
	}
	_, _, err = call(`{"a":2,"b":[1,2]}`, "other", true)
	if !errors.Is(err, ErrKeyReused) || runs.Load() != 1 {
		t.Fatalf("other arguments = %v after %d runs; want ErrKeyReused without running", err, runs.Load())
	}

	// Retryable failure: abandoned, so the retry runs.
	for i, want := range []string{"try later", "done"} {
		out, replayed, err := d.Do(ctx, "slack/agent", "k2", hash(t, `{}`), func(context.Context) ([]byte, bool) {
			runs.Add(1)
			return []byte(want), i == 1
		})
		if err != nil || replayed || string(out) != want {
			t.Fatalf("attempt %d = %q, %v, %v", i, out, replayed, err)
		}
	}
	if out, replayed, _ := call(`{}`, "x", true); replayed && string(out) == "done" {
		t.Fatal("scopes and keys are mixed up")
	}
	// Scope separates keys.
	out, replayed, err = d.Do(ctx, "github/agent", "k1", hash(t, `{"a":9}`), func(context.Context) ([]byte, bool) { return []byte("gh"), true })
	if err != nil || replayed || string(out) != "gh" {
		t.Errorf("same key in another scope = %q, %v, %v; want its own call", out, replayed, err)
	}
}

// TestConcurrentInProcess: duplicates in one process wait for the first and get its outcome.
func TestConcurrentInProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := New(NewMemory(), Config{Logger: quiet})
		release := make(chan struct{})
		var runs atomic.Int64
		var wg sync.WaitGroup
		var replays atomic.Int64
		for range 10 {
			wg.Go(func() {
				out, replayed, err := d.Do(context.Background(), "s", "k", "h", func(context.Context) ([]byte, bool) {
					runs.Add(1)
					<-release
					return []byte("only once"), true
				})
				if err != nil || string(out) != "only once" {
					t.Errorf("Do = %q, %v", out, err)
				}
				if replayed {
					replays.Add(1)
				}
			})
		}
		synctest.Wait()
		close(release)
		wg.Wait()
		if runs.Load() != 1 || replays.Load() != 9 {
			t.Errorf("%d runs, %d replays; want 1 and 9", runs.Load(), replays.Load())
		}
	})
}

// TestConcurrentReplicas: a duplicate on another replica polls the shared backend with backoff
// (25, 50, 100 ms …) and gets the outcome at the first poll after it is recorded.
func TestConcurrentReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := NewMemory()
		a, b := New(shared, Config{Logger: quiet}), New(shared, Config{Logger: quiet})
		started := make(chan struct{})
		go a.Do(context.Background(), "s", "k", "h", func(context.Context) ([]byte, bool) {
			close(started)
			time.Sleep(100 * time.Millisecond)
			return []byte("from a"), true
		})
		<-started
		begin := time.Now()
		out, replayed, err := b.Do(context.Background(), "s", "k", "h", func(context.Context) ([]byte, bool) {
			t.Error("the duplicate ran")
			return nil, false
		})
		if err != nil || !replayed || string(out) != "from a" {
			t.Fatalf("duplicate = %q, %v, %v", out, replayed, err)
		}
		if took := time.Since(begin); took != 175*time.Millisecond {
			t.Errorf("duplicate returned after %v, want 175 ms (polls at 25, 75, 175 ms)", took)
		}

		// A duplicate whose deadline ends first gets ErrInProgress.
		go a.Do(context.Background(), "s", "slow", "h", func(context.Context) ([]byte, bool) {
			time.Sleep(time.Hour)
			return nil, true
		})
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		begin = time.Now()
		_, _, err = b.Do(ctx, "s", "slow", "h", func(context.Context) ([]byte, bool) { return nil, true })
		if !errors.Is(err, ErrInProgress) || time.Since(begin) != 2*time.Second {
			t.Errorf("duplicate of a slow call = %v after %v; want ErrInProgress at the deadline", err, time.Since(begin))
		}
		// Same for an in-process duplicate.
		ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
		defer cancel2()
		if _, _, err := a.Do(ctx2, "s", "slow", "h", nil); !errors.Is(err, ErrInProgress) {
			t.Errorf("in-process duplicate of a slow call = %v, want ErrInProgress", err)
		}
		time.Sleep(time.Hour) // let the slow call end
		synctest.Wait()
	})
}

// TestPanicAbandons: a call that panics releases its key.
func TestPanicAbandons(t *testing.T) {
	d := New(NewMemory(), Config{Logger: quiet})
	func() {
		defer func() { _ = recover() }()
		d.Do(context.Background(), "s", "k", "h", func(context.Context) ([]byte, bool) { panic("boom") })
	}()
	out, replayed, err := d.Do(context.Background(), "s", "k", "h", func(context.Context) ([]byte, bool) { return []byte("ok"), true })
	if err != nil || replayed || string(out) != "ok" {
		t.Errorf("after a panic = %q, %v, %v; want a fresh run", out, replayed, err)
	}
}

// TestExpiry: after the TTL the key runs again.
func TestExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := New(NewMemory(), Config{TTL: time.Hour, Logger: quiet})
		n := 0
		fn := func(context.Context) ([]byte, bool) { n++; return []byte(fmt.Sprint(n)), true }
		d.Do(context.Background(), "s", "k", "h", fn)
		time.Sleep(59 * time.Minute)
		if out, replayed, _ := d.Do(context.Background(), "s", "k", "h", fn); !replayed || string(out) != "1" {
			t.Errorf("within the TTL = %q, %v", out, replayed)
		}
		time.Sleep(time.Minute)
		if out, replayed, _ := d.Do(context.Background(), "s", "k", "h", fn); replayed || string(out) != "2" {
			t.Errorf("after the TTL = %q, %v; want a new run", out, replayed)
		}
	})
}

// TestCompleteAfterCancel: the outcome is recorded even if the caller gave up meanwhile.
func TestCompleteAfterCancel(t *testing.T) {
	d := New(NewMemory(), Config{Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	d.Do(ctx, "s", "k", "h", func(context.Context) ([]byte, bool) { cancel(); return []byte("sent"), true })
	out, replayed, err := d.Do(context.Background(), "s", "k", "h", func(context.Context) ([]byte, bool) { return []byte("again"), true })
	if err != nil || !replayed || string(out) != "sent" {
		t.Errorf("after a cancelled first caller = %q, %v, %v; want the recorded outcome", out, replayed, err)
	}
}

func TestKeys(t *testing.T) {
	k := func(conn, tool, subj, args string) string {
		s, err := DeriveKey(conn, tool, subj, json.RawMessage(args))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := k("slack", "post", "T1", `{"channel":"C1","text":"hi"}`)
	if got := k("slack", "post", "T1", ` {"text":"hi",  "channel":"C1"}`); got != base {
		t.Error("key order or spacing changed the derived key")
	}
	for _, other := range []string{
		k("slack", "post", "T2", `{"channel":"C1","text":"hi"}`),
		k("slack", "list", "T1", `{"channel":"C1","text":"hi"}`),
		k("github", "post", "T1", `{"channel":"C1","text":"hi"}`),
		k("slack", "post", "T1", `{"channel":"C1","text":"hi!"}`),
		k("slackpost", "", "T1", `{"channel":"C1","text":"hi"}`),
	} {
		if other == base {
			t.Error("a different call derived the same key")
		}
	}
	if _, err := ArgsHash(json.RawMessage(`{"a":`)); err == nil {
		t.Error("ArgsHash accepted invalid JSON")
	}
	if _, err := ArgsHash(json.RawMessage(`{} {}`)); err == nil {
		t.Error("ArgsHash accepted two values")
	}
	if a, b := hash(t, `{"n":1.0}`), hash(t, `{"n":1}`); a == b {
		t.Log("numbers are compared as written") // documented: 1.0 and 1 differ
	}
}

// TestPostgresReplicas: two replicas on one PostgreSQL state store run a keyed call once.
func TestPostgresReplicas(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	var ds []*Deduper
	for range 2 {
		st, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
		defer st.Close()
		ds = append(ds, New(st, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PollMin: time.Millisecond, PollMax: 10 * time.Millisecond}))
	}
	var runs atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			out, _, err := ds[i%2].Do(ctx, "slack/agent", "pay-42", "h", func(context.Context) ([]byte, bool) {
				runs.Add(1)
				time.Sleep(50 * time.Millisecond)
				return []byte("paid"), true
			})
			if err != nil || string(out) != "paid" {
				t.Errorf("Do = %q, %v", out, err)
			}
		})
	}
	wg.Wait()
	if runs.Load() != 1 {
		t.Errorf("the call ran %d times across two replicas, want once", runs.Load())
	}
	if _, _, err := ds[1].Do(ctx, "slack/agent", "pay-42", "other", nil); !errors.Is(err, ErrKeyReused) {
		t.Errorf("reused key = %v, want ErrKeyReused", err)
	}
}

// Derived keys and argument hashes are stored (idempotency records, approvals) and must match
// across releases: a key that changed would run again a call an upgrade interrupted. The
// values are the SHA-256 of the documented forms, computed apart from this code.
func TestDigestsArePinned(t *testing.T) {
	const args = ` {"text":"hi", "channel":"C1"}`
	key, err := DeriveKey("slack", "post", "T1", json.RawMessage(args))
	if want := "14b8196874e1290578a0b6cbd29ebfd202765192fb0c1ee6f75f77d0fab99d05"; err != nil || key != want {
		t.Errorf("DeriveKey = %s, %v; want %s (sha256 of [\"airlock-idempotency-v1\",\"slack\",\"post\",\"T1\",{\"channel\":\"C1\",\"text\":\"hi\"}])", key, err, want)
	}
	hash, err := ArgsHash(json.RawMessage(args))
	if want := "003235b348c3a31947d3b3388ceea0bb5de433f2c48390deafebbd2d072dd2fa"; err != nil || hash != want {
		t.Errorf("ArgsHash = %s, %v; want %s (sha256 of {\"channel\":\"C1\",\"text\":\"hi\"})", hash, err, want)
	}
	canon, err := Canonical(json.RawMessage(args))
	if err != nil || KeyCanonical("slack", "post", "T1", canon) != key || HashCanonical(canon) != hash {
		t.Errorf("the digests of the canonical form differ from DeriveKey's and ArgsHash's")
	}
}
