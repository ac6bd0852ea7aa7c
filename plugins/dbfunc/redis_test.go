//go:build !wasip1

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestEndToEndRedis: the same connector module over Redis (testdata/redis.yaml), in a real host,
// against the real server. The caller's subject picks the tenant's keys; a write needs
// allow_writes and a human's confirmation; the DSN's password never comes out.
func TestEndToEndRedis(t *testing.T) {
	base, err := url.Parse(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	opt, _ := redis.ParseURL(base.String())
	admin := redis.NewClient(opt)
	defer admin.Close()
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "airlock-e2e-" + hex.EncodeToString(b[:])
	user := prefix + "-user"
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">"+canary, "~"+prefix+":*", "+@read", "+@write", "+hello").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Do(ctx, "ACL", "DELUSER", user)
		iter := admin.Scan(ctx, 0, prefix+":*", 100).Iterator()
		for iter.Next(ctx) {
			admin.Del(ctx, iter.Val())
		}
	})
	admin.HSet(ctx, prefix+":tenant:acme:customer:7", "name", "Ada", "plan", "pro")
	admin.HSet(ctx, prefix+":tenant:globex:customer:7", "name", "Grace", "plan", "free")
	base.User = url.UserPassword(user, canary)
	dsn := base.String()

	m, wasm := hosttest.Connector(t, "./plugins/dbfunc", "plugins/dbfunc/testdata/redis.yaml")
	for i := range m.Database.Functions {
		r := m.Database.Functions[i].Redis
		r.Key = strings.Replace(r.Key, "PREFIX", prefix, 1)
	}
	load := func(writes bool) (*host.Host, *hosttest.Recorder) {
		src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return dsn, n == "CACHE_DSN" }}}
		h, rec := hosttest.New(t, host.Config{Secrets: src})
		g := &manifest.Grant{Connector: "crm_cache", Tools: []string{"*"},
			Database: &manifest.DatabaseGrant{DSN: "env:CACHE_DSN", Functions: []string{"*"}, AllowWrites: writes}}
		if err := h.LoadModule(ctx, m, wasm, g); err != nil {
			t.Fatal(err)
		}
		return h, rec
	}
	call := func(h *host.Host, subject, tool, args string, confirmed bool) (*host.Result, output) {
		res := h.Call(ctx, host.CallRequest{Tool: "crm_cache." + tool, Arguments: json.RawMessage(args),
			Agent: "test-agent", Subject: subject, Confirmed: confirmed})
		var out output
		if res.OK {
			if err := json.Unmarshal(res.Data, &out); err != nil {
				t.Fatalf("%s: %s: %v", tool, res.Data, err)
			}
		}
		return res, out
	}

	h, rec := load(false)
	var results []*host.Result
	for subject, name := range map[string]string{"acme": "Ada", "globex": "Grace"} {
		res, out := call(h, subject, "customer", `{"customer_id":7}`, false)
		results = append(results, res)
		got := map[string]any{}
		for _, row := range out.Rows {
			got[row["field"].(string)] = row["value"]
		}
		if !res.OK || got["name"] != name {
			t.Fatalf("customer 7 as %s = %+v %s, want %s", subject, res.Error, res.Data, name)
		}
	}
	res, _ := call(h, "acme", "save_note", `{"customer_id":7,"note":"call back"}`, true)
	results = append(results, res)
	if res.OK || res.Error.Code != abi.CodeNotGranted || !strings.Contains(res.Error.Message, "allow_writes") {
		t.Fatalf("save_note without allow_writes = %+v, want not_granted", res.Error)
	}
	noLeak(t, rec, results...)

	h2, rec2 := load(true)
	res, _ = call(h2, "acme", "save_note", `{"customer_id":7,"note":"call back"}`, false)
	if res.OK || res.Error.Code != abi.CodeNeedsConfirm {
		t.Fatalf("unconfirmed save_note = %+v, want confirmation_required", res.Error)
	}
	res, out := call(h2, "acme", "save_note", `{"customer_id":7,"note":"call back"}`, true)
	if !res.OK || out.Affected != 1 {
		t.Fatalf("confirmed save_note = %+v %s", res.Error, res.Data)
	}
	if got := admin.Get(ctx, prefix+":tenant:acme:note:7").Val(); got != "call back" {
		t.Fatalf("note = %q", got)
	}
	// A subject that would reach another tenant's keys is refused.
	res, _ = call(h2, "acme:tenant:globex", "customer", `{"customer_id":7}`, false)
	if res.OK {
		t.Fatalf("a subject with ':' read %s", res.Data)
	}
	noLeak(t, rec2, res)
}
