package dbfunc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

// redisDB runs functions declared with a Redis command (manifest.RedisCommand) through go-redis:
//
//   - a function runs exactly its declared command, from an allow-list checked when the manifest
//     is parsed (reads: GET … SMEMBERS; writes: SET with EX, DEL, HSET, XADD with MAXLEN,
//     EXPIRE); the host builds the command itself, so a read sends only read commands;
//   - the key is the declared template filled with the call's subject and the parameters, each
//     of which must be one key segment: 1..256 bytes without ':', glob characters, braces or
//     control characters, so no value reaches a key outside the template's literal prefix;
//   - values travel as RESP bulk strings (length-prefixed), never as command text;
//   - the work is bounded at the server: ranges are clamped to max_rows + 1 elements (LRANGE and
//     ZRANGE resolve negative indexes first), ZRANGEBYSCORE and XRANGE carry LIMIT/COUNT, whole
//     hashes and sets are read with HSCAN/SSCAN on their one key until the cap, and GET reads at
//     most max_bytes + 1 bytes of a value (GETRANGE);
//   - the timeout is the call's context (go-redis sets the socket deadlines from it); commands
//     are never retried, so a write runs at most once.
type redisDB struct{ c *redis.Client }

func openRedis(raw string, s *scrub.Scrubber, maxConns int) (backend, error) {
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, ErrDSN
	}
	if opt.Password != "" {
		s.Add(opt.Password)
	}
	if u, err := url.Parse(raw); err == nil {
		addPassword(s, u)
	}
	opt.PoolSize, opt.MaxActiveConns, opt.MaxIdleConns = maxConns, maxConns, maxConns
	opt.PipelinePoolSize = -1 // pipelines share the bounded pool (go-redis gives them 10 more by default)
	opt.ContextTimeoutEnabled = true
	opt.ReadTimeout, opt.WriteTimeout = time.Minute, time.Minute // the call's context bounds each command
	opt.MaxRetries = -1                                          // a write runs at most once
	opt.DisableIdentity = true
	return &redisDB{c: redis.NewClient(opt)}, nil
}

func (r *redisDB) close() error { return r.c.Close() }

// Redis functions get their parameters as JSON (an array names several keys); the backend
// interface's read and write are not used.
func (r *redisDB) read(context.Context, *manifest.DBFunction, []any) (abi.DBResponse, error) {
	return abi.DBResponse{}, errNotRedis
}
func (r *redisDB) write(context.Context, *manifest.DBFunction, []any) (abi.DBResponse, error) {
	return abi.DBResponse{}, errNotRedis
}

var (
	// errNotRedis: an SQL function on a Redis database.
	errNotRedis = errors.New("dbfunc: an SQL function on a Redis database")
	// errRedisOnSQL: a Redis function on an SQL database.
	errRedisOnSQL = errors.New("dbfunc: a Redis function on an SQL database")
)

// subjectKey carries the call's subject to Call (see WithSubject).
type subjectKey struct{}

// WithSubject returns ctx carrying the calling subject, which a Redis key template's {subject}
// names. Without it, {subject} is "default" (the host's subject when the caller names none).
func WithSubject(ctx context.Context, subject string) context.Context {
	return context.WithValue(ctx, subjectKey{}, subject)
}

func subjectOf(ctx context.Context) string {
	if s, _ := ctx.Value(subjectKey{}).(string); s != "" {
		return s
	}
	return "default"
}

// subjectError is a subject that cannot be a key segment.
type subjectError struct{ reason string }

func (e *subjectError) Error() string { return "dbfunc: the subject " + e.reason }

// segment checks that v can be one key segment; the reason is for the agent.
func segment(v string) string {
	switch {
	case v == "":
		return "is empty, and a key part must not be"
	case len(v) > 256:
		return "is longer than 256 bytes, the most a key part may be"
	case strings.ContainsAny(v, ":*?[]\\{}"):
		return "holds ':', a glob character (* ? [ ] \\) or a brace, which a key part must not (it would name another key)"
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "holds a control character, which a key part must not"
	}
	return ""
}

// text converts a parameter to the text Redis gets. In a key, only strings and integers.
func text(raw json.RawMessage, key bool) (string, string) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", "is not a JSON value"
	}
	switch x := v.(type) {
	case string:
		if key {
			return x, segment(x)
		}
		return x, ""
	case json.Number:
		if _, err := x.Int64(); key && err != nil {
			return "", "must be a string or an integer to be part of a key"
		}
		return x.String(), ""
	case nil:
		return "", "must not be null"
	case bool:
		if key {
			return "", "must be a string or an integer to be part of a key"
		}
		return strconv.FormatBool(x), ""
	default:
		if key {
			return "", "must be a string or an integer to be part of a key"
		}
		return string(bytes.TrimSpace(raw)), ""
	}
}

// fill fills a template. With many, a parameter that is an array gives one result per element
// (at most limit); otherwise an array is refused.
func fill(tmpl string, params []json.RawMessage, subject string, key, many bool, limit int) ([]string, error) {
	parts, err := manifest.ParseTemplate(tmpl)
	if err != nil {
		return nil, &statementError{reason: "its template " + err.Error()}
	}
	out := []string{""}
	expanded := false
	for _, p := range parts {
		var vals []string
		switch {
		case p.Subject:
			if why := segment(subject); why != "" {
				return nil, &subjectError{reason: why}
			}
			vals = []string{subject}
		case p.Param >= 0:
			if p.Param >= len(params) {
				return nil, &statementError{reason: fmt.Sprintf("its template uses {%d}, which it does not declare", p.Param)}
			}
			raw := bytes.TrimSpace(params[p.Param])
			if len(raw) > 0 && raw[0] == '[' {
				var elems []json.RawMessage
				switch {
				case !many || expanded:
					return nil, &paramError{index: p.Param, reason: "must not be an array here"}
				case json.Unmarshal(raw, &elems) != nil || len(elems) == 0:
					return nil, &paramError{index: p.Param, reason: "must be a non-empty array"}
				case len(elems) > limit:
					return nil, &paramError{index: p.Param, reason: fmt.Sprintf("names %d keys or fields, more than the function's max_rows (%d)", len(elems), limit)}
				}
				expanded = true
				for _, e := range elems {
					v, why := text(e, key)
					if why != "" {
						return nil, &paramError{index: p.Param, reason: "has an element that " + why}
					}
					vals = append(vals, v)
				}
				break
			}
			v, why := text(raw, key)
			if why != "" {
				return nil, &paramError{index: p.Param, reason: why}
			}
			vals = []string{v}
		default:
			vals = []string{p.Literal}
		}
		next := make([]string, 0, len(out)*len(vals))
		for _, o := range out {
			for _, v := range vals {
				next = append(next, o+v)
			}
		}
		out = next
	}
	return out, nil
}

// firstParam is the index of the first parameter in tmpl, or -1.
func firstParam(tmpl string) int {
	parts, _ := manifest.ParseTemplate(tmpl)
	for _, p := range parts {
		if p.Param >= 0 {
			return p.Param
		}
	}
	return -1
}

var (
	scoreBound  = regexp.MustCompile(`^\(?([-+]?inf|[-+]?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)$`)
	streamBound = regexp.MustCompile(`^(-|\+|\(?[0-9]{1,20}(-[0-9]{1,20})?)$`)
)

// bounds fills a ranged command's two bounds and checks their form.
func bounds(rc *manifest.RedisCommand, params []json.RawMessage, subject string, def [2]string, valid func(string) bool, what string) ([2]string, error) {
	b := def
	for i, tmpl := range rc.Range {
		v, err := fill(tmpl, params, subject, false, false, 0)
		if err != nil {
			return b, err
		}
		if !valid(v[0]) {
			if p := firstParam(tmpl); p >= 0 {
				return b, &paramError{index: p, reason: "must be " + what}
			}
			return b, &statementError{reason: fmt.Sprintf("its range bound %q is not %s", tmpl, what)}
		}
		b[i] = v[0]
	}
	return b, nil
}

func isInt(s string) bool { _, err := strconv.ParseInt(s, 10, 64); return err == nil }

// call runs a Redis function with its parameters as sent (validated against their schemas).
func (r *redisDB) call(ctx context.Context, f *manifest.DBFunction, params []json.RawMessage) (abi.DBResponse, error) {
	rc := f.Redis
	if problems := f.RedisProblems(); len(problems) > 0 { // Parse refuses these; a manifest built otherwise
		return abi.DBResponse{}, &statementError{reason: problems[0]}
	}
	subject := subjectOf(ctx)
	keys, err := fill(rc.Key, params, subject, true, manifest.RedisMultiKey(rc.Command), f.MaxRows)
	if err != nil {
		return abi.DBResponse{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.Timeout())
	defer cancel()
	c := newCollector(f, false)
	rows := func(cols ...string) { c.resp.Columns = cols }
	key := keys[0]
	switch rc.Command {
	case "GET", "MGET":
		// At most max_bytes + 1 bytes of each value leave the server; EXISTS tells a missing
		// key from an empty value.
		rows("value")
		pipe := r.c.Pipeline()
		exists := make([]*redis.IntCmd, len(keys))
		vals := make([]*redis.StringCmd, len(keys))
		for i, k := range keys {
			exists[i] = pipe.Exists(ctx, k)
			vals[i] = pipe.GetRange(ctx, k, 0, int64(f.MaxBytes))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return abi.DBResponse{}, err
		}
		for i := range keys {
			switch {
			case exists[i].Val() == 0 && rc.Command == "GET":
			case exists[i].Val() == 0:
				c.keep([]any{nil})
			default:
				c.keep([]any{vals[i].Val()})
			}
		}
	case "HGET":
		rows("value")
		field, err := fill(rc.Field, params, subject, false, false, 0)
		if err != nil {
			return abi.DBResponse{}, err
		}
		v, err := r.c.HGet(ctx, key, field[0]).Result()
		if err == redis.Nil {
			break
		} else if err != nil {
			return abi.DBResponse{}, err
		}
		c.keep([]any{v})
	case "HMGET":
		rows("field", "value")
		fields, err := fill(rc.Field, params, subject, false, true, f.MaxRows)
		if err != nil {
			return abi.DBResponse{}, err
		}
		vals, err := r.c.HMGet(ctx, key, fields...).Result()
		if err != nil {
			return abi.DBResponse{}, err
		}
		for i, v := range vals {
			c.keep([]any{fields[i], v})
		}
	case "HGETALL", "SMEMBERS":
		// HSCAN / SSCAN over the one key, until the cap: a huge hash or set is never sent whole.
		if rc.Command == "HGETALL" {
			rows("field", "value")
		} else {
			rows("member")
		}
		seen := map[string]bool{}
		for cursor := uint64(0); ; {
			var page []string
			var err error
			if rc.Command == "HGETALL" {
				page, cursor, err = r.c.HScan(ctx, key, cursor, "", 100).Result()
			} else {
				page, cursor, err = r.c.SScan(ctx, key, cursor, "", 100).Result()
			}
			if err != nil {
				return abi.DBResponse{}, err
			}
			step := 1
			if rc.Command == "HGETALL" {
				step = 2
			}
			for i := 0; i+step <= len(page) && !c.done(); i += step {
				if seen[page[i]] { // SCAN may return an element twice
					continue
				}
				seen[page[i]] = true
				if step == 2 {
					c.keep([]any{page[i], page[i+1]})
				} else {
					c.keep([]any{page[i]})
				}
			}
			if cursor == 0 || c.done() {
				break
			}
		}
	case "EXISTS", "TTL", "SCARD":
		var n int64
		var err error
		switch rc.Command {
		case "EXISTS":
			rows("count")
			n, err = r.c.Exists(ctx, keys...).Result()
		case "TTL":
			rows("ttl_s")
			n, err = r.c.Do(ctx, "TTL", key).Int64()
		default:
			rows("count")
			n, err = r.c.SCard(ctx, key).Result()
		}
		if err != nil {
			return abi.DBResponse{}, err
		}
		c.keep([]any{n})
	case "LRANGE", "ZRANGE":
		b, err := bounds(rc, params, subject, [2]string{"0", "-1"}, isInt, "an integer index")
		if err != nil {
			return abi.DBResponse{}, err
		}
		start, _ := strconv.ParseInt(b[0], 10, 64)
		stop, _ := strconv.ParseInt(b[1], 10, 64)
		if start < 0 || stop < 0 { // resolve from the end, so the range can be clamped
			var n int64
			if rc.Command == "LRANGE" {
				n, err = r.c.LLen(ctx, key).Result()
			} else {
				n, err = r.c.ZCard(ctx, key).Result()
			}
			if err != nil {
				return abi.DBResponse{}, err
			}
			if start < 0 {
				start = max(0, n+start)
			}
			if stop < 0 {
				stop = n + stop
			}
		}
		stop = min(stop, start+int64(f.MaxRows))
		if stop < start {
			rows("value")
			break
		}
		if rc.Command == "LRANGE" {
			rows("value")
			vals, err := r.c.LRange(ctx, key, start, stop).Result()
			if err != nil {
				return abi.DBResponse{}, err
			}
			for _, v := range vals {
				c.keep([]any{v})
			}
			break
		}
		rows("member", "score")
		if err := keepScored(c, r.c.ZRangeWithScores(ctx, key, start, stop)); err != nil {
			return abi.DBResponse{}, err
		}
	case "ZRANGEBYSCORE":
		b, err := bounds(rc, params, subject, [2]string{"-inf", "+inf"}, scoreBound.MatchString, "a score (a number, -inf or +inf, with ( for an open bound)")
		if err != nil {
			return abi.DBResponse{}, err
		}
		rows("member", "score")
		if err := keepScored(c, r.c.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: b[0], Max: b[1], Count: int64(f.MaxRows) + 1})); err != nil {
			return abi.DBResponse{}, err
		}
	case "XRANGE":
		b, err := bounds(rc, params, subject, [2]string{"-", "+"}, streamBound.MatchString, "a stream entry ID (1700000000000-0, - or +)")
		if err != nil {
			return abi.DBResponse{}, err
		}
		rows("id", "fields")
		msgs, err := r.c.XRangeN(ctx, key, b[0], b[1], int64(f.MaxRows)+1).Result()
		if err != nil {
			return abi.DBResponse{}, err
		}
		for _, m := range msgs {
			c.keep([]any{m.ID, m.Values})
		}
	default:
		return r.writeCommand(ctx, f, keys, params, subject)
	}
	return c.result(), nil
}

func (r *redisDB) writeCommand(ctx context.Context, f *manifest.DBFunction, keys []string, params []json.RawMessage, subject string) (abi.DBResponse, error) {
	rc := f.Redis
	fieldArgs := func() ([]any, error) {
		var args []any
		for _, name := range sortedKeys(rc.Fields) {
			v, err := fill(rc.Fields[name], params, subject, false, false, 0)
			if err != nil {
				return nil, err
			}
			args = append(args, name, v[0])
		}
		return args, nil
	}
	var resp abi.DBResponse
	switch rc.Command {
	case "SET":
		v, err := fill(rc.Value, params, subject, false, false, 0)
		if err != nil {
			return resp, err
		}
		if err := r.c.Set(ctx, keys[0], v[0], time.Duration(rc.TTLS)*time.Second).Err(); err != nil {
			return resp, err
		}
		resp.Affected = 1
	case "DEL":
		n, err := r.c.Del(ctx, keys...).Result()
		if err != nil {
			return resp, err
		}
		resp.Affected = n
	case "EXPIRE":
		ok, err := r.c.Expire(ctx, keys[0], time.Duration(rc.TTLS)*time.Second).Result()
		if err != nil {
			return resp, err
		}
		if ok {
			resp.Affected = 1
		}
	case "HSET":
		args, err := fieldArgs()
		if err != nil {
			return resp, err
		}
		if resp.Affected, err = r.c.HSet(ctx, keys[0], args...).Result(); err != nil {
			return resp, err
		}
	case "XADD":
		args, err := fieldArgs()
		if err != nil {
			return resp, err
		}
		id, err := r.c.XAdd(ctx, &redis.XAddArgs{Stream: keys[0], MaxLen: int64(rc.MaxLen), Approx: true, Values: args}).Result()
		if err != nil {
			return resp, err
		}
		resp.Columns, resp.Rows, resp.Affected = []string{"id"}, [][]any{{id}}, 1
	default:
		return resp, &statementError{reason: "its command " + rc.Command + " is not one the host runs"}
	}
	return resp, nil
}

// keepScored collects a sorted set's members with their scores.
func keepScored(c *collector, cmd *redis.ZSliceCmd) error {
	zs, err := cmd.Result()
	for _, z := range zs {
		c.keep([]any{z.Member, jsonValue(z.Score)})
	}
	return err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// redisError maps a Redis failure to the taxonomy (ok false: not one).
func redisError(err error, f *manifest.DBFunction, timeout, unavailable *abi.Error, refused func(string) *abi.Error) (*abi.Error, bool) {
	var se *subjectError
	switch {
	case errors.As(err, &se):
		return &abi.Error{Code: "database_error", Category: abi.Fatal, Message: fmt.Sprintf(
			"database function %s names a Redis key by the caller's subject, and the subject %s; an admin must give this caller a subject without such characters", f.Name, se.reason)}, true
	case errors.Is(err, errNotRedis):
		return refused("it is an SQL function and the grant's database is Redis (redis://); the grant's database.dsn must name an SQL database"), true
	case errors.Is(err, errRedisOnSQL):
		return refused("it is a Redis function and the grant's database is not Redis; the grant's database.dsn must be redis:// or rediss://"), true
	case errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolExhausted):
		return unavailable, true
	}
	var re redis.Error
	if !errors.As(err, &re) {
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() && f.Redis != nil {
			return timeout, true
		}
		return nil, false
	}
	msg := re.Error()
	switch {
	case strings.HasPrefix(msg, "WRONGTYPE"):
		return &abi.Error{Code: abi.CodeInvalidArguments, Category: abi.Correctable, Message: fmt.Sprintf(
			"database function %s: the key these arguments name holds another kind of value than %s reads; check the identifiers", f.Name, f.Redis.Command)}, true
	case strings.HasPrefix(msg, "NOPERM"):
		if f.ReadOnly {
			return refused("the Redis user of the grant's DSN may not run it (ACL)"), true
		}
		return refused("the Redis user of the grant's DSN may not write this key (ACL)"), true
	case strings.HasPrefix(msg, "READONLY"):
		return refused("the Redis server is a read-only replica"), true
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"):
		return refused("the host could not sign in to Redis (an admin must check the grant's DSN)"), true
	case strings.HasPrefix(msg, "LOADING"), strings.HasPrefix(msg, "BUSY"), strings.HasPrefix(msg, "TRYAGAIN"),
		strings.HasPrefix(msg, "CLUSTERDOWN"), strings.HasPrefix(msg, "MASTERDOWN"), strings.HasPrefix(msg, "OOM"):
		return unavailable, true
	}
	return refused("the command failed"), true
}
