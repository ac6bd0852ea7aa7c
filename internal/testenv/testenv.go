// Package testenv points tests at the real servers .ci/services starts: PostgreSQL, Redis,
// MariaDB and the toxiproxy fault-injection proxy.
//
// Each accessor skips the test, with a message that says how to run it, when its server is not
// configured; with AIRLOCK_TEST_REQUIRE_SERVICES=1 (set by .ci/run) it fails instead, so CI never
// passes by skipping.
//
//	eval "$(.ci/services)"   # start them locally and export the variables below
//	go test ./host/store/...
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables .ci/services exports.
const (
	PostgresEnv  = "AIRLOCK_TEST_POSTGRES"  // a PostgreSQL URL whose user may create databases
	RedisEnv     = "AIRLOCK_TEST_REDIS"     // a Redis URL, redis://127.0.0.1:56379/0
	ToxiproxyEnv = "AIRLOCK_TEST_TOXIPROXY" // path of the toxiproxy-server binary
	RequireEnv   = "AIRLOCK_TEST_REQUIRE_SERVICES"
)

func need(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	missing(t, what+" is not configured: run `eval \"$(.ci/services)\"` (it sets "+env+") to run this test")
	return ""
}

// missing skips the test with msg, or fails it when RequireEnv is set (CI).
func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Redis returns the URL of the test Redis server.
func Redis(t testing.TB) string { return need(t, RedisEnv, "Redis") }

// Toxiproxy returns the path of the toxiproxy-server binary.
func Toxiproxy(t testing.TB) string { return need(t, ToxiproxyEnv, "toxiproxy") }

// Postgres returns the URL of a new, empty PostgreSQL database that is dropped when the test
// ends, so tests (and packages run in parallel) never share state.
func Postgres(t testing.TB) string {
	t.Helper()
	base := need(t, PostgresEnv, "PostgreSQL")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testenv: connecting to %s: %v", PostgresEnv, err)
	}
	defer admin.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "airlock_t_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("testenv: dropping %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: dropping %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: %s is not a URL: %v", PostgresEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}
