package secret

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// badRef is the error for a malformed reference of scheme: why, then the syntax. Never the
// reference itself: it may be a secret pasted by mistake.
func badRef(scheme, why, help string) error {
	return fmt.Errorf("%s source: %s: %s: %w", scheme, why, help, ErrBadReference)
}

// cutRemoteRef checks that ref is "scheme:LOCATION[#KEY]" and returns LOCATION and KEY.
func cutRemoteRef(ref, scheme, help string) (loc, key string, err error) {
	s, rest, ok := splitRef(ref)
	if !ok || s != scheme {
		return "", "", badRef(scheme, `the reference does not start with "`+scheme+`:"`, help)
	}
	loc, key, ok = strings.Cut(rest, "#")
	if ok && !validJSONKey(key) {
		return "", "", badRef(scheme, "the JSON key after '#' is empty or has control characters", help)
	}
	return loc, key, nil
}

// remoteValue returns the secret at loc of a remote source: from cache, else read (and kept);
// then its JSON key when the reference names one. where ("gcp-sm: projects/…") and ref name it
// in errors.
func remoteValue(ctx context.Context, cache *ttlCache[string], loc string, read func(context.Context) (string, error), key, where, ref string) (Value, error) {
	v, ok := cache.get(ctx, loc)
	if !ok {
		var err error
		if v, err = read(ctx); err != nil {
			return Value{}, err
		}
		cache.put(loc, v)
	}
	if key != "" {
		return jsonField(v, key, where, ref)
	}
	if v == "" {
		return Value{}, fmt.Errorf("%s is empty: store the secret in it (reference %s): %w", where, ref, ErrNotFound)
	}
	return New(v), nil
}

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

// newTTLCache returns a cache (manager.go) keeping values for ttl.
func newTTLCache[T any](ttl time.Duration, now func() time.Time) *ttlCache[T] {
	return &ttlCache[T]{ttl: ttl, now: now, m: map[string]ttlEntry[T]{}}
}
