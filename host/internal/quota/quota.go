// Package quota bounds how many tool calls an agent may make: per agent across a connector's
// tools, and per agent and tool, each as calls per period (DESIGN.md, step 4 of a call).
//
// A quota of N calls per period P is a bucket of N calls that refills at N/P: an agent may make
// N calls at once, and then one every P/N. A refused call learns exactly when it may try again:
//
//	g, err := quota.New(quota.Config{
//		PerAgent: quota.Quota{Calls: 1000, Period: time.Hour},
//		PerTool:  quota.Quota{Calls: 100, Period: time.Hour},
//	})
//	ok, retryAfter, reason := g.Admit(ctx, "agent-7", "slack", "post_message")
//	if !ok {
//		// a retryable error: reason is a sentence for the agent, retryAfter when to try again
//	}
//
// With Config.Shared (a Redis store) the quotas are shared by every replica, with the same
// fallback as shared rate limits (package ratelimit): in process at a share when Redis fails.
package quota

import (
	"context"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/host/internal/ratelimit"
)

// Quota is a number of calls per period. The zero Quota means no quota.
type Quota struct {
	// Calls is how many calls the period allows. 0 means no quota; it must not be negative.
	Calls int
	// Period is the period the calls are counted over. It must be positive when Calls is.
	Period time.Duration
}

func (q Quota) limit() ratelimit.Limit {
	if q.Calls <= 0 {
		return ratelimit.Limit{}
	}
	return ratelimit.Limit{PerSecond: float64(q.Calls) / q.Period.Seconds(), Burst: q.Calls}
}

func (q Quota) String() string {
	return ratelimit.Plural(int64(q.Calls), "call") + " per " + periodText(q.Period)
}

// Config configures a Gate. Zero fields mean the defaults. The host maps a grant's
// quotas.per_agent / quotas.per_tool {calls, period_s} to PerAgent / PerTool
// {Calls, Period: period_s seconds}.
type Config struct {
	// PerAgent bounds the calls one agent makes to all of the connector's tools. Zero: none.
	PerAgent Quota
	// PerTool bounds the calls one tool receives, from all agents together. Zero: none.
	PerTool Quota
	// Shared, if set, holds the quotas for every replica (ratelimit.Redis). Nil: in process.
	Shared ratelimit.Store
	// LocalShare is the share of each quota a replica allows itself while Shared is unreachable;
	// see ratelimit.SharedConfig. 0 means 1/2.
	LocalShare float64
	// Now is the clock. Nil means time.Now. (A shared store uses its own clock.)
	Now func() time.Time
	// Scope names what PerAgent counts calls to, in refusals ("the profile support-bot").
	// Default: "the CONNECTOR connector".
	Scope string
}

// Gate admits or refuses calls. It is safe for concurrent use; its zero value is not usable,
// call [New].
type Gate struct {
	cfg Config
	l   *ratelimit.Limiter
}

// Rules of the bucket keys (Key.Host is always empty, so quota buckets never meet the
// egress buckets of an upstream host in a shared store).
const (
	ruleAgent = "quota:agent"
	ruleTool  = "quota:tool:"
)

// New validates cfg and returns a Gate.
func New(cfg Config) (*Gate, error) {
	for _, q := range []struct {
		name string
		q    Quota
	}{{"per_agent", cfg.PerAgent}, {"per_tool", cfg.PerTool}} {
		if q.q.Calls < 0 {
			return nil, fmt.Errorf("quota: %s calls is negative (%d)", q.name, q.q.Calls)
		}
		if q.q.Calls > 0 && q.q.Period <= 0 {
			return nil, fmt.Errorf("quota: %s has %d calls but no period; set a positive period", q.name, q.q.Calls)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Gate{cfg: cfg}
	limitFor := func(k ratelimit.Key) ratelimit.Limit {
		if k.Rule == ruleAgent {
			return cfg.PerAgent.limit()
		}
		return cfg.PerTool.limit()
	}
	if cfg.Shared != nil {
		g.l = ratelimit.NewShared(limitFor, ratelimit.SharedConfig{Store: cfg.Shared, LocalShare: cfg.LocalShare})
	} else {
		g.l = ratelimit.New(limitFor)
	}
	return g, nil
}

// Admit counts one call of tool (of connector) by agent if its quotas allow it. Otherwise it
// counts nothing and returns false, how long until the call would be admitted, and a sentence
// for the agent saying which quota it has used up and when to try again.
func (g *Gate) Admit(ctx context.Context, agent, connector, tool string) (ok bool, retryAfter time.Duration, reason string) {
	now := g.cfg.Now()
	var tr ratelimit.Reservation
	if g.cfg.PerTool.Calls > 0 {
		tr = g.l.Reserve(ctx, ratelimit.Key{Connector: connector, Rule: ruleTool + tool}, now, 0)
		if !tr.OK {
			return false, tr.Wait, fmt.Sprintf("the tool %s has used its quota, shared by all agents (%s); try again in %s",
				tool, g.cfg.PerTool, ratelimit.WaitText(tr.Wait))
		}
	}
	if g.cfg.PerAgent.Calls > 0 {
		ar := g.l.Reserve(ctx, ratelimit.Key{Connector: connector, Rule: ruleAgent, Subject: agent}, now, 0)
		if !ar.OK {
			tr.Cancel(ctx) // the call is not made: it must not count against the tool
			scope := g.cfg.Scope
			if scope == "" {
				scope = "the " + connector + " connector"
			}
			return false, ar.Wait, fmt.Sprintf("this agent has used its quota for %s (%s); try again in %s",
				scope, g.cfg.PerAgent, ratelimit.WaitText(ar.Wait))
		}
	}
	return true, 0, ""
}

func periodText(d time.Duration) string {
	switch {
	case d == time.Second:
		return "second"
	case d == time.Minute:
		return "minute"
	case d == time.Hour:
		return "hour"
	case d == 24*time.Hour:
		return "day"
	}
	return ratelimit.WaitText(d)
}
