package ratelimit

import (
	"context"
	"errors"
)

// Ping checks that Redis answers now, for a readiness probe. Its error names no address or
// password: "Redis does not answer" and, when known, "limiting locally" (see [Redis.Healthy]).
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return errors.New("Redis does not answer: rate limits are enforced locally at a conservative share until it does")
	}
	return nil
}
