package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for zero RedisConfig fields.
const (
	DefaultRedisPrefix   = "airlock:rl:"
	DefaultRedisTimeout  = 250 * time.Millisecond
	DefaultProbeInterval = 2 * time.Second
)

// RedisConfig configures [NewRedis]. Zero fields mean the defaults.
type RedisConfig struct {
	// Prefix starts every key, so several deployments (or tests) can share one Redis.
	// "" means "airlock:rl:".
	Prefix string
	// Timeout bounds one operation (a reservation is one round trip). A slower answer counts as
	// a failure: the Limiter falls back to its in-process buckets rather than hold requests.
	// 0 means 250 ms.
	Timeout time.Duration
	// ProbeInterval is how often an unreachable Redis is pinged in the background. 0 means 2 s.
	ProbeInterval time.Duration
	// Logger receives one Warn line when Redis becomes unreachable and one Info line when it
	// answers again. Nil means slog.Default().
	Logger *slog.Logger
}

// Redis is a [Store] in Redis, shared by every replica that uses the same server and prefix.
// Buckets follow GCRA (the generic cell rate algorithm: one "theoretical arrival time" per key),
// computed in a Lua script against the Redis clock; a pause is a key whose TTL is the rest of
// the pause. Both keys of a bucket share a hash tag, so it works on Redis Cluster too.
//
// Why not github.com/go-redis/redis_rate: its AllowN either admits a request now or refuses it
// with a retry-after; it cannot reserve a slot up to maxWait in the future (which is what lets a
// request wait 200 ms for its token instead of failing), knows nothing of pauses, and would need
// a second round trip for them. The script below is redis_rate's GCRA plus those two things.
//
// When an operation fails (an error or a timeout, not the caller's cancellation), the store
// marks itself unreachable: it logs once, counts it (store_down in [Snapshot]), fails every
// operation at once with [ErrStoreUnavailable], and pings Redis every ProbeInterval in the
// background until it answers (logged once, store_up).
//
// Redis is safe for concurrent use. Its zero value is not usable; call [NewRedis]. Close stops
// the background probe; it does not close the client.
type Redis struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
	probe   time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	down    bool
	probing bool
	closed  chan struct{}
	once    sync.Once
}

// NewRedis returns a Store on rdb. The caller keeps ownership of rdb.
func NewRedis(rdb redis.UniversalClient, cfg RedisConfig) *Redis {
	r := &Redis{rdb: rdb, prefix: cfg.Prefix, timeout: cfg.Timeout, probe: cfg.ProbeInterval, log: cfg.Logger,
		closed: make(chan struct{})}
	if r.prefix == "" {
		r.prefix = DefaultRedisPrefix
	}
	if r.timeout <= 0 {
		r.timeout = DefaultRedisTimeout
	}
	if r.probe <= 0 {
		r.probe = DefaultProbeInterval
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// Close stops the background probe. Operations after Close fail with ErrStoreUnavailable.
func (r *Redis) Close() {
	r.once.Do(func() { close(r.closed) })
}

// Healthy reports whether the store is currently used (false while it is known unreachable).
func (r *Redis) Healthy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.down
}

// keys returns the bucket and pause keys of k.
func (r *Redis) keys(k Key) (bucket, pause string) {
	var b strings.Builder
	b.WriteString(r.prefix)
	b.WriteByte('{')
	for i, part := range []string{k.Connector, k.Host, k.Rule, k.Credential, k.Subject} {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(url.QueryEscape(part)) // escapes '{', '}' and '|'
	}
	b.WriteByte('}')
	tag := b.String()
	return tag + ":b", tag + ":p"
}

// reserveScript: KEYS[1] bucket (theoretical arrival time, µs), KEYS[2] pause (reason, TTL = the
// rest of the pause). ARGV[1] emission interval µs (0: no static limit), ARGV[2] burst,
// ARGV[3] max wait µs. Returns {ok, wait µs, paused, reason}.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local maxwait = tonumber(ARGV[3])
local pause, reason = 0, ''
local pttl = redis.call('PTTL', KEYS[2])
if pttl > 0 then
  pause = pttl * 1000
  reason = redis.call('GET', KEYS[2]) or ''
end
if pause > maxwait then return {0, pause, 1, reason} end
if interval <= 0 then
  if pause > 0 then return {1, pause, 1, reason} end
  return {1, 0, 0, ''}
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local newtat = tat + interval
local wait = newtat - burst * interval - now
if wait < 0 then wait = 0 end
if wait > maxwait then return {0, wait, 0, ''} end
redis.call('SET', KEYS[1], string.format('%.0f', newtat), 'PX', math.floor((newtat - now) / 1000) + 1)
if pause >= wait and pause > 0 then return {1, pause, 1, reason} end
return {1, wait, 0, ''}
`)

// undoScript gives back one token: KEYS[1] bucket, ARGV[1] emission interval µs.
var undoScript = redis.NewScript(`
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if not tat then return 0 end
redis.call('SET', KEYS[1], string.format('%.0f', tat - tonumber(ARGV[1])), 'KEEPTTL')
return 1
`)

// pauseScript: KEYS[1] pause key; ARGV[1] ms, ARGV[2] reason. A longer pause is kept.
var pauseScript = redis.NewScript(`
local cur = redis.call('PTTL', KEYS[1])
if cur >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return 1
`)

func interval(lim Limit) int64 {
	if lim.PerSecond <= 0 {
		return 0
	}
	return max(1, int64(1e6/lim.PerSecond))
}

// Reserve implements [Store].
func (r *Redis) Reserve(ctx context.Context, k Key, lim Limit, maxWait time.Duration) (Reservation, error) {
	if err := r.usable(); err != nil {
		return Reservation{}, err
	}
	bk, pk := r.keys(k)
	iv := interval(lim)
	res, err := r.run(ctx, reserveScript, []string{bk, pk}, iv, lim.burst(), max(0, maxWait.Microseconds()))
	if err != nil {
		return Reservation{}, err
	}
	vals, ok := res.([]any)
	if !ok || len(vals) != 4 {
		return Reservation{}, r.failed(fmt.Errorf("ratelimit: unexpected reply from Redis: %v", res))
	}
	okN, _ := vals[0].(int64)
	waitUS, _ := vals[1].(int64)
	paused, _ := vals[2].(int64)
	reason, _ := vals[3].(string)
	out := Reservation{OK: okN == 1, Wait: time.Duration(waitUS) * time.Microsecond, Paused: paused == 1, Reason: reason}
	if out.OK && iv > 0 {
		out.cancel = func(ctx context.Context) { _, _ = r.run(ctx, undoScript, []string{bk}, iv) }
	}
	return out, nil
}

// Pause implements [Store].
func (r *Redis) Pause(ctx context.Context, k Key, d time.Duration, reason string) error {
	if err := r.usable(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	_, pk := r.keys(k)
	_, err := r.run(ctx, pauseScript, []string{pk}, max(1, d.Milliseconds()), reason)
	return err
}

func (r *Redis) usable() error {
	select {
	case <-r.closed:
		return ErrStoreUnavailable
	default:
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return ErrStoreUnavailable
	}
	return nil
}

func (r *Redis) run(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
	octx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res, err := s.Run(octx, r.rdb, keys, args...).Result()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // the caller gave up: that says nothing about Redis
		}
		return nil, r.failed(err)
	}
	return res, nil
}

// failed marks the store unreachable and starts the probe.
func (r *Redis) failed(err error) error {
	count(&metrics.storeErrors)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.down {
		r.down = true
		count(&metrics.storeDown)
		r.log.Warn("ratelimit: Redis is unreachable; rate limits are enforced per replica at a reduced share until it answers",
			"error", err.Error(), "probe_every", r.probe.String())
	}
	if !r.probing {
		r.probing = true
		go r.probeLoop()
	}
	return fmt.Errorf("ratelimit: Redis: %w", errors.Join(ErrStoreUnavailable, err))
}

func (r *Redis) probeLoop() {
	t := time.NewTicker(r.probe)
	defer t.Stop()
	for {
		select {
		case <-r.closed:
			r.mu.Lock()
			r.probing = false
			r.mu.Unlock()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		err := r.rdb.Ping(ctx).Err()
		cancel()
		if err != nil {
			continue
		}
		r.mu.Lock()
		r.down, r.probing = false, false
		r.mu.Unlock()
		count(&metrics.storeUp)
		r.log.Info("ratelimit: Redis answers again; shared rate limits are back in force")
		return
	}
}
