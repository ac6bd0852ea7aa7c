package secret_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/cloudsecrettest"
)

// resolves checks that each reference resolves to its value through src, with one access token
// (starting with tokenPrefix) for all, and nothing the fake refused.
func resolves(t *testing.T, src secret.Source, want map[string]string, stats func() cloudsecrettest.Stats, tokenPrefix string) {
	t.Helper()
	for ref, v := range want {
		got, err := src.Resolve(context.Background(), ref)
		if err != nil || got.Expose() != v {
			t.Errorf("Resolve(%s) = %v, want the version's value", ref, err)
		}
	}
	st := stats()
	if st.Tokens != 1 {
		t.Errorf("%d access tokens issued for %d reads, want 1 (the token is reused)", st.Tokens, len(want))
	}
	if !strings.HasPrefix(st.LastAuthorization, "Bearer "+tokenPrefix) {
		t.Errorf("the read carried Authorization %q, want the issued access token", st.LastAuthorization)
	}
	if len(st.Rejected) != 0 {
		t.Errorf("the fake refused or did not know requests: %q", st.Rejected)
	}
}

// refError is a reference that must fail: errors.Is(err, is) (unless nil), and its text
// containing want.
type refError struct {
	ref  string
	is   error
	want string
}

func failsClearly(t *testing.T, src secret.Source, tests []refError, canaries ...[]byte) {
	t.Helper()
	for _, tt := range tests {
		_, err := src.Resolve(context.Background(), tt.ref)
		if err == nil {
			t.Errorf("Resolve(%s) succeeded, want an error", tt.ref)
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("Resolve(%s) = %v, want errors.Is %v", tt.ref, err, tt.is)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Resolve(%s) = %v\nwant it to contain %q", tt.ref, err, tt.want)
		}
		noLeak(t, tt.ref, err, canaries...)
	}
}

// After an upstream 401 the host re-reads with secret.Reread: Vault's cache must not answer.
func TestVaultRereadSkipsTheCache(t *testing.T) {
	f, srv := newFakeVault(t)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	v := newTokenVault(t, srv, time.Hour, clock)
	ctx := context.Background()
	const ref = "vault:secret/slack/prod#bot_token"
	for _, c := range []context.Context{ctx, ctx, secret.WithFreshRead(ctx), ctx} {
		if _, err := v.Resolve(c, ref); err != nil {
			t.Fatal(err)
		}
	}
	if f.reads != 2 {
		t.Errorf("%d reads, want 2: the first, and the fresh read within the TTL", f.reads)
	}
}

// A rotation (a new version becomes the current or latest one) is seen after the source's cache
// TTL, or at once with secret.Reread (an upstream refused the cached value).
func TestCloudSourcesCacheAndRotation(t *testing.T) {
	type cloud struct {
		src    secret.Source
		ref    string
		rotate func(string)
		reads  func() int
	}
	for name, open := range map[string]func(*fakeClock) cloud{
		"gcp-sm": func(c *fakeClock) cloud {
			f, g := newGCP(t, 30*time.Second, c)
			return cloud{g, "gcp-sm:projects/test-project/secrets/slack-bot/versions/latest",
				func(v string) { f.AddVersion("test-project", "slack-bot", v) }, func() int { return f.Stats().Reads }}
		},
		"azure-kv": func(c *fakeClock) cloud {
			f, a, _ := newAzure(t, 30*time.Second, c)
			return cloud{a, "azure-kv:contoso-prod/slack-bot",
				func(v string) { f.Set("contoso-prod", "slack-bot", v) }, func() int { return f.Stats().Reads }}
		},
	} {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			c := open(clock)
			ctx := context.Background()
			resolve := func(ctx context.Context) string {
				t.Helper()
				v, err := c.src.Resolve(ctx, c.ref)
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				return v.Expose()
			}
			for range 3 {
				if resolve(ctx) != canary {
					t.Fatal("want the canary")
				}
			}
			if n := c.reads(); n != 1 {
				t.Errorf("3 resolves within the TTL read the manager %d times, want 1", n)
			}
			c.rotate("rotated-" + canary)
			if resolve(ctx) != canary {
				t.Error("the cache did not hold the value within its TTL")
			}
			clock.Add(31 * time.Second)
			if resolve(ctx) != "rotated-"+canary {
				t.Error("after the TTL: want the rotated value")
			}
			c.rotate("again-" + canary)
			if resolve(secret.WithFreshRead(ctx)) != "again-"+canary {
				t.Error("a fresh read within the TTL: want the newest value")
			}
			if n := c.reads(); n != 3 {
				t.Errorf("%d reads in all, want 3", n)
			}
		})
	}
}

// Many calls at once, the first ones included, all resolve (run with -race).
func TestCloudSourcesConcurrentFirstUse(t *testing.T) {
	_, g := newGCP(t, time.Second, nil)
	_, a, _ := newAzure(t, time.Second, nil)
	for ref, src := range map[string]secret.Source{
		"gcp-sm:projects/test-project/secrets/slack-bot": g,
		"azure-kv:contoso-prod/slack-bot":                a,
	} {
		errs := make(chan error, 20)
		for range 20 {
			go func() {
				v, err := src.Resolve(secret.WithFreshRead(context.Background()), ref)
				if err == nil && v.Expose() != canary {
					err = errors.New("wrong value")
				}
				errs <- err
			}()
		}
		for range 20 {
			if err := <-errs; err != nil {
				t.Errorf("%s: %v", ref, err)
			}
		}
	}
}
