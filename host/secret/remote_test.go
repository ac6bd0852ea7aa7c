package secret_test

import (
	"context"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
)

// After an upstream 401 the host re-reads with secret.Reread: Vault's cache must not answer.
func TestVaultRereadSkipsTheCache(t *testing.T) {
	f, srv := newFakeVault(t)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	v := newTokenVault(t, srv, time.Hour, clock)
	ctx := context.Background()
	const ref = "vault:secret/slack/prod#bot_token"
	for _, c := range []context.Context{ctx, ctx, secret.Reread(ctx), ctx} {
		if _, err := v.Resolve(c, ref); err != nil {
			t.Fatal(err)
		}
	}
	if f.reads != 2 {
		t.Errorf("%d reads, want 2: the first, and the Reread within the TTL", f.reads)
	}
}
