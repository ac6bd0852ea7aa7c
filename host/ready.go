package host

import (
	"context"
	"sync"
	"time"
)

// Check is one part of a readiness report: its name, whether it passes and, if not, why.
type Check struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Readiness checks what the host needs to serve calls: the state store answers (within 2 s)
// and, when RedisURL is set, Redis answers a PING. A connector that could not
// be loaded is reported by [Host.Connectors] missing it, not here: it is stopped alone.
func (h *Host) Readiness(ctx context.Context) []Check {
	var checks []Check
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if h.store != nil {
		c := Check{Name: "store", OK: true}
		if err := h.store.Ping(ctx); err != nil {
			c = Check{Name: "store", Error: err.Error()}
		}
		checks = append(checks, c)
	}
	if h.shared != nil {
		c := Check{Name: "redis", OK: true}
		if err := h.shared.Ping(ctx); err != nil {
			c = Check{Name: "redis", Error: err.Error()}
		}
		checks = append(checks, c)
	}
	return checks
}

// WaitCalls returns once no call is in progress (Call has returned for every call started), or
// when ctx is done. A server draining for shutdown calls it after it stopped accepting calls.
func (h *Host) WaitCalls(ctx context.Context) {
	h.calls.wait(ctx)
}

// callCount counts calls in progress; its zero value is ready to use.
type callCount struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil until a wait needs it
}

// start counts a call in; done counts it out.
func (c *callCount) start() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *callCount) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n--; c.n == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

func (c *callCount) wait(ctx context.Context) {
	c.mu.Lock()
	if c.n == 0 {
		c.mu.Unlock()
		return
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}
