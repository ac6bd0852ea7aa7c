package ratelimit

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestReserve(t *testing.T) {
	l := New(func(host string) Limit {
		if host == "limited.test" {
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
		r := l.Reserve(k, t0.Add(s.at), s.maxWait)
		if r.OK != s.ok || r.Wait != s.wait {
			t.Errorf("step %d: Reserve = %+v, want ok %v wait %v", i, r, s.ok, s.wait)
		}
	}
	// Unlimited host: always at once.
	for range 100 {
		if r := l.Reserve(Key{Host: "free.test"}, t0, 0); !r.OK || r.Wait != 0 {
			t.Fatalf("unlimited Reserve = %+v", r)
		}
	}
}

func TestPause(t *testing.T) {
	l := New(nil)
	k := Key{Host: "api.test", Credential: "a"}
	l.Pause(k, t0, t0.Add(30*time.Second), "told so")
	l.Pause(k, t0, t0.Add(10*time.Second), "shorter") // never shortens
	if r := l.Reserve(k, t0, 10*time.Second); r.OK || r.Wait != 30*time.Second || !r.Paused || r.Reason != "told so" {
		t.Errorf("paused Reserve = %+v", r)
	}
	if r := l.Reserve(k, t0.Add(25*time.Second), 10*time.Second); !r.OK || r.Wait != 5*time.Second {
		t.Errorf("Reserve near the end = %+v", r)
	}
	if r := l.Reserve(Key{Host: "api.test", Credential: "b"}, t0, 0); !r.OK || r.Wait != 0 {
		t.Errorf("other credential = %+v, want its own bucket", r)
	}
	if r := l.Reserve(k, t0.Add(30*time.Second), 0); !r.OK || r.Wait != 0 {
		t.Errorf("after the pause = %+v", r)
	}
}

func TestSweep(t *testing.T) {
	l := New(func(string) Limit { return Limit{PerSecond: 1} })
	l.Pause(Key{Host: "paused.test"}, t0, t0.Add(time.Hour), "x")
	l.Reserve(Key{Host: "drained.test"}, t0, 0)
	for i := range maxKeys {
		l.Reserve(Key{Host: "h.test", Credential: strconv.Itoa(i)}, t0.Add(time.Minute), time.Hour)
	}
	// Drained buckets survive a sweep; refilled ones are dropped, paused ones kept.
	l.Reserve(Key{Host: "new.test"}, t0.Add(time.Minute), time.Hour)
	if _, ok := l.buckets[Key{Host: "h.test", Credential: "0"}]; !ok {
		t.Error("a sweep dropped a drained bucket: its next request would get a full burst")
	}
	if _, ok := l.buckets[Key{Host: "drained.test"}]; ok {
		t.Error("a sweep kept a bucket that had refilled")
	}
	l.Reserve(Key{Host: "later.test"}, t0.Add(10*time.Minute), time.Hour)
	if got := l.PausedUntil(Key{Host: "paused.test"}); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("sweep dropped a paused bucket")
	}
	if n := len(l.buckets); n != 2 {
		t.Errorf("%d buckets after a sweep of idle buckets, want 2 (paused, new)", n)
	}
}

// TestHammer: concurrent reservations never hand out more tokens than the bucket holds.
func TestHammer(t *testing.T) {
	l := New(func(string) Limit { return Limit{PerSecond: 10, Burst: 5} })
	k := Key{Host: "h.test"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	immediate := 0
	for range 32 {
		wg.Go(func() {
			for range 50 {
				if r := l.Reserve(k, t0, 0); r.OK {
					mu.Lock()
					immediate++
					mu.Unlock()
				}
				l.Pause(Key{Host: "other.test"}, t0, t0.Add(time.Second), "x")
			}
		})
	}
	wg.Wait()
	if immediate != 5 {
		t.Errorf("%d immediate tokens at one instant, want the burst (5)", immediate)
	}
}

func BenchmarkReserve(b *testing.B) {
	l := New(func(string) Limit { return Limit{PerSecond: 1e9, Burst: 1 << 20} })
	k := Key{Host: "api.test", Credential: "a"}
	b.ReportAllocs()
	for b.Loop() {
		l.Reserve(k, time.Now(), time.Second)
	}
}
