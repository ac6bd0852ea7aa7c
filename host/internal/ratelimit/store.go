package ratelimit

import (
	"context"
	"errors"
	"time"
)

// Store keeps buckets and pauses shared by several processes. [Redis] implements it. Every
// method may fail (the store is a network service); a shared [Limiter] then answers from its
// in-process buckets.
type Store interface {
	// Reserve takes a token of k's bucket, sized by lim, if the caller would have to wait at most
	// maxWait for it (the rest of a pause, or the next token); otherwise it takes nothing and
	// reports the wait. Time is the store's clock, so replicas with skewed clocks agree. The
	// returned Reservation's Cancel gives the token back.
	Reserve(ctx context.Context, k Key, lim Limit, maxWait time.Duration) (Reservation, error)
	// Pause stops k for d, unless a longer pause is already in force.
	Pause(ctx context.Context, k Key, d time.Duration, reason string) error
}

// ErrStoreUnavailable is returned by a [Redis] store that is known to be unreachable (it fails
// fast, without a round trip, until its background probe succeeds).
var ErrStoreUnavailable = errors.New("ratelimit: the shared rate-limit store is unreachable; limiting in process until it answers")
