package breaker

import (
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestTransitions(t *testing.T) {
	b := New(Config{Failures: 2, CoolDown: 10 * time.Second})
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	run := func(now time.Time, o Outcome) Decision {
		d := b.Allow(now)
		b.Done(now, d, o)
		return d
	}
	run(at(0), Failure)
	run(at(0), Success) // resets the count
	run(at(0), Failure)
	run(at(0), Ignore)
	if s := b.State(at(0)); s != Closed {
		t.Fatalf("state = %v, want closed", s)
	}
	run(at(0), Failure)
	if s := b.State(at(0)); s != Open {
		t.Fatalf("after 2 consecutive failures: %v, want open", s)
	}
	if d := b.Allow(at(3 * time.Second)); d.OK || d.RetryAfter != 7*time.Second {
		t.Fatalf("open Allow = %+v", d)
	}
	probe := b.Allow(at(10 * time.Second))
	if !probe.OK || b.State(at(10*time.Second)) != HalfOpen {
		t.Fatalf("half-open probe = %+v", probe)
	}
	if d := b.Allow(at(10 * time.Second)); d.OK {
		t.Fatal("a second request went through while the probe was in flight")
	}
	b.Done(at(11*time.Second), probe, Failure)
	if d := b.Allow(at(11 * time.Second)); d.OK || d.RetryAfter != 10*time.Second {
		t.Fatalf("after a failed probe Allow = %+v, want a full cool-down", d)
	}
	probe = b.Allow(at(21 * time.Second))
	b.Done(at(21*time.Second), probe, Ignore) // a cancelled probe decides nothing
	if s := b.State(at(21 * time.Second)); s != HalfOpen {
		t.Fatalf("after an ignored probe: %v, want half-open", s)
	}
	run(at(22*time.Second), Success)
	if s := b.State(at(22 * time.Second)); s != Closed {
		t.Fatalf("after a good probe: %v, want closed", s)
	}
}

func TestDisabled(t *testing.T) {
	b := New(Config{Failures: -1})
	for range 100 {
		d := b.Allow(t0)
		b.Done(t0, d, Failure)
	}
	if !b.Allow(t0).OK {
		t.Fatal("a disabled breaker opened")
	}
}

func TestHammer(t *testing.T) {
	b := New(Config{Failures: 3, CoolDown: time.Millisecond})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				now := time.Now()
				d := b.Allow(now)
				b.Done(now, d, Outcome((g+i)%3))
				b.State(now)
			}
		})
	}
	wg.Wait()
}

// TestLateOutcomes: a request allowed before the breaker opened cannot close it by succeeding,
// nor reopen it by failing, once a probe is the one to decide.
func TestLateOutcomes(t *testing.T) {
	b := New(Config{Failures: 1, CoolDown: 10 * time.Second})
	slow := b.Allow(t0) // in flight while the breaker opens
	d := b.Allow(t0)
	b.Done(t0, d, Failure)
	if s := b.State(t0); s != Open {
		t.Fatalf("state = %v, want open", s)
	}
	b.Done(t0.Add(time.Second), slow, Success)
	if s := b.State(t0.Add(time.Second)); s != Open {
		t.Fatalf("a late success changed an open breaker to %v", s)
	}
	probe := b.Allow(t0.Add(10 * time.Second))
	b.Done(t0.Add(10*time.Second), slow, Failure) // late failure while half-open
	if d := b.Allow(t0.Add(10 * time.Second)); d.OK {
		t.Fatal("a late failure released the half-open gate")
	}
	b.Done(t0.Add(11*time.Second), probe, Success)
	if s := b.State(t0.Add(11 * time.Second)); s != Closed {
		t.Fatalf("after a good probe: %v, want closed", s)
	}
}

// TestSnapshot: opens, probes, closes and refusals are counted.
func TestSnapshot(t *testing.T) {
	before := Snapshot()
	b := New(Config{Failures: 1, CoolDown: time.Second})
	d := b.Allow(t0)
	b.Done(t0, d, Failure) // open
	b.Allow(t0)            // refused
	p := b.Allow(t0.Add(time.Second))
	b.Done(t0.Add(time.Second), p, Failure) // open again
	p = b.Allow(t0.Add(2 * time.Second))
	b.Done(t0.Add(2*time.Second), p, Success) // closed
	after := Snapshot()
	want := map[string]int64{"opens": 2, "closes": 1, "probes": 2, "refusals": 1}
	for k, n := range want {
		if got := after[k] - before[k]; got != n {
			t.Errorf("%s grew by %d, want %d", k, got, n)
		}
	}
}

// OnOpen is called each time the breaker opens, with the cool-down: at the threshold and after
// a failed probe, never for a success or a closing probe. It may call the breaker (no lock held).
func TestOnOpen(t *testing.T) {
	var opens []time.Duration
	var b *Breaker
	b = New(Config{Failures: 2, CoolDown: 10 * time.Second, OnOpen: func(d time.Duration) {
		opens = append(opens, d)
		b.State(t0) // would deadlock if called under the lock
	}})
	run := func(now time.Time, o Outcome) {
		b.Done(now, b.Allow(now), o)
	}
	run(t0, Failure)
	run(t0, Failure)                     // opens
	run(t0.Add(11*time.Second), Failure) // the probe fails: opens again
	run(t0.Add(22*time.Second), Success) // the probe closes it
	run(t0.Add(23*time.Second), Failure) // one failure: still closed
	if len(opens) != 2 || opens[0] != 10*time.Second || opens[1] != 10*time.Second {
		t.Errorf("OnOpen calls = %v, want two with the 10 s cool-down", opens)
	}
}
