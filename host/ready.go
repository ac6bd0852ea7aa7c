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
// and, when RedisURL is set, Redis was reachable at its last probe. A connector that could not
// be loaded is reported by [Host.Connectors] missing it, not here: it is stopped alone.
func (h *Host) Readiness(ctx context.Context) []Check {
	var checks []Check
	if h.store != nil {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c := Check{Name: "store", OK: true}
		if err := h.store.Ping(ctx); err != nil {
			c = Check{Name: "store", Error: err.Error()}
		}
		checks = append(checks, c)
	}
	if h.shared != nil {
		c := Check{Name: "redis", OK: true}
		if !h.shared.Healthy() {
			c = Check{Name: "redis", Error: "Redis is not reachable: rate limits are enforced locally at a conservative share until it is"}
		}
		checks = append(checks, c)
	}
	return checks
}
