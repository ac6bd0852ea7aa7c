package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/airlock-dev/airlock/host/internal/ratelimit"
	"github.com/airlock-dev/airlock/internal/testenv"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestAdmit: an agent burning through its tool quota is refused with the exact time to wait; a
// refusal counts nothing; other tools, agents and connectors are unaffected.
func TestAdmit(t *testing.T) {
	clk := &clock{t: t0}
	g, err := New(Config{PerTool: Quota{Calls: 3, Period: time.Minute}, PerAgent: Quota{Calls: 5, Period: time.Minute}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		if ok, _, reason := g.Admit(ctx, "a1", "slack", "post"); !ok {
			t.Fatalf("call %d refused: %s", i+1, reason)
		}
	}
	ok, after, reason := g.Admit(ctx, "a1", "slack", "post")
	if ok || after != 20*time.Second || !strings.Contains(reason, "post") || !strings.Contains(reason, "3 calls per minute") ||
		!strings.Contains(reason, "try again in 20 seconds") {
		t.Fatalf("4th call = %v, %v, %q; want refused for 20 s naming the tool and its quota", ok, after, reason)
	}
	// Refused calls do not count: hammering while refused does not push the time out.
	for range 10 {
		g.Admit(ctx, "a1", "slack", "post")
	}
	if _, after, _ := g.Admit(ctx, "a1", "slack", "post"); after != 20*time.Second {
		t.Errorf("after refused calls: retry after %v, want still 20 s", after)
	}
	// The tool quota is shared by all agents: another agent is refused the same tool too,
	// but gets other tools; another connector has its own quotas.
	if ok, _, reason := g.Admit(ctx, "a2", "slack", "post"); ok || !strings.Contains(reason, "shared by all agents") {
		t.Errorf("another agent on the exhausted tool = %v %q, want refused by the shared tool quota", ok, reason)
	}
	if ok, _, _ := g.Admit(ctx, "a2", "slack", "history"); !ok {
		t.Error("another agent was refused another tool")
	}
	if ok, _, _ := g.Admit(ctx, "a1", "github", "post"); !ok {
		t.Error("another connector was refused")
	}
	// Per agent: 3 posts + 2 other calls = 5; the 6th, of a third tool, is refused by the agent quota.
	for _, tool := range []string{"history", "history"} {
		if ok, _, reason := g.Admit(ctx, "a1", "slack", tool); !ok {
			t.Fatalf("%s refused: %s", tool, reason)
		}
	}
	ok, after, reason = g.Admit(ctx, "a1", "slack", "list")
	if ok || after != 12*time.Second || !strings.Contains(reason, "slack connector") || !strings.Contains(reason, "5 calls per minute") {
		t.Fatalf("6th call = %v, %v, %q; want refused by the agent quota for 12 s", ok, after, reason)
	}
}

// TestRefusedCallKeepsToolQuota: a call the agent quota refuses does not use its tool's quota.
func TestRefusedCallKeepsToolQuota(t *testing.T) {
	clk := &clock{t: t0}
	g, _ := New(Config{PerTool: Quota{Calls: 1, Period: time.Hour}, PerAgent: Quota{Calls: 2, Period: time.Minute}, Now: clk.now})
	ctx := context.Background()
	for _, tool := range []string{"x", "y"} {
		if ok, _, reason := g.Admit(ctx, "a", "c", tool); !ok {
			t.Fatalf("%s refused: %s", tool, reason)
		}
	}
	if ok, after, _ := g.Admit(ctx, "a", "c", "z"); ok || after != 30*time.Second {
		t.Fatalf("z = %v after %v; want refused by the agent quota for 30 s", ok, after)
	}
	clk.advance(30 * time.Second)
	if ok, after, reason := g.Admit(ctx, "a", "c", "z"); !ok {
		t.Fatalf("z after the agent's wait = refused for %v (%s); its tool quota was used by a refused call", after, reason)
	}
}

func TestNoQuota(t *testing.T) {
	g, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if ok, _, _ := g.Admit(context.Background(), "a", "c", "t"); !ok {
			t.Fatal("refused without quotas")
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{PerAgent: Quota{Calls: -1, Period: time.Second}},
		{PerTool: Quota{Calls: 5}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a bad quota", cfg)
		}
	}
}

// TestHammer: concurrent calls never get more than the quota.
func TestHammer(t *testing.T) {
	clk := &clock{t: t0}
	g, _ := New(Config{PerTool: Quota{Calls: 50, Period: time.Hour}, Now: clk.now})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				if ok, _, _ := g.Admit(context.Background(), "a", "c", "t"); ok {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 50 {
		t.Errorf("admitted %d calls, want the quota (50)", n)
	}
}

// TestShared: two replicas sharing Redis share one quota.
func TestShared(t *testing.T) {
	opt, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	st := ratelimit.NewRedis(rdb, ratelimit.RedisConfig{Prefix: "airlock-test:" + hex.EncodeToString(b[:]) + ":"})
	defer st.Close()
	var gates []*Gate
	for range 2 {
		g, err := New(Config{PerTool: Quota{Calls: 10, Period: time.Hour}, PerAgent: Quota{Calls: 12, Period: time.Hour}, Shared: st})
		if err != nil {
			t.Fatal(err)
		}
		gates = append(gates, g)
	}
	ctx := context.Background()
	admitted := 0
	var last string
	var lastAfter time.Duration
	for i := range 30 {
		ok, after, reason := gates[i%2].Admit(ctx, "agent", "slack", "post")
		if ok {
			admitted++
		} else {
			last, lastAfter = reason, after
		}
	}
	if admitted != 10 || !strings.Contains(last, "post") || lastAfter < 5*time.Minute {
		t.Errorf("two replicas admitted %d calls (want 10); last refusal %q after %v", admitted, last, lastAfter)
	}
	// The per-agent quota (12) has 2 left: refused tool calls above did not use it.
	for i, tool := range []string{"a", "b", "c"} {
		ok, _, _ := gates[i%2].Admit(ctx, "agent", "slack", tool)
		if ok != (i < 2) {
			t.Errorf("call %d of another tool: admitted %v, want %v", i, ok, i < 2)
		}
	}
}
