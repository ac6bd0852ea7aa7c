package dbfunc

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// redisFunctions are the test's Redis functions; P is the test's own key prefix.
const redisFunctions = `
    - name: get_note
      redis: {command: GET, key: "P:tenant:{subject}:note:{0}"}
      params: [{name: id, schema: {type: [string, integer]}}]
    - name: get_notes
      redis: {command: MGET, key: "P:tenant:{subject}:note:{0}"}
      params: [{name: ids, schema: {type: array}}]
      max_rows: 3
    - name: get_big
      redis: {command: GET, key: "P:tenant:{subject}:big"}
      max_bytes: 100
    - name: customer
      redis: {command: HGETALL, key: "P:tenant:{subject}:customer:{0}"}
      params: [{name: id}]
      max_rows: 5
    - name: customer_email
      redis: {command: HGET, key: "P:tenant:{subject}:customer:{0}", field: email}
      params: [{name: id}]
    - name: customer_fields
      redis: {command: HMGET, key: "P:tenant:{subject}:customer:{0}", field: "{1}"}
      params: [{name: id}, {name: fields}]
    - name: feed
      redis: {command: LRANGE, key: "P:tenant:{subject}:feed"}
      max_rows: 3
    - name: feed_tail
      redis: {command: LRANGE, key: "P:tenant:{subject}:feed", range: ["-2", "-1"]}
    - name: top
      redis: {command: ZRANGE, key: "P:tenant:{subject}:scores"}
      max_rows: 3
    - name: top_from
      redis: {command: ZRANGEBYSCORE, key: "P:tenant:{subject}:scores", range: ["{0}", "+inf"]}
      params: [{name: min}]
      max_rows: 3
    - name: events
      redis: {command: XRANGE, key: "P:tenant:{subject}:events"}
      max_rows: 2
    - name: tags
      redis: {command: SMEMBERS, key: "P:tenant:{subject}:tags"}
      max_rows: 10
    - name: tag_count
      redis: {command: SCARD, key: "P:tenant:{subject}:tags"}
    - name: note_ttl
      redis: {command: TTL, key: "P:tenant:{subject}:note:{0}"}
      params: [{name: id}]
    - name: notes_exist
      redis: {command: EXISTS, key: "P:tenant:{subject}:note:{0}"}
      params: [{name: ids}]
    - name: save_note
      redis: {command: SET, key: "P:tenant:{subject}:note:{0}", value: "{1}", ttl_s: 60}
      params: [{name: id}, {name: text}]
      read_only: false
    - name: delete_notes
      redis: {command: DEL, key: "P:tenant:{subject}:note:{0}"}
      params: [{name: ids}]
      read_only: false
    - name: update_customer
      redis: {command: HSET, key: "P:tenant:{subject}:customer:{0}", fields: {email: "{1}"}}
      params: [{name: id}, {name: email}]
      read_only: false
    - name: log_event
      redis: {command: XADD, key: "P:tenant:{subject}:events", fields: {kind: "{0}"}, maxlen: 100}
      params: [{name: kind}]
      read_only: false
    - name: keep_note
      redis: {command: EXPIRE, key: "P:tenant:{subject}:note:{0}", ttl_s: 120}
      params: [{name: id}]
      read_only: false
`

// redisEnv is a test's Redis: its own key prefix and ACL user (password: the canary), confined
// by the server to keys under the prefix.
type redisEnv struct {
	prefix string
	admin  *redis.Client
	url    *url.URL // the test server
}

func newRedis(t *testing.T) *redisEnv {
	t.Helper()
	u, err := url.Parse(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(u.String())
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	e := &redisEnv{prefix: "airlock-t-" + hex.EncodeToString(b[:]), admin: redis.NewClient(opt), url: u}
	t.Cleanup(func() {
		ctx := context.Background()
		iter := e.admin.Scan(ctx, 0, e.prefix+":*", 100).Iterator()
		for iter.Next(ctx) {
			e.admin.Del(ctx, iter.Val())
		}
		e.admin.Close()
	})
	return e
}

// user makes an ACL user for the test whose password is the canary, with the given command
// rules, on the test's keys only, and returns its redis:// DSN.
func (e *redisEnv) user(t *testing.T, name string, rules ...string) string {
	t.Helper()
	user := e.prefix + "-" + name
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + canary, "~" + e.prefix + ":*", "-@all", "+hello", "+ping"}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := e.admin.Do(context.Background(), args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() { e.admin.Do(context.Background(), "ACL", "DELUSER", user) })
	u := *e.url
	u.User = url.UserPassword(user, canary)
	return u.String()
}

func (e *redisEnv) functions() string {
	return strings.ReplaceAll(redisFunctions, `"P:`, `"`+e.prefix+`:`)
}

// key is a key of tenant acme (or another tenant).
func (e *redisEnv) key(tenant, rest string) string {
	return e.prefix + ":tenant:" + tenant + ":" + rest
}

func callAs(db *DB, subject, fn string, params ...any) abi.DBResponse {
	req, _ := json.Marshal(map[string]any{"function": fn, "params": params})
	return db.Call(WithSubject(context.Background(), subject), req)
}

func (e *redisEnv) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, tenant := range []string{"acme", "globex"} {
		p := func(rest string) string { return e.key(tenant, rest) }
		e.admin.Set(ctx, p("note:1"), tenant+" note one", 0)
		e.admin.Set(ctx, p("note:2"), tenant+" note two", 0)
		e.admin.Set(ctx, p("big"), strings.Repeat("b", 10_000), 0)
		e.admin.HSet(ctx, p("customer:7"), "name", tenant+" Ada", "email", "ada@"+tenant+".example", "plan", "pro")
		e.admin.HSet(ctx, p("customer:8"), fieldsN(50)...)
		e.admin.RPush(ctx, p("feed"), "f1", "f2", "f3", "f4", "f5")
		e.admin.ZAdd(ctx, p("scores"), redis.Z{Score: 1, Member: "a"}, redis.Z{Score: 2, Member: "b"}, redis.Z{Score: 3, Member: "c"},
			redis.Z{Score: 4, Member: "d"}, redis.Z{Score: 5, Member: "e"})
		for i := range 5 {
			e.admin.XAdd(ctx, &redis.XAddArgs{Stream: p("events"), Values: []any{"n", i}})
		}
		for i := range 30 {
			e.admin.SAdd(ctx, p("tags"), fmt.Sprintf("tag%d", i))
		}
	}
}

func fieldsN(n int) []any {
	var kv []any
	for i := range n {
		kv = append(kv, fmt.Sprintf("f%d", i), i)
	}
	return kv
}

func TestRedisFunctionsReadTheirKeysWithinCaps(t *testing.T) {
	e := newRedis(t)
	e.seed(t)
	db, logs := openConns(t, e.user(t, "rw", "+@read", "+@write"), 2, e.functions())
	type want struct {
		rows      int
		truncated bool
		first     []any
	}
	for _, tc := range []struct {
		fn     string
		params []any
		want   want
	}{
		{"get_note", []any{1}, want{1, false, []any{"acme note one"}}},
		{"get_note", []any{"3"}, want{0, false, nil}},
		{"get_notes", []any{[]any{1, "3", 2}}, want{3, false, []any{"acme note one"}}},
		{"get_big", nil, want{0, true, nil}}, // 10,000 bytes, max_bytes 100
		{"customer", []any{7}, want{3, false, nil}},
		{"customer", []any{8}, want{5, true, nil}}, // 50 fields, max_rows 5
		{"customer_email", []any{7}, want{1, false, []any{"ada@acme.example"}}},
		{"customer_fields", []any{7, []any{"name", "nope"}}, want{2, false, []any{"name", "acme Ada"}}},
		{"feed", nil, want{3, true, []any{"f1"}}},
		{"feed_tail", nil, want{2, false, []any{"f4"}}},
		{"top", nil, want{3, true, []any{"a", float64(1)}}},
		{"top_from", []any{"(2"}, want{3, false, []any{"c", float64(3)}}},
		{"events", nil, want{2, true, nil}},
		{"tags", nil, want{10, true, nil}},
		{"tag_count", nil, want{1, false, []any{int64(30)}}},
		{"note_ttl", []any{1}, want{1, false, []any{int64(-1)}}},
		{"notes_exist", []any{[]any{1, 2, 9}}, want{1, false, []any{int64(2)}}},
	} {
		r := callAs(db, "acme", tc.fn, tc.params...)
		if r.Error != nil || len(r.Rows) != tc.want.rows || r.Truncated != tc.want.truncated {
			t.Errorf("%s%v = %d rows, truncated %v, err %+v; want %d, %v", tc.fn, tc.params, len(r.Rows), r.Truncated, r.Error, tc.want.rows, tc.want.truncated)
			continue
		}
		if tc.want.first != nil && fmt.Sprint(r.Rows[0]) != fmt.Sprint(tc.want.first) {
			t.Errorf("%s%v first row = %v, want %v", tc.fn, tc.params, r.Rows[0], tc.want.first)
		}
		if b, _ := json.Marshal(r.Rows); len(b) > 1<<20 {
			t.Errorf("%s: %d bytes", tc.fn, len(b))
		}
	}
	// The subject selects the tenant: globex reads its own note through the same function.
	if r := callAs(db, "globex", "get_note", 1); r.Error != nil || len(r.Rows) != 1 || r.Rows[0][0] != "globex note one" {
		t.Fatalf("get_note as globex = %+v", r)
	}
	noCanary(t, logs)
}

func TestRedisWritesRunOnceAndOnlyTheirCommand(t *testing.T) {
	e := newRedis(t)
	e.seed(t)
	ctx := context.Background()
	db, logs := openConns(t, e.user(t, "rw", "+@read", "+@write"), 2, e.functions())
	// A value is data, whatever it holds: RESP framing, a Lua script, a command line.
	for _, v := range []string{"\r\n*1\r\n$8\r\nFLUSHALL\r\n", "'; EVAL \"redis.call('flushall')\" 0 --", "x\x00y"} {
		r := callAs(db, "acme", "save_note", "5", v)
		if r.Error != nil || r.Affected != 1 {
			t.Fatalf("save_note(%q) = %+v", v, r)
		}
		if got := e.admin.Get(ctx, e.key("acme", "note:5")).Val(); got != v {
			t.Fatalf("stored %q, want %q verbatim", got, v)
		}
		if ttl := e.admin.TTL(ctx, e.key("acme", "note:5")).Val(); ttl <= 0 || ttl > time.Minute {
			t.Fatalf("SET left a TTL of %v, want the declared 60 s", ttl)
		}
	}
	if n := e.admin.Exists(ctx, e.key("globex", "note:1"), e.key("acme", "feed")).Val(); n != 2 {
		t.Fatalf("other keys are gone (%d of 2 left)", n)
	}
	if r := callAs(db, "acme", "update_customer", 7, "new@acme.example"); r.Error != nil || r.Affected != 0 {
		t.Fatalf("update_customer = %+v (an existing field: 0 added)", r)
	}
	if got := e.admin.HGet(ctx, e.key("acme", "customer:7"), "email").Val(); got != "new@acme.example" {
		t.Fatalf("email = %q", got)
	}
	r := callAs(db, "acme", "log_event", "signup")
	if r.Error != nil || r.Affected != 1 || len(r.Rows) != 1 {
		t.Fatalf("log_event = %+v", r)
	}
	if n := e.admin.XLen(ctx, e.key("acme", "events")).Val(); n != 6 {
		t.Fatalf("events = %d, want 6 (one XADD)", n)
	}
	if r := callAs(db, "acme", "keep_note", 1); r.Error != nil || r.Affected != 1 {
		t.Fatalf("keep_note = %+v", r)
	}
	if r := callAs(db, "acme", "delete_notes", []any{1, 2, 9}); r.Error != nil || r.Affected != 2 {
		t.Fatalf("delete_notes = %+v, want affected 2", r)
	}
	if n := e.admin.Exists(ctx, e.key("globex", "note:1"), e.key("globex", "note:2")).Val(); n != 2 {
		t.Fatalf("globex's notes were deleted by acme's call")
	}
	noCanary(t, logs, r)
}

// TestRedisKeysStayUnderTheirPrefix: a parameter or subject that would name a key outside the
// template's place (another tenant, a pattern, another segment) is refused before any command.
func TestRedisKeysStayUnderTheirPrefix(t *testing.T) {
	e := newRedis(t)
	e.seed(t)
	// monitor counts the commands the server runs, so a refusal is shown to send none.
	db, logs := openConns(t, e.user(t, "rw", "+@read", "+@write"), 2, e.functions())
	var resps []abi.DBResponse
	for _, v := range []any{
		"1:x", "../globex:note:1", "*", "1*", "?", "[12]", `1\`, "{acme}", "1\r\nFLUSHALL", "1\x00", "",
		strings.Repeat("9", 257), true, nil, map[string]any{"a": 1}, []any{1}, 1.5,
	} {
		for _, fn := range []string{"get_note", "save_note", "customer"} {
			params := []any{v}
			if fn == "save_note" {
				params = append(params, "pwned")
			}
			r := callAs(db, "acme", fn, params...)
			resps = append(resps, r)
			if r.Error == nil || r.Error.Code != abi.CodeInvalidArguments {
				t.Errorf("%s(%q) = %+v, want invalid_arguments", fn, v, r)
			}
		}
	}
	for _, ids := range []any{[]any{1, "2:x"}, []any{1, 2, 3, 4}, []any{}, []any{[]any{1}}} {
		r := callAs(db, "acme", "get_notes", ids)
		resps = append(resps, r)
		if r.Error == nil || r.Error.Code != abi.CodeInvalidArguments {
			t.Errorf("get_notes(%v) = %+v, want invalid_arguments", ids, r)
		}
	}
	// A subject that is not one key segment is refused too (an admin's matter, so fatal).
	for _, subject := range []string{"globex:note", "*", "acme\n"} {
		r := callAs(db, subject, "get_note", 1)
		resps = append(resps, r)
		if r.Error == nil || r.Error.Category != abi.Fatal || !strings.Contains(r.Error.Message, "subject") {
			t.Errorf("get_note as %q = %+v, want a fatal refusal naming the subject", subject, r)
		}
	}
	// Nothing was written anywhere.
	n := 0
	iter := e.admin.Scan(context.Background(), 0, e.prefix+":*", 100).Iterator()
	for iter.Next(context.Background()) {
		n++
	}
	if n != 2*9 {
		t.Fatalf("%d keys under the test's prefix, want the 18 seeded: a refused call wrote", n)
	}
	noCanary(t, logs, resps...)
}

// TestRedisReadsCannotWrite: every read function runs under a Redis user that may only read
// (the server's ACL), so a read sends no write command; a write function under that user is
// refused by the server, and the host says so.
func TestRedisReadsCannotWrite(t *testing.T) {
	e := newRedis(t)
	e.seed(t)
	db, logs := openConns(t, e.user(t, "ro", "+@read"), 2, e.functions())
	m := testManifest(t, e.functions())
	var resps []abi.DBResponse
	for _, f := range m.Database.Functions {
		params := make([]any, len(f.Params))
		for i := range params {
			params[i] = 7
			if strings.Contains(f.Params[i].Name, "ids") || f.Params[i].Name == "fields" {
				params[i] = []any{"name"}
			}
		}
		r := callAs(db, "acme", f.Name, params...)
		resps = append(resps, r)
		switch {
		case f.ReadOnly && r.Error != nil:
			t.Errorf("read %s under a read-only Redis user = %+v, want success", f.Name, r.Error)
		case !f.ReadOnly && (r.Error == nil || r.Error.Category != abi.Fatal || !strings.Contains(r.Error.Message, "ACL")):
			t.Errorf("write %s under a read-only Redis user = %+v, want the server's refusal", f.Name, r)
		}
	}
	if got := e.admin.HGet(context.Background(), e.key("acme", "customer:7"), "email").Val(); got != "ada@acme.example" {
		t.Fatalf("a write went through the read-only user: email = %q", got)
	}
	noCanary(t, logs, resps...)
}

// TestRedisTimeoutAndPool: a Redis slowed by a proxy makes a call fail as a timeout at its
// timeout_ms, and however many calls run at once the connector holds at most MaxConns
// connections to the server.
func TestRedisTimeoutAndPool(t *testing.T) {
	e := newRedis(t)
	e.seed(t)
	tp := testenv.StartToxiproxy(t)
	addr := tp.Proxy("redis", e.url.Host)
	u, _ := url.Parse(e.user(t, "rw", "+@read", "+@write"))
	u.Host = addr
	fns := e.functions() + "    - name: quick\n      redis: {command: GET, key: \"" + e.prefix + ":tenant:{subject}:note:1\"}\n      timeout_ms: 300\n"
	db, logs := openConns(t, u.String(), 2, fns)
	if r := callAs(db, "acme", "quick"); r.Error != nil || len(r.Rows) != 1 {
		t.Fatalf("quick before the fault = %+v", r)
	}
	tp.Toxic("redis", "slow", "latency", "downstream", map[string]any{"latency": 400})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := callAs(db, "acme", "get_note", 1); r.Error != nil {
				t.Errorf("get_note over a slow link = %+v (timeout_ms 5000)", r.Error)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	clients := e.admin.ClientList(context.Background()).Val()
	wg.Wait()
	if n := strings.Count(clients, "user="+e.prefix+"-rw "); n == 0 || n > 2 {
		t.Errorf("the server sees %d connections of the connector, want 1..2 (MaxConns 2)", n)
	}
	r := callAs(db, "acme", "quick")
	wantError(t, r, abi.CodeTimeout, abi.Retryable)
	if !strings.Contains(r.Error.Message, "300 ms") {
		t.Errorf("message %q does not name the limit", r.Error.Message)
	}
	tp.Clear("redis", "slow")
	time.Sleep(500 * time.Millisecond) // the late reply of the timed-out call drains
	if r := callAs(db, "acme", "quick"); r.Error != nil || len(r.Rows) != 1 {
		t.Fatalf("quick after the fault = %+v", r)
	}
	noCanary(t, logs, r)
}

func TestRedisDSNNeverLeaks(t *testing.T) {
	e := newRedis(t)
	good := e.user(t, "rw", "+@read")
	wrong := strings.Replace(good, canary, canary+"-wrong", 1)
	for _, dsn := range []string{
		"redis://airlock:" + canary + "@127.0.0.1:1/0?dial_timeout=2s",
		"rediss://" + canary + ":" + canary + "@127.0.0.1:1/0",
		wrong,
	} {
		db, logs := openConns(t, dsn, 1, e.functions())
		r := callAs(db, "acme", "get_note", 1)
		if r.Error == nil {
			t.Fatalf("a call with a bad DSN succeeded: %+v", r)
		}
		noCanary(t, logs, r)
	}
	for _, dsn := range []string{"redis://u:" + canary + "@h:port/0", "redis://u:" + canary + "@h/notanumber"} {
		if _, err := Open(Config{DSN: secret.New(dsn)}); err == nil || strings.Contains(err.Error(), canary) {
			t.Errorf("Open(malformed redis DSN) = %v, want ErrDSN without the DSN", err)
		}
	}
	// A Redis function on an SQL database, and an SQL function on Redis, are refused clearly.
	fns := testManifest(t, e.functions()+"    - {name: plain, sql: SELECT 1}\n").Database.Functions
	granted := map[string]*manifest.DBFunction{}
	for i := range fns {
		granted[fns[i].Name] = &fns[i]
	}
	onRedis, err := Open(Config{DSN: secret.New(good), Declared: fns, Granted: granted, Scrubber: scrub.New(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer onRedis.Close()
	if r := callAs(onRedis, "acme", "plain"); r.Error == nil || !strings.Contains(r.Error.Message, "Redis") {
		t.Errorf("an SQL function on Redis = %+v", r)
	}
	b := newBackend(t, "sqlite")
	onSQL, err := Open(Config{DSN: secret.New(b.dsn), Declared: fns, Granted: granted, Scrubber: scrub.New(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer onSQL.Close()
	if r := callAs(onSQL, "acme", "get_note", 1); r.Error == nil || !strings.Contains(r.Error.Message, "redis://") {
		t.Errorf("a Redis function on SQLite = %+v", r)
	}
}

// TestRedisRefusesUnparsedEscapes: functions built without manifest.Parse (which refuses them)
// are refused by the host too: a write declared as a read, commands off the allow-list, a key
// template without a literal prefix.
func TestRedisRefusesUnparsedEscapes(t *testing.T) {
	e := newRedis(t)
	e.seed(t)
	raw := func(name string, rc manifest.RedisCommand, params ...string) manifest.DBFunction {
		f := manifest.DBFunction{Name: name, Redis: &rc, ReadOnly: true, MaxRows: 100, MaxBytes: 1 << 20, TimeoutMS: 5000}
		for _, p := range params {
			f.Params = append(f.Params, manifest.DBParam{Name: p})
		}
		return f
	}
	db, logs := openConns(t, e.user(t, "rw", "+@all"), 1, "    - {name: plain, redis: {command: GET, key: \""+e.prefix+":x\"}}\n",
		raw("sneaky_set", manifest.RedisCommand{Command: "SET", Key: e.prefix + ":tenant:{subject}:note:1", Value: "pwned", TTLS: 60}),
		raw("flush", manifest.RedisCommand{Command: "FLUSHDB", Key: e.prefix + ":x"}),
		raw("keys", manifest.RedisCommand{Command: "KEYS", Key: e.prefix + ":*"}),
		raw("lowercase", manifest.RedisCommand{Command: "get", Key: e.prefix + ":x"}),
		raw("unprefixed", manifest.RedisCommand{Command: "GET", Key: "{0}"}, "key"),
	)
	var resps []abi.DBResponse
	for _, fn := range []string{"sneaky_set", "flush", "keys", "lowercase", "unprefixed"} {
		r := callAs(db, "acme", fn, []any{"anything"}[:len(db.granted[fn].Params)]...)
		resps = append(resps, r)
		if r.Error == nil || r.Error.Category != abi.Fatal {
			t.Errorf("%s = %+v, want a fatal refusal", fn, r)
		}
	}
	if got := e.admin.Get(context.Background(), e.key("acme", "note:1")).Val(); got != "acme note one" {
		t.Fatalf("note 1 = %q: a write declared as a read ran", got)
	}
	noCanary(t, logs, resps...)
}

// TestRedisCommandsSentAreBounded watches the server (MONITOR) while every read function runs
// over large values: each command the host sent is a bounded one (a range clamped to max_rows +
// 1, a COUNT or LIMIT, a page of HSCAN/SSCAN, a GETRANGE of max_bytes + 1 bytes), never one that
// makes the server produce a whole hash, set, list or value.
func TestRedisCommandsSentAreBounded(t *testing.T) {
	e := newRedis(t)
	e.seed(t)
	ctx := context.Background()
	e.admin.Eval(ctx, "for i=1,20000 do redis.call('HSET', KEYS[1], 'f'..i, i); redis.call('SADD', KEYS[2], 'm'..i); redis.call('RPUSH', KEYS[3], i); redis.call('ZADD', KEYS[4], i, 'z'..i) end return 1",
		[]string{e.key("acme", "customer:8"), e.key("acme", "tags"), e.key("acme", "feed"), e.key("acme", "scores")})
	db, _ := openConns(t, e.user(t, "rw", "+@read"), 1, e.functions())

	mon, err := net.Dial("tcp", e.url.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	fmt.Fprint(mon, "MONITOR\r\n")
	lines := bufio.NewScanner(mon)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	if !lines.Scan() || lines.Text() != "+OK" {
		t.Fatalf("MONITOR: %q", lines.Text())
	}
	m := testManifest(t, e.functions())
	maxRows := map[string]int{}
	for _, f := range m.Database.Functions {
		if !f.ReadOnly {
			continue
		}
		params := make([]any, len(f.Params))
		for i := range params {
			params[i] = 8
			if f.Params[i].Name == "ids" || f.Params[i].Name == "fields" {
				params[i] = []any{"f1", "f2"}
			}
			if f.Params[i].Name == "min" {
				params[i] = "-inf"
			}
		}
		if r := callAs(db, "acme", f.Name, params...); r.Error != nil {
			t.Fatalf("%s = %+v", f.Name, r.Error)
		}
		maxRows[f.Redis.Command] = max(maxRows[f.Redis.Command], f.MaxRows)
	}
	done := e.prefix + "-done"
	e.admin.Echo(ctx, done)
	sent := 0
	for lines.Scan() {
		line := lines.Text()
		if strings.Contains(line, done) {
			break
		}
		if !strings.Contains(line, e.prefix+":tenant:acme:") {
			continue
		}
		sent++
		args := strings.Split(line[strings.Index(line, `] "`)+3:len(line)-1], `" "`)
		cmd, n := strings.ToUpper(args[0]), func(i int) int { v, _ := strconv.Atoi(args[i]); return v }
		switch cmd {
		case "EXISTS", "HGET", "HMGET", "TTL", "SCARD", "LLEN", "ZCARD":
		case "GETRANGE":
			if n(3) > 1<<20 {
				t.Errorf("sent %s: a value read past max_bytes", line)
			}
		case "HSCAN", "SSCAN":
			if len(args) != 5 || strings.ToUpper(args[3]) != "COUNT" || n(4) > 100 {
				t.Errorf("sent %s: a scan page without a small COUNT", line)
			}
		case "LRANGE", "ZRANGE":
			if n(3)-n(2) > maxRows[cmd] || n(2) < 0 || n(3) < 0 {
				t.Errorf("sent %s: a range wider than max_rows + 1 (%d)", line, maxRows[cmd])
			}
		case "ZRANGEBYSCORE":
			if !strings.Contains(line, `"limit" "0" "`+strconv.Itoa(maxRows[cmd]+1)+`"`) {
				t.Errorf("sent %s: no LIMIT of max_rows + 1", line)
			}
		case "XRANGE":
			if !strings.Contains(line, `"count" "`+strconv.Itoa(maxRows[cmd]+1)+`"`) {
				t.Errorf("sent %s: no COUNT of max_rows + 1", line)
			}
		default:
			t.Errorf("sent %s: not a bounded read", line)
		}
	}
	if sent < len(maxRows) {
		t.Fatalf("saw %d commands of the functions, want at least %d", sent, len(maxRows))
	}
}
