package ratelimit

import (
	"expvar"
	"sync/atomic"
)

// Process-wide counters, published with expvar as "airlock_ratelimit" (served at /debug/vars
// wherever the embedder mounts expvar.Handler) and readable with [Snapshot].
var metrics struct {
	waits          atomic.Int64 // reservations that had to wait
	refusals       atomic.Int64 // reservations refused (wait too long)
	localFallbacks atomic.Int64 // reservations a shared Limiter answered locally: the store failed
	storeDown      atomic.Int64 // times a store was found unreachable
	storeUp        atomic.Int64 // times a store answered again after being unreachable
	storeErrors    atomic.Int64 // failed store operations
}

func count(c *atomic.Int64) { c.Add(1) }

func init() {
	expvar.Publish("airlock_ratelimit", expvar.Func(func() any { return Snapshot() }))
}

// Snapshot returns the counters of every Limiter and Store in the process:
//
//   - waits: reservations that had to wait for a token or a pause;
//   - refusals: reservations refused because the wait was longer than the caller could afford;
//   - local_fallbacks: reservations a shared Limiter answered from in-process buckets;
//   - store_down, store_up: times a shared store became unreachable, and reachable again;
//   - store_errors: failed store operations.
func Snapshot() map[string]int64 {
	return map[string]int64{
		"waits":           metrics.waits.Load(),
		"refusals":        metrics.refusals.Load(),
		"local_fallbacks": metrics.localFallbacks.Load(),
		"store_down":      metrics.storeDown.Load(),
		"store_up":        metrics.storeUp.Load(),
		"store_errors":    metrics.storeErrors.Load(),
	}
}
