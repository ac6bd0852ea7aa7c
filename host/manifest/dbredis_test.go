package manifest

import (
	"slices"
	"strings"
	"testing"
)

func redisManifest(fn string) string {
	return `abi: 1
name: t
version: 1.0.0
publisher: t
description: t
module: {path: t.wasm}
database:
  functions:
` + fn + `
tools: [{name: t, function: f, description: t, input_schema: {type: object}}]
`
}

// TestParseRefusesRedisEscapes: what a publisher might declare to reach the whole key space, run
// scripts or reconfigure the server is refused when the manifest is read, with what to do.
func TestParseRefusesRedisEscapes(t *testing.T) {
	for _, tc := range []struct{ fn, says string }{
		{`    - {name: f, redis: {command: KEYS, key: "tenant:*"}}`, `command "KEYS" is not allowed`},
		{`    - {name: f, redis: {command: keys, key: "tenant:x"}}`, `command "KEYS" is not allowed`},
		{`    - {name: f, redis: {command: SCAN, key: "tenant:x"}}`, "SCAN"},
		{`    - {name: f, redis: {command: EVAL, key: "tenant:x"}}`, "EVAL"},
		{`    - {name: f, redis: {command: EVALSHA, key: "tenant:x"}}`, "is not allowed"},
		{`    - {name: f, redis: {command: FUNCTION, key: "tenant:x"}}`, "is not allowed"},
		{`    - {name: f, redis: {command: CONFIG, key: "tenant:x"}}`, "is not allowed"},
		{`    - {name: f, redis: {command: FLUSHALL, key: "tenant:x"}}`, "is not allowed"},
		{`    - {name: f, redis: {command: FLUSHDB, key: "tenant:x"}}`, "is not allowed"},
		{`    - {name: f, redis: {command: MULTI, key: "tenant:x"}}`, "is not allowed"},
		{`    - {name: f, redis: {command: "GET tenant:x", key: "tenant:x"}}`, "is not allowed"},
		{`    - {name: f, redis: {command: SET, key: "tenant:x", value: v, ttl_s: 60}}`, "SET writes: set read_only: false"},
		{`    - {name: f, read_only: false, redis: {command: SET, key: "tenant:x", value: v}}`, "SET needs ttl_s"},
		{`    - {name: f, read_only: false, redis: {command: XADD, key: "tenant:x", fields: {a: b}}}`, "XADD needs maxlen"},
		{`    - {name: f, read_only: false, redis: {command: GET, key: "tenant:x"}}`, "GET only reads"},
		{`    - {name: f, redis: {command: GET, key: "{0}:orders"}, params: [{name: t}]}`, "must start with a literal prefix"},
		{`    - {name: f, redis: {command: GET, key: "tenant:*:orders"}}`, "glob character"},
		{`    - {name: f, redis: {command: GET, key: "tenant:{tenant}"}}`, "placeholder {tenant}"},
		{`    - {name: f, redis: {command: GET, key: "tenant:{1}"}, params: [{name: a}]}`, "uses {1} but the function declares 1"},
		{`    - {name: f, redis: {command: GET, key: "tenant:x"}, params: [{name: a}]}`, "parameter a is declared but not used"},
		{`    - {name: f, sql: SELECT 1, redis: {command: GET, key: "tenant:x"}}`, "declares both sql and redis"},
		{`    - {name: f}`, "declares none of sql, redis or mongo"},
		{`    - {name: f, redis: {command: GET, key: "tenant:x", field: a}}`, "GET takes no field"},
		{`    - {name: f, redis: {command: LRANGE, key: "tenant:x", range: ["0"]}}`, "database.functions[0].redis.range"},
	} {
		_, err := Parse("t.yaml", []byte(redisManifest(tc.fn)))
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: Parse = %v, want an error saying %q", tc.fn, err, tc.says)
		}
	}
	m, err := Parse("t.yaml", []byte(redisManifest(`    - {name: f, redis: {command: hgetall, key: "tenant:{subject}:customer:{0}"}, params: [{name: id}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Database.Functions[0].Statement(); got != "HGETALL tenant:{subject}:customer:{0}" {
		t.Errorf("Statement = %q", got)
	}
}

func TestMySQLPlaceholders(t *testing.T) {
	for _, tc := range []struct {
		sql, want string
		order     []int
		bad       string
	}{
		{sql: "SELECT a FROM t WHERE b = $2 AND c = $1 OR d = $2", want: "SELECT a FROM t WHERE b = ? AND c = ? OR d = ?", order: []int{1, 0, 1}},
		{sql: "SELECT '$1', \"$2\", `$3` -- $4\n FROM t WHERE x = $1 /* $5 */", want: "SELECT '$1', \"$2\", `$3` -- $4\n FROM t WHERE x = ? /* $5 */", order: []int{0}},
		{sql: "SELECT a$1 FROM t", want: "SELECT a$1 FROM t"},
		{sql: "SELECT $10 + $1", want: "SELECT ? + ?", order: []int{9, 0}},
		{sql: "SELECT ? FROM t", bad: "? markers"},
		{sql: "SELECT '?' FROM t WHERE a = $1", want: "SELECT '?' FROM t WHERE a = ?", order: []int{0}},
		{sql: "/*! DROP TABLE t */ SELECT 1", bad: "executable comment"},
		{sql: "SELECT 1 /*M!100000 , 2 */", bad: "executable comment"},
	} {
		got, order, err := MySQLPlaceholders(tc.sql)
		switch {
		case tc.bad != "":
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("MySQLPlaceholders(%q) = %q, %v; want an error saying %q", tc.sql, got, err, tc.bad)
			}
		case err != nil || got != tc.want || !slices.Equal(order, tc.order):
			t.Errorf("MySQLPlaceholders(%q) = %q %v, %v; want %q %v", tc.sql, got, order, err, tc.want, tc.order)
		}
	}
	if got := strings.Join(CodeWords("/* DROP */ (select id -- x\n FROM `DELETE` WHERE a='INTO OUTFILE'"), " "); got != "SELECT ID FROM WHERE A" {
		t.Errorf("CodeWords = %q", got)
	}
}

// TestCompareShowsRedisCommandChanges: a new version that points a Redis function at other keys
// (or another command) is a change the admin must approve, shown as the command it runs.
func TestCompareShowsRedisCommandChanges(t *testing.T) {
	older, err := Parse("t.yaml", []byte(redisManifest(`    - {name: f, redis: {command: GET, key: "tenant:{subject}:note:{0}"}, params: [{name: id}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{
		`    - {name: f, redis: {command: GET, key: "tenant:{0}:note"}, params: [{name: id}]}`,
		`    - {name: f, redis: {command: SMEMBERS, key: "tenant:{subject}:note:{0}"}, params: [{name: id}]}`,
	} {
		newer, err := Parse("t.yaml", []byte(redisManifest(fn)))
		if err != nil {
			t.Fatal(err)
		}
		changes := Compare(older, newer)
		if len(changes) != 1 || changes[0].Kind != ChangeDatabase || !strings.Contains(changes[0].Detail, newer.Database.Functions[0].Redis.Key) {
			t.Errorf("%s: changes = %v, want one database change naming the new command", fn, changes)
		}
	}
}
