package runtime

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// callContext is the context of one guest call: the caller's, bounded by the call's deadline,
// cancelled when the module is stopped (Close) or the call has ended, and carrying the
// instance for the host functions. It costs one allocation. The timer and the registration on
// the module's stop context that context.WithTimeout and context.AfterFunc would set up for
// every call are made only when something first waits on it (Done or Err: a host function doing
// I/O, a sleep, the meter's checkpoint), which a call without I/O never does: the meter's
// checkpoint reads Deadline directly, so the timeout is enforced exactly as before.
type callContext struct {
	parent   context.Context
	stop     context.Context // the module's: cancelled by Close once its grace period is over
	in       *instance
	deadline time.Time

	real      atomic.Pointer[context.Context] // parent with deadline, cancelled by stop; made on first wait
	mu        sync.Mutex                      // guards making real and ending the call
	cancel    context.CancelFunc
	stopAfter func() bool
	ended     bool
}

// callContextFor returns the context of a call h serves: in h's CallContextSlot when h has one,
// otherwise newly allocated.
func callContextFor(h Handler, parent, stop context.Context, in *instance, deadline time.Time) *callContext {
	var c *callContext
	if sh, ok := h.(interface{ CallContextSlot() *CallContextSlot }); ok {
		if s := sh.CallContextSlot(); !s.used {
			s.used, c = true, &s.cc
		}
	}
	if c == nil {
		c = new(callContext)
	}
	c.parent, c.stop, c.in, c.deadline = parent, stop, in, deadline
	return c
}

// CallContextSlot is room for one call's context inside a Handler, for a caller whose Handler
// is made for one call and never reused (the host keeps its handler in each call's state): a
// Handler with a method CallContextSlot() *CallContextSlot, returning a slot no call used
// before, gets its call's context made there instead of allocated (a slot used already gets
// an allocated one). Whoever keeps the handler after the call keeps the context (cancelled)
// and the instance it names.
type CallContextSlot struct {
	cc   callContext
	used bool
}

// Used reports whether a call's context was made in s: s must not be zeroed or reused then,
// since whatever kept that context may still read it.
func (s *CallContextSlot) Used() bool { return s.used }

func (c *callContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *callContext) Done() <-chan struct{}       { return c.ctx().Done() }
func (c *callContext) Err() error                  { return c.ctx().Err() }

func (c *callContext) Value(key any) any {
	if key == (instanceKey{}) {
		return c.in
	}
	if r := c.real.Load(); r != nil {
		return (*r).Value(key) // context.Cause finds the call's own cancellation
	}
	return c.parent.Value(key)
}

// ctx returns the cancellable context behind c, making it on first use.
func (c *callContext) ctx() context.Context {
	if r := c.real.Load(); r != nil {
		return *r
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.real.Load(); r != nil {
		return *r
	}
	ctx, cancel := context.WithDeadline(c.parent, c.deadline)
	if c.ended || c.stop.Err() != nil {
		cancel() // after the call (as a cancelled call context), or the module already stopped
	} else {
		c.cancel, c.stopAfter = cancel, context.AfterFunc(c.stop, cancel)
	}
	c.real.Store(&ctx)
	return ctx
}

// end cancels the call's context: whatever still holds it sees a cancelled context, as with
// the cancel function of context.WithTimeout.
func (c *callContext) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
	if c.cancel != nil {
		c.stopAfter()
		c.cancel()
	}
}
