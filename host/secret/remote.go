package secret

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
)

// jsonField returns the string at key of the JSON object payload, the secret named by ref
// (where is "gcp-sm: projects/…" for messages). The error lists the keys present, never a
// value.
func jsonField(payload, key, where, ref string) (Value, error) {
	var obj map[string]any
	if err := json.Unmarshal([]byte(payload), &obj); err != nil || obj == nil {
		return Value{}, fmt.Errorf("%s is not a JSON object, so it has no key %q: remove '#%s' from the reference %s or store the secret as a JSON object: %w", where, key, key, ref, ErrNotFound)
	}
	raw, ok := obj[key]
	if !ok {
		names := make([]string, 0, len(obj))
		for k := range obj {
			names = append(names, k)
		}
		slices.Sort(names)
		return Value{}, fmt.Errorf("%s has no key %q (it has %s): fix the key after '#' in %s: %w", where, key, fieldList(names), ref, ErrNotFound)
	}
	s, ok := raw.(string)
	if !ok {
		return Value{}, fmt.Errorf("%s: key %q is %s, not a string: store the secret as a string value (reference %s)", where, key, jsonKind(raw), ref)
	}
	if s == "" {
		return Value{}, fmt.Errorf("%s: key %q is empty: write the secret into it (reference %s): %w", where, key, ref, ErrNotFound)
	}
	return New(s), nil
}

// validJSONKey reports whether k can be the key after '#' in a reference.
func validJSONKey(k string) bool { return validVaultField(k) }

type rereadKey struct{}

// Reread returns a context that makes a [Source] with a cache of its own ([GCPSecretManager],
// [AzureKeyVault]) read the secret from its manager again instead of answering from that
// cache: the caller knows the value it holds was refused (an upstream answered 401), so a
// rotated secret must be seen now, not after the source's cache TTL.
func Reread(ctx context.Context) context.Context {
	return context.WithValue(ctx, rereadKey{}, true)
}

// rereading reports whether ctx comes from [Reread].
func rereading(ctx context.Context) bool {
	b, _ := ctx.Value(rereadKey{}).(bool)
	return b
}

// maxCacheEntries bounds a remote source's cache: past it the cache starts again empty.
const maxCacheEntries = 1024

// ttlCache keeps what a remote source read (a payload, never an error) for ttl; ttl <= 0 keeps
// nothing. Safe for concurrent use.
type ttlCache[T any] struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]ttlEntry[T]
}

type ttlEntry[T any] struct {
	v       T
	expires time.Time
}

func newTTLCache[T any](ttl time.Duration, now func() time.Time) *ttlCache[T] {
	return &ttlCache[T]{ttl: ttl, now: now, m: map[string]ttlEntry[T]{}}
}

// get returns the value kept under key unless it has expired or ctx asks for a [Reread].
func (c *ttlCache[T]) get(ctx context.Context, key string) (T, bool) {
	var zero T
	if c.ttl <= 0 || rereading(ctx) {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !c.now().Before(e.expires) {
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[T]) put(key string, v T) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCacheEntries {
		clear(c.m)
	}
	c.m[key] = ttlEntry[T]{v: v, expires: c.now().Add(c.ttl)}
}
