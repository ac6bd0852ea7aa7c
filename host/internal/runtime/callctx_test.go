package runtime

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

type parentKey struct{}

// The call's context behaves as context.WithTimeout plus context.AfterFunc on the module's stop
// context did, though it makes neither until something waits on it.
func TestCallContext(t *testing.T) {
	parent := context.WithValue(context.Background(), parentKey{}, "v")
	in := &instance{}
	t.Run("values", func(t *testing.T) {
		c := callContextFor(nil, parent, context.Background(), in, time.Now().Add(time.Hour))
		defer c.end()
		if got := c.Value(instanceKey{}); got != in {
			t.Errorf("Value(instanceKey) = %v, want the instance", got)
		}
		if got := c.Value(parentKey{}); got != "v" {
			t.Errorf("Value(parentKey) = %v, want the caller's value", got)
		}
		if err := c.Err(); err != nil {
			t.Errorf("Err() = %v before the deadline, want nil", err)
		}
		if got := c.Value(parentKey{}); got != "v" {
			t.Errorf("Value(parentKey) once waited on = %v, want the caller's value", got)
		}
	})
	t.Run("ended", func(t *testing.T) {
		for _, waited := range []bool{false, true} {
			c := callContextFor(nil, parent, context.Background(), in, time.Now().Add(time.Hour))
			if waited {
				_ = c.Done()
			}
			c.end()
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatalf("waited=%v: Done not closed after the call ended", waited)
			}
			if err := c.Err(); !errors.Is(err, context.Canceled) {
				t.Errorf("waited=%v: Err() after the call = %v, want context.Canceled", waited, err)
			}
		}
	})
	t.Run("deadline", func(t *testing.T) {
		c := callContextFor(nil, parent, context.Background(), in, time.Now().Add(10*time.Millisecond))
		defer c.end()
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Done not closed after the deadline")
		}
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Err() = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		for _, before := range []bool{false, true} {
			stop, stopAll := context.WithCancel(context.Background())
			c := callContextFor(nil, parent, stop, in, time.Now().Add(time.Hour))
			if before {
				stopAll()
			}
			done := c.Done()
			stopAll()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("stopped before the first wait=%v: Done not closed when the module stopped", before)
			}
			if err := context.Cause(c); !errors.Is(err, context.Canceled) {
				t.Errorf("Cause = %v, want context.Canceled", err)
			}
			c.end()
		}
	})
	t.Run("caller cancelled", func(t *testing.T) {
		p, cancel := context.WithCancelCause(parent)
		c := callContextFor(nil, p, context.Background(), in, time.Now().Add(time.Hour))
		defer c.end()
		why := errors.New("client went away")
		cancel(why)
		<-c.Done()
		if err := context.Cause(c); !errors.Is(err, why) {
			t.Errorf("Cause = %v, want the caller's cause", err)
		}
	})
}

// A pool keeps the idle lists its calls empty, so a subject calling again does not make one,
// but not those of subjects that stopped calling: the map stays bounded by the pool's size,
// even when every instance is discarded after its call (MaxUses 2: at its second call) and so never goes back to
// its list.
func TestIdleListsStayBounded(t *testing.T) {
	m := load(t, Options{PoolSize: 2, Warm: 1, MaxUses: 2})
	ctx := context.Background()
	for i := range 50 {
		subject := fmt.Sprintf("tenant-%d", i)
		for range 2 {
			if _, err := m.Call(ctx, subject, "noop", nil, &fakeHandler{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.pool.mu.Lock()
	n := len(m.pool.idle)
	m.pool.mu.Unlock()
	if n > 2*m.pool.max+1 {
		t.Errorf("after 50 subjects, %d idle lists, want at most %d", n, 2*m.pool.max+1)
	}
}
