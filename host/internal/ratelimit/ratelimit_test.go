package ratelimit

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

var ctx = context.Background()

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestReserve(t *testing.T) {
	l := New(func(k Key) Limit {
		if k.Host == "limited.test" {
			return Limit{PerSecond: 2}
		}
		return Limit{}
	})
	k := Key{Host: "limited.test", Credential: "a"}
	type step struct {
		at      time.Duration
		maxWait time.Duration
		ok      bool
		wait    time.Duration
	}
	for i, s := range []step{
		{0, 0, true, 0}, // burst 2
		{0, 0, true, 0}, //
		{0, 100 * time.Millisecond, false, 500 * time.Millisecond}, // refused: nothing taken
		{0, time.Second, true, 500 * time.Millisecond},
		{0, time.Second, true, time.Second},
		{2 * time.Second, 0, true, 0},
	} {
		r := l.Reserve(ctx, k, t0.Add(s.at), s.maxWait)
		if r.OK != s.ok || r.Wait != s.wait {
			t.Errorf("step %d: Reserve = %+v, want ok %v wait %v", i, r, s.ok, s.wait)
		}
	}
	// Unlimited host: always at once.
	for range 100 {
		if r := l.Reserve(ctx, Key{Host: "free.test"}, t0, 0); !r.OK || r.Wait != 0 {
			t.Fatalf("unlimited Reserve = %+v", r)
		}
	}
}

func TestPause(t *testing.T) {
	l := New(nil)
	k := Key{Host: "api.test", Credential: "a"}
	l.Pause(ctx, k, t0, t0.Add(30*time.Second), "told so")
	l.Pause(ctx, k, t0, t0.Add(10*time.Second), "shorter") // never shortens
	if r := l.Reserve(ctx, k, t0, 10*time.Second); r.OK || r.Wait != 30*time.Second || !r.Paused || r.Reason != "told so" {
		t.Errorf("paused Reserve = %+v", r)
	}
	if r := l.Reserve(ctx, k, t0.Add(25*time.Second), 10*time.Second); !r.OK || r.Wait != 5*time.Second {
		t.Errorf("Reserve near the end = %+v", r)
	}
	if r := l.Reserve(ctx, Key{Host: "api.test", Credential: "b"}, t0, 0); !r.OK || r.Wait != 0 {
		t.Errorf("other credential = %+v, want its own bucket", r)
	}
	if r := l.Reserve(ctx, k, t0.Add(30*time.Second), 0); !r.OK || r.Wait != 0 {
		t.Errorf("after the pause = %+v", r)
	}
}

func TestSweep(t *testing.T) {
	l := New(func(Key) Limit { return Limit{PerSecond: 1} })
	l.Pause(ctx, Key{Host: "paused.test"}, t0, t0.Add(time.Hour), "x")
	l.Reserve(ctx, Key{Host: "drained.test"}, t0, 0)
	for i := range maxKeys {
		l.Reserve(ctx, Key{Host: "h.test", Credential: strconv.Itoa(i)}, t0.Add(time.Minute), time.Hour)
	}
	// Drained buckets survive a sweep; refilled ones are dropped, paused ones kept.
	l.Reserve(ctx, Key{Host: "new.test"}, t0.Add(time.Minute), time.Hour)
	if _, ok := l.buckets[Key{Host: "h.test", Credential: "0"}]; !ok {
		t.Error("a sweep dropped a drained bucket: its next request would get a full burst")
	}
	if _, ok := l.buckets[Key{Host: "drained.test"}]; ok {
		t.Error("a sweep kept a bucket that had refilled")
	}
	l.Reserve(ctx, Key{Host: "later.test"}, t0.Add(10*time.Minute), time.Hour)
	if got := l.PausedUntil(Key{Host: "paused.test"}); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("sweep dropped a paused bucket")
	}
	if n := len(l.buckets); n != 2 {
		t.Errorf("%d buckets after a sweep of idle buckets, want 2 (paused, new)", n)
	}
}

// TestHammer: concurrent reservations never hand out more tokens than the bucket holds.
func TestHammer(t *testing.T) {
	l := New(func(Key) Limit { return Limit{PerSecond: 10, Burst: 5} })
	k := Key{Host: "h.test"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	immediate := 0
	for range 32 {
		wg.Go(func() {
			for range 50 {
				if r := l.Reserve(ctx, k, t0, 0); r.OK {
					mu.Lock()
					immediate++
					mu.Unlock()
				}
				l.Pause(ctx, Key{Host: "other.test"}, t0, t0.Add(time.Second), "x")
			}
		})
	}
	wg.Wait()
	if immediate != 5 {
		t.Errorf("%d immediate tokens at one instant, want the burst (5)", immediate)
	}
}

func BenchmarkReserve(b *testing.B) {
	l := New(func(Key) Limit { return Limit{PerSecond: 1e9, Burst: 1 << 20} })
	k := Key{Host: "api.test", Credential: "a"}
	b.ReportAllocs()
	for b.Loop() {
		l.Reserve(ctx, k, time.Now(), time.Second)
	}
}

// TestCancel: a cancelled reservation gives its token back; a refused one has nothing to give.
func TestCancel(t *testing.T) {
	l := New(func(Key) Limit { return Limit{PerSecond: 1, Burst: 1} })
	k := Key{Host: "h.test"}
	r := l.Reserve(ctx, k, t0, 0)
	if !r.OK {
		t.Fatal("first reservation refused")
	}
	refused := l.Reserve(ctx, k, t0, 0)
	refused.Cancel(ctx)
	if refused.OK {
		t.Fatal("second reservation at the same instant admitted")
	}
	r.Cancel(ctx)
	if r := l.Reserve(ctx, k, t0, 0); !r.OK || r.Wait != 0 {
		t.Errorf("after Cancel = %+v, want the token back", r)
	}
	if r := l.Reserve(ctx, k, t0, 0); r.OK {
		t.Errorf("a refused reservation's Cancel added a token: %+v", r)
	}
}

// TestScaled: the in-process share of a limit never drops below one request.
func TestScaled(t *testing.T) {
	for _, tt := range []struct {
		in    Limit
		share float64
		want  Limit
	}{
		{Limit{PerSecond: 10, Burst: 8}, 0.5, Limit{PerSecond: 5, Burst: 4}},
		{Limit{PerSecond: 10}, 0.25, Limit{PerSecond: 2.5, Burst: 2}},
		{Limit{PerSecond: 1, Burst: 1}, 0.1, Limit{PerSecond: 0.1, Burst: 1}},
		{Limit{}, 0.5, Limit{}},
		{Limit{PerSecond: 3, Burst: 3}, 1, Limit{PerSecond: 3, Burst: 3}},
	} {
		if got := tt.in.scaled(tt.share); got != tt.want {
			t.Errorf("%+v.scaled(%v) = %+v, want %+v", tt.in, tt.share, got, tt.want)
		}
	}
}

// TestOutOfOrderClocks: callers whose clocks arrive out of order (concurrent requests each
// reading time.Now before taking the lock) get no extra tokens.
func TestOutOfOrderClocks(t *testing.T) {
	l := New(func(Key) Limit { return Limit{PerSecond: 10, Burst: 1} })
	k := Key{Host: "h.test"}
	admitted := 0
	for i := range 100 {
		// Alternate between a later and an earlier clock reading, 50 ms apart, over 5 s.
		at := t0.Add(time.Duration(i/2) * 100 * time.Millisecond)
		if i%2 == 1 {
			at = at.Add(-50 * time.Millisecond)
		}
		if r := l.Reserve(ctx, k, at, 0); r.OK {
			admitted++
		}
	}
	if admitted > 51 {
		t.Errorf("admitted %d requests in 5 s at 10/s with burst 1, want at most 51", admitted)
	}
}
