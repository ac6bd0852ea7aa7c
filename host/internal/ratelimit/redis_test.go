package ratelimit

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// testPrefix is a key prefix no other test (or test run) uses.
func testPrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "airlock-test:" + hex.EncodeToString(b[:]) + ":"
}

func sharedRedis(t testing.TB) redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatalf("parsing %s: %v", testenv.RedisEnv, err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at %s does not answer: %v", testenv.Redis(t), err)
	}
	return rdb
}

// redisServer is a redis-server of the test's own, so the test can stop and restart it.
type redisServer struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
}

func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	testenv.Redis(t) // skip where Redis is not installed
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not on PATH")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &redisServer{t: t, port: port}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer rdb.Close()
	for range 100 {
		if rdb.Ping(context.Background()).Err() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on %s did not start", s.addr())
}

func (s *redisServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// TestRedisReserve: the GCRA script admits the burst, then one request per interval, takes
// nothing when it refuses, honours pauses, gives tokens back, and keeps keys apart.
func TestRedisReserve(t *testing.T) {
	rdb := sharedRedis(t)
	st := NewRedis(rdb, RedisConfig{Prefix: testPrefix(t)})
	defer st.Close()
	ctx := context.Background()
	lim := Limit{PerSecond: 1, Burst: 2} // slow enough that test scheduling cannot refill it
	k := Key{Connector: "c", Host: "api.test", Rule: "/api/", Credential: "tok", Subject: "T1"}

	for i := range 2 {
		r, err := st.Reserve(ctx, k, lim, 0)
		if err != nil || !r.OK || r.Wait != 0 {
			t.Fatalf("burst request %d = %+v, %v; want ok at once", i, r, err)
		}
	}
	r, err := st.Reserve(ctx, k, lim, 100*time.Millisecond)
	if err != nil || r.OK || r.Wait < 800*time.Millisecond || r.Wait > time.Second {
		t.Fatalf("over the burst = %+v, %v; want a refusal with a wait of about 1 s", r, err)
	}
	r, err = st.Reserve(ctx, k, lim, 5*time.Second) // the refusal took nothing: this is the 3rd token
	if err != nil || !r.OK || r.Wait < 800*time.Millisecond || r.Wait > time.Second {
		t.Fatalf("third token = %+v, %v; want ok after about 1 s", r, err)
	}
	r.Cancel(ctx)
	r, err = st.Reserve(ctx, k, lim, 5*time.Second)
	if err != nil || !r.OK || r.Wait > time.Second {
		t.Fatalf("after Cancel = %+v, %v; want the given-back slot (about 1 s)", r, err)
	}

	// Every field of the key separates buckets, and separators inside a field cannot collide.
	for _, other := range []Key{
		{Connector: "d", Host: "api.test", Rule: "/api/", Credential: "tok", Subject: "T1"},
		{Connector: "c", Host: "api.test", Rule: "/api/x", Credential: "tok", Subject: "T1"},
		{Connector: "c", Host: "api.test", Rule: "/api/", Credential: "tok2", Subject: "T1"},
		{Connector: "c", Host: "api.test", Rule: "/api/", Credential: "tok", Subject: "T2"},
		{Connector: "c|api.test", Host: "/api/", Rule: "tok", Credential: "T1"},
		{Connector: "c}", Host: "api.test", Rule: "/api/", Credential: "tok", Subject: "T1"},
	} {
		if r, err := st.Reserve(ctx, other, lim, 0); err != nil || !r.OK || r.Wait != 0 {
			t.Errorf("Reserve(%+v) = %+v, %v; want its own full bucket", other, r, err)
		}
	}

	// Pauses: reason carried, never shortened, no static limit needed.
	pk := Key{Host: "paused.test"}
	if err := st.Pause(ctx, pk, 30*time.Second, "told so"); err != nil {
		t.Fatal(err)
	}
	if err := st.Pause(ctx, pk, 5*time.Second, "shorter"); err != nil {
		t.Fatal(err)
	}
	r, err = st.Reserve(ctx, pk, Limit{}, time.Second)
	if err != nil || r.OK || !r.Paused || r.Reason != "told so" || r.Wait < 29*time.Second || r.Wait > 30*time.Second {
		t.Fatalf("paused = %+v, %v", r, err)
	}
	r, err = st.Reserve(ctx, pk, Limit{}, time.Minute)
	if err != nil || !r.OK || !r.Paused || r.Wait < 29*time.Second {
		t.Fatalf("paused within maxWait = %+v, %v; want ok after the pause", r, err)
	}
	if !st.Healthy() {
		t.Error("store reports itself unhealthy after good operations")
	}
}

// TestRedisReplicas: two shared Limiters (two replicas) on one Redis draw from one bucket.
func TestRedisReplicas(t *testing.T) {
	rdb := sharedRedis(t)
	prefix := testPrefix(t)
	limitFor := func(Key) Limit { return Limit{PerSecond: 0.5, Burst: 10} }
	var replicas []*Limiter
	for range 2 {
		st := NewRedis(rdb, RedisConfig{Prefix: prefix})
		defer st.Close()
		replicas = append(replicas, NewShared(limitFor, SharedConfig{Store: st, Connector: "slack"}))
	}
	ctx := context.Background()
	k := Key{Host: "slack.com", Rule: "/api/", Credential: "bot"}
	var mu sync.Mutex
	granted := 0
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			r := replicas[i%2].Reserve(ctx, k, time.Now(), 0)
			if r.Local {
				t.Errorf("reservation answered locally with Redis up")
			}
			if r.OK {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if granted != 10 {
		t.Errorf("two replicas granted %d requests at once, want the shared burst (10)", granted)
	}
	// A pause set through one replica holds on the other.
	replicas[0].Pause(ctx, Key{Host: "slack.com", Rule: "/api/chat.postMessage"}, time.Now(), time.Now().Add(time.Minute), "Slack 429")
	r := replicas[1].Reserve(ctx, Key{Host: "slack.com", Rule: "/api/chat.postMessage"}, time.Now(), time.Second)
	if r.OK || !r.Paused || r.Reason != "Slack 429" {
		t.Errorf("other replica = %+v, want paused by Slack 429", r)
	}
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRedisFallback: with Redis gone, the shared Limiter keeps limiting in process at its share
// (and says so once); when Redis is back, it uses Redis again (and says so once).
func TestRedisFallback(t *testing.T) {
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr(), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer rdb.Close()
	var logs logBuffer
	st := NewRedis(rdb, RedisConfig{Prefix: testPrefix(t), ProbeInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer st.Close()
	l := NewShared(func(Key) Limit { return Limit{PerSecond: 1, Burst: 8} }, SharedConfig{Store: st, LocalShare: 0.25})
	ctx := context.Background()
	k := Key{Host: "api.test"}
	before := Snapshot()

	if r := l.Reserve(ctx, k, time.Now(), 0); !r.OK || r.Local {
		t.Fatalf("with Redis up = %+v", r)
	}
	srv.stop()

	// In process at a quarter: burst 2 at one instant, then refusals.
	now := time.Now()
	var got []bool
	for range 5 {
		r := l.Reserve(ctx, k, now, 0)
		if !r.Local {
			t.Fatalf("with Redis down = %+v, want a local answer", r)
		}
		got = append(got, r.OK)
	}
	if want := []bool{true, true, false, false, false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("local fallback admitted %v, want %v (a quarter of the burst of 8)", got, want)
	}
	if l.Reserve(ctx, k, now.Add(4*time.Second), 0).OK != true {
		t.Error("the local bucket did not refill at a quarter of the rate (1 per 4 s)")
	}
	after := Snapshot()
	if after["store_down"]-before["store_down"] != 1 || after["local_fallbacks"]-before["local_fallbacks"] < 5 {
		t.Errorf("metrics before %v after %v: want store_down +1, local_fallbacks +≥5", before, after)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want exactly one:\n%s", n, logs.String())
	}

	srv.start()
	deadline := time.Now().Add(10 * time.Second)
	for !st.Healthy() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !st.Healthy() {
		t.Fatal("the store did not recover within 10 s of Redis coming back")
	}
	if r := l.Reserve(ctx, k, time.Now(), 0); !r.OK || r.Local {
		t.Errorf("after recovery = %+v, want a Redis answer (a fresh server has a full bucket)", r)
	}
	if !strings.Contains(logs.String(), "level=INFO") || strings.Count(logs.String(), "level=WARN") != 1 {
		t.Errorf("want one warning and one recovery line:\n%s", logs.String())
	}
}

func BenchmarkRedisReserve(b *testing.B) {
	rdb := sharedRedis(b)
	st := NewRedis(rdb, RedisConfig{Prefix: testPrefix(b)})
	defer st.Close()
	l := NewShared(func(Key) Limit { return Limit{PerSecond: 1e6, Burst: 1 << 20} }, SharedConfig{Store: st})
	k := Key{Host: "api.test", Credential: "a"}
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r := l.Reserve(ctx, k, time.Now(), time.Second); r.Local {
				b.Fatal("answered locally")
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Reserve(ctx, k, time.Now(), time.Second)
			}
		})
	})
}
