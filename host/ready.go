package host

import (
	"context"
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
