package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/airlock-dev/airlock/host/secret"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/fakeslack"
	"github.com/airlock-dev/airlock/internal/pluginbuild"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// An operator's crash: `airlock serve` under 20 concurrent callers of a tool with an upstream,
// killed with SIGKILL at a random moment, 20 times on SQLite and 20 times on PostgreSQL. Every
// success the client received has its call record and the record of its outbound request,
// every call that began has an outcome (or "unknown", recorded at the next start), and
// `airlock audit verify` passes.
func TestCrashKeepsEverySuccessOnRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("kills airlock serve 20 times")
	}
	root, _ := pluginbuild.ModuleRoot()
	wasm, err := pluginbuild.Build(context.Background(), pluginbuild.Options{Package: "./plugins/slack", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			stamped, err := pluginbuild.Stamp(filepath.Join(root, "manifests/slack.yaml"), wasm, filepath.Join(dir, "plugins"))
			if err != nil {
				t.Fatal(err)
			}
			fake := fakeslack.New("xoxb-crash-canary-123456")
			url, stop := fake.Start()
			defer stop()
			t.Setenv("AIRLOCK_TEST_SLACK_TOKEN", "xoxb-crash-canary-123456")
			os.WriteFile(filepath.Join(dir, "slack.grant.yaml"), []byte(fmt.Sprintf(`connector: slack
tools: [post_message]
scopes: ["*"]
hosts: ["*"]
credentials:
  bot_token: env:AIRLOCK_TEST_SLACK_TOKEN
upstreams:
  "https://slack.com": %q
`, url)), 0o600)
			cfg := filepath.Join(dir, "airlock.yaml")
			os.WriteFile(cfg, []byte(fmt.Sprintf("state_dir: state\nconnectors:\n  - manifest: %s\n    grant: slack.grant.yaml\n", stamped)), 0o600)
			dsn := "sqlite:" + filepath.Join(dir, "state", "state.db")
			if backend == "postgres" {
				dsn = testenv.Postgres(t)
				// A shared state never gets a key made up on one machine: name one, as the
				// README says for replicas.
				key, err := secret.NewMasterKey()
				if err != nil {
					t.Fatal(err)
				}
				t.Setenv(secret.MasterKeyEnv, secret.EncodeMasterKey(key))
			}
			args := []string{"--config", cfg, "--state", dsn}

			succeeded := map[string]bool{} // request IDs of the successes the client saw
			const rounds = 20
			for round := range rounds {
				for _, id := range crashRound(t, args, round, time.Duration(150+rand.IntN(500))*time.Millisecond) {
					succeeded[id] = true
				}
			}
			// One more start: it records the last round's interrupted calls, and one call after it
			// is committed behind them.
			crashRound(t, args, rounds, 0)

			st, err := store.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			outcome := map[string]string{}
			begun := map[string]bool{}
			requests := map[string]int{} // outbound request records by call
			var after int64
			for {
				recs, err := st.QueryAudit(context.Background(), store.AuditFilter{AfterSeq: after, Limit: 5000})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					e, err := audit.DecodeRecord(r)
					if err != nil {
						t.Fatal(err)
					}
					switch e.Kind {
					case audit.KindCall:
						outcome[e.RequestID] = e.Outcome
					case audit.KindBegin:
						begun[e.RequestID] = true
					case audit.KindRequest:
						requests[e.RequestID]++
					}
					after = r.Seq
				}
				if len(recs) < 5000 {
					break
				}
			}
			unknown := 0
			for id := range succeeded {
				if outcome[id] != "ok" {
					t.Errorf("the client received a success for request %s, but its audit record says %q", id, outcome[id])
				}
				if requests[id] == 0 {
					t.Errorf("the client received a success for request %s, but the record of its request to Slack is missing", id)
				}
			}
			for id := range begun {
				switch outcome[id] {
				case "":
					t.Errorf("call %s began but has no outcome in the audit trail after restart", id)
				case audit.OutcomeUnknown:
					unknown++
				}
			}
			t.Logf("%s: %d kills, %d successes received, %d calls began, %d recorded as outcome unknown", backend, rounds, len(succeeded), len(begun), unknown)
			if len(succeeded) < rounds {
				t.Errorf("only %d successes in %d rounds: the load did not run", len(succeeded), rounds)
			}
			if code, out, errOut := airlock(t, append([]string{"audit", "verify"}, args...)...); code != exitOK {
				t.Errorf("audit verify after the crashes = %d, %s %s", code, out, errOut)
			}
			if code, out, errOut := airlock(t, append([]string{"audit", "search", "--decision", "unknown"}, args...)...); code != exitOK || unknown > 0 && len(out) == 0 {
				t.Errorf("audit search --decision unknown = %d, %q %s", code, out, errOut)
			}
		})
	}
}

// crashRound starts `airlock serve` over stdio, has 20 concurrent callers post unique messages,
// and kills the server with SIGKILL after killAfter (0: after one success, to stop). It returns
// the request IDs of the successes the client received.
func crashRound(t *testing.T, args []string, round int, killAfter time.Duration) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "AIRLOCK_TEST_MAIN=1")
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		wmu     sync.Mutex
		mu      sync.Mutex
		waiting = map[int]chan json.RawMessage{}
		ok      []string
	)
	send := func(msg string) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := io.WriteString(in, msg+"\n")
		return err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(outPipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m struct {
				ID     *int            `json:"id"`
				Result json.RawMessage `json:"result"`
			}
			if json.Unmarshal(sc.Bytes(), &m) != nil || m.ID == nil {
				continue
			}
			if *m.ID == 0 {
				close(ready)
				continue
			}
			mu.Lock()
			ch := waiting[*m.ID]
			mu.Unlock()
			if ch != nil {
				ch <- m.Result
			}
		}
		mu.Lock()
		for _, ch := range waiting {
			close(ch)
		}
		waiting = nil
		mu.Unlock()
	}()
	send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"crash","version":"1"}}}`)
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("round %d: airlock serve did not answer initialize", round)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	var (
		wg     sync.WaitGroup
		next   = 1
		first  = make(chan struct{})
		once   sync.Once
		killed = make(chan struct{})
	)
	callers := 20
	if killAfter == 0 {
		callers = 1
	}
	for range callers {
		wg.Go(func() {
			for {
				mu.Lock()
				if waiting == nil {
					mu.Unlock()
					return
				}
				id := next
				next++
				ch := make(chan json.RawMessage, 1)
				waiting[id] = ch
				mu.Unlock()
				if send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"slack.post_message","arguments":{"channel":"C0GENERAL","text":"crash %d/%d"}}}`, id, round, id)) != nil {
					return
				}
				res, open := <-ch
				if !open {
					return
				}
				var r struct {
					IsError bool `json:"isError"`
					Meta    map[string]struct {
						RequestID string `json:"request_id"`
					} `json:"_meta"`
				}
				if json.Unmarshal(res, &r) == nil && !r.IsError {
					mu.Lock()
					ok = append(ok, r.Meta["dev.airlock/meta"].RequestID)
					mu.Unlock()
					once.Do(func() { close(first) })
					if killAfter == 0 {
						return // the last start: one call, then a clean stop
					}
				}
				select {
				case <-killed:
					return
				default:
				}
			}
		})
	}
	if killAfter > 0 {
		time.Sleep(killAfter)
	} else {
		select {
		case <-first:
		case <-time.After(30 * time.Second):
			t.Errorf("round %d: no call succeeded", round)
		}
	}
	close(killed)
	if killAfter > 0 {
		cmd.Process.Signal(syscall.SIGKILL)
	} else {
		wg.Wait()
		in.Close() // end of input: serve answers what it read and exits
	}
	if err := cmd.Wait(); killAfter == 0 && err != nil {
		t.Errorf("the last airlock serve did not exit cleanly: %v", err)
	}
	in.Close()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return ok
}
