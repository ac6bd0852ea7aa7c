package manifest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// RedisCommand is a database function's one Redis command, in place of SQL: the command from
// an allow-list and its key as a template whose variable parts are the function's parameters or
// the calling subject, confined to the key's literal prefix.
//
//	redis: {command: HGETALL, key: "tenant:{subject}:customer:{0}"}
//
// In a template, {subject} is the call's subject and {N} the function's parameter N (from 0).
// A value placed in a key must be a string or an integer of 1..256 bytes without ':', glob
// characters (* ? [ ] \), braces or control characters, so it names exactly one key segment
// under the prefix; the host refuses any other value. A multi-key command (MGET, EXISTS, DEL)
// takes one key per element when a parameter of its key is an array (at most max_rows keys);
// HMGET likewise for its field.
type RedisCommand struct {
	// Command is one of RedisReads or RedisWrites (upper case).
	Command string `json:"command"`
	// Key is the key template; it starts with a literal prefix.
	Key string `json:"key"`
	// Field is the hash field of HGET and HMGET (a template).
	Field string `json:"field,omitempty"`
	// Value is SET's value (a template).
	Value string `json:"value,omitempty"`
	// Fields are HSET's fields or an XADD entry: field name → value template.
	Fields map[string]string `json:"fields,omitempty"`
	// Range bounds LRANGE and ZRANGE (indexes, default [0, -1]), ZRANGEBYSCORE (scores, default
	// ["-inf", "+inf"]) and XRANGE (entry IDs, default ["-", "+"]): two templates. The host
	// never returns more than max_rows elements whatever the range.
	Range []string `json:"range,omitempty"`
	// TTLS is the time to live in seconds SET gives its key (required: SET always runs with EX)
	// and EXPIRE sets.
	TTLS int `json:"ttl_s,omitempty"`
	// MaxLen trims XADD's stream to about this many entries (required for XADD).
	MaxLen int `json:"maxlen,omitempty"`
}

// RedisReads are the commands a read function may run; RedisWrites those of a write function.
// Nothing else runs: never KEYS, SCAN over the whole key space, EVAL, FUNCTION, CONFIG, FLUSH*,
// MULTI, or any other command.
var (
	RedisReads  = []string{"GET", "MGET", "HGET", "HMGET", "HGETALL", "EXISTS", "TTL", "LRANGE", "ZRANGE", "ZRANGEBYSCORE", "XRANGE", "SCARD", "SMEMBERS"}
	RedisWrites = []string{"SET", "DEL", "HSET", "XADD", "EXPIRE"}
)

// RedisMultiKey reports whether command takes several keys (an array parameter in its key).
func RedisMultiKey(command string) bool {
	return command == "MGET" || command == "EXISTS" || command == "DEL"
}

// Statement is what the function runs, as an admin reviews it: its SQL, its Redis command, or
// its MongoDB operation as JSON.
func (f *DBFunction) Statement() string {
	if f.Mongo != nil {
		b, _ := json.Marshal(f.Mongo)
		return "mongo " + string(b)
	}
	if f.Redis == nil {
		return f.SQL
	}
	r := f.Redis
	parts := []string{r.Command, r.Key}
	if r.Field != "" {
		parts = append(parts, r.Field)
	}
	parts = append(parts, r.Range...)
	if r.Value != "" {
		parts = append(parts, r.Value)
	}
	names := make([]string, 0, len(r.Fields))
	for k := range r.Fields {
		names = append(names, k)
	}
	sort.Strings(names)
	if r.Command == "XADD" {
		parts = append(parts, "MAXLEN", "~", strconv.Itoa(r.MaxLen), "*")
	}
	for _, k := range names {
		parts = append(parts, k, r.Fields[k])
	}
	if r.Command == "SET" {
		parts = append(parts, "EX", strconv.Itoa(r.TTLS))
	}
	if r.Command == "EXPIRE" {
		parts = append(parts, strconv.Itoa(r.TTLS))
	}
	return strings.Join(parts, " ")
}

// TemplatePart is a piece of a key or value template: literal text, or a placeholder (Param ≥ 0
// for {N}, Subject for {subject}).
type TemplatePart struct {
	Literal string
	Param   int // -1: literal or subject
	Subject bool
}

// ParseTemplate splits a template into its parts.
func ParseTemplate(s string) ([]TemplatePart, error) {
	var parts []TemplatePart
	for s != "" {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			parts = append(parts, TemplatePart{Literal: s, Param: -1})
			break
		}
		if s[i] == '}' {
			return nil, fmt.Errorf("has a '}' outside a placeholder; placeholders are {subject} and {0}, {1} … (the parameters)")
		}
		if i > 0 {
			parts = append(parts, TemplatePart{Literal: s[:i], Param: -1})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("has an unclosed '{'")
		}
		name := s[i+1 : i+j]
		switch n, err := strconv.Atoi(name); {
		case name == "subject":
			parts = append(parts, TemplatePart{Param: -1, Subject: true})
		case err == nil && n >= 0 && n < 100 && strconv.Itoa(n) == name:
			parts = append(parts, TemplatePart{Param: n})
		default:
			return nil, fmt.Errorf("has the placeholder {%s}; placeholders are {subject} and {0}, {1} … (the parameters, from 0)", name)
		}
		s = s[i+j+1:]
	}
	return parts, nil
}

// RedisProblems returns what is wrong with a function's Redis command (none when nothing): what
// Parse refuses. The host checks it again before running a function built by other means.
func (f *DBFunction) RedisProblems() []string {
	r := f.Redis
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if f.SQL != "" {
		bad("declares both sql and redis: a function is one SQL statement or one Redis command")
	}
	cmd := r.Command
	read, write := slices.Contains(RedisReads, cmd), slices.Contains(RedisWrites, cmd)
	switch {
	case !read && !write:
		bad("command %q is not allowed: a Redis function runs one of %s (reads) or %s (writes, read_only: false); "+
			"KEYS, SCAN, EVAL, FUNCTION, CONFIG, FLUSH*, MULTI and any other command never run", cmd,
			strings.Join(RedisReads, ", "), strings.Join(RedisWrites, ", "))
		return errs
	case write && f.ReadOnly:
		bad("%s writes: set read_only: false (the grant must allow writes, and its tools need a human's approval)", cmd)
	case read && !f.ReadOnly:
		bad("%s only reads: remove read_only: false", cmd)
	}
	used := make([]bool, len(f.Params))
	template := func(field, s string, key bool) {
		parts, err := ParseTemplate(s)
		if err != nil {
			bad("%s %q %v", field, s, err)
			return
		}
		for i, p := range parts {
			switch {
			case p.Param >= len(f.Params):
				bad("%s %q uses {%d} but the function declares %d parameters (from {0})", field, s, p.Param, len(f.Params))
			case p.Param >= 0:
				used[p.Param] = true
			case key && p.Literal != "" && strings.ContainsFunc(p.Literal, badKeyRune):
				bad("%s %q holds a glob character (* ? [ ] \\) or a control character; keys are plain text", field, s)
			}
			if key && i == 0 && p.Literal == "" {
				bad("%s %q must start with a literal prefix (e.g. \"tenant:{subject}:orders:{0}\"): its parameters are confined under it", field, s)
			}
		}
	}
	if r.Key == "" {
		bad("key is required: the key template, e.g. \"tenant:{subject}:orders:{0}\"")
	} else {
		template("key", r.Key, true)
	}
	need := func(field string, set, want bool) {
		switch {
		case want && !set:
			bad("%s needs %s", cmd, field)
		case !want && set:
			bad("%s takes no %s", cmd, field)
		}
	}
	ranged := slices.Contains([]string{"LRANGE", "ZRANGE", "ZRANGEBYSCORE", "XRANGE"}, cmd)
	need("field", r.Field != "", cmd == "HGET" || cmd == "HMGET")
	need("value", r.Value != "", cmd == "SET")
	need("fields", len(r.Fields) > 0, cmd == "HSET" || cmd == "XADD")
	need("ttl_s (seconds, at least 1)", r.TTLS > 0, cmd == "SET" || cmd == "EXPIRE")
	need("maxlen (at least 1)", r.MaxLen > 0, cmd == "XADD")
	if r.Range != nil && !ranged {
		bad("%s takes no range", cmd)
	}
	if ranged && r.Range != nil && len(r.Range) != 2 {
		bad("range is two bounds, [start, stop]")
	}
	if r.Field != "" {
		template("field", r.Field, false)
	}
	if r.Value != "" {
		template("value", r.Value, false)
	}
	for _, b := range r.Range {
		template("range", b, false)
	}
	for k, v := range r.Fields {
		if k == "" || strings.ContainsAny(k, "{}") {
			bad("field name %q must be literal text", k)
		}
		template("fields."+k, v, false)
	}
	if r.TTLS < 0 || r.TTLS > 366*24*3600 {
		bad("ttl_s must be 1..31622400 seconds")
	}
	for i, u := range used {
		if !u {
			bad("parameter %s is declared but not used in the command: use it as {%d}, or remove it", f.Params[i].Name, i)
		}
	}
	return errs
}

func badKeyRune(r rune) bool { return strings.ContainsRune("*?[]\\", r) || r < 0x20 || r == 0x7f }
