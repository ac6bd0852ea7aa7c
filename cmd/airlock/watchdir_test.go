package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/store"
)

// TestWatchPluginsInstallsSignedBundles: a signed bundle dropped into the watched directory is
// installed (not granted); a tampered one next to it is refused and logged, nothing installed.
func TestWatchPluginsInstallsSignedBundles(t *testing.T) {
	stamped := stampedSlack(t)
	dir, state, watched := t.TempDir(), t.TempDir(), t.TempDir()
	key := filepath.Join(dir, "airlock-dev.key")
	for _, args := range [][]string{
		{"plugin", "keygen", "--out", key},
		{"plugin", "pack", stamped, "--out", filepath.Join(dir, "slack.airlock"), "--key", key},
		{"trust", "add", "airlock-dev", key + ".pub", "--state-dir", state},
	} {
		if code, out, errOut := airlock(t, args...); code != exitOK {
			t.Fatalf("airlock %s = %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	good, err := os.ReadFile(filepath.Join(dir, "slack.airlock"))
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(filepath.Join(watched, "evil.airlock"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(watched, "slack-1.0.0.airlock"), good, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(state, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	done := make(chan struct{})
	go func() { watchBundles(ctx, watched, time.Hour, admin.New(st, nil, logger), logger); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := st.ListInstalled(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > 0 {
			if len(list) != 1 || list[0].Name != "slack" || list[0].Status != store.InstalledActive || list[0].Publisher != "airlock-dev" {
				t.Fatalf("installed = %+v", list)
			}
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the signed bundle was not installed; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(logs.String(), "evil.airlock") || !strings.Contains(logs.String(), "bundle refused") {
		t.Errorf("the tampered bundle's refusal is not logged:\n%s", logs.String())
	}
	if grants, _ := st.ListGrants(context.Background()); len(grants) != 0 {
		t.Errorf("installing granted something: %+v", grants)
	}
}
