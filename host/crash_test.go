package host_test

// A host killed hard (SIGKILL) in the middle of a deferred call: the call runs in a child
// process (this test binary, re-executed) while the fake upstream holds its request; then a new
// host on the same state store must end the job soon, never sending a call that is not safe to
// repeat a second time.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/internal/fakeslack"
)

// Short lease and rescue timeouts, so that the test takes seconds rather than minutes.
var crashCfg = host.Config{IdempotencyLease: time.Second, DeferredRescueAfter: time.Second}

// holdingSlack is the fake Slack whose first chat.postMessage never gets an answer: it is held
// until the host that sent it dies. applyHeld: the held post takes effect upstream anyway (the
// worst case of a lost answer); otherwise it does not.
type holdingSlack struct {
	fake      *fakeslack.Server
	applyHeld bool
	posts     atomic.Int64 // requests received
	arrived   chan struct{}
	release   chan struct{} // closed at the end of the test
}

func (u *holdingSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "chat.postMessage") {
		u.fake.ServeHTTP(w, r)
		return
	}
	if u.posts.Add(1) == 1 {
		if u.applyHeld {
			u.fake.ServeHTTP(httptest.NewRecorder(), r)
		}
		_, _ = io.Copy(io.Discard, r.Body) // read: the server then sees the connection close
		close(u.arrived)
		select {
		case <-r.Context().Done():
		case <-u.release:
		}
		return
	}
	u.fake.ServeHTTP(w, r)
}

func TestDeferredCallAfterHostKilled(t *testing.T) {
	if os.Getenv("AIRLOCK_CRASH_DSN") != "" {
		t.Skip("the child process runs TestDeferredCrashChild only")
	}
	for _, c := range []struct {
		name       string
		idempotent bool
	}{{"idempotent tool replayed", true}, {"non-idempotent tool outcome unknown", false}} {
		t.Run(c.name, func(t *testing.T) {
			deferredStores(t, func(t *testing.T, dsn string) {
				up := &holdingSlack{fake: fakeslack.New(canary), applyHeld: !c.idempotent, arrived: make(chan struct{}), release: make(chan struct{})}
				srv := httptest.NewServer(up)
				t.Cleanup(srv.Close)
				t.Cleanup(func() { close(up.release) })
				e := newDeferredEnv(t, dsn)
				e.srv = srv
				if c.idempotent {
					markIdempotent(e)
				}
				e.m.Limits.TimeoutMS = 3000 // a job is taken as stuck 33 s after its attempt began

				// Accept the call on a host that only queues (as `airlock call --defer` does).
				h0, _, _ := e.startWith(host.Config{DeferredWorkers: -1})
				id := deferPost(t, h0, "tenant-a", "crash #1")
				h0.Close(context.Background())

				// The child host runs the job; it is killed while the upstream holds the post.
				child := exec.Command(os.Args[0], "-test.run=^TestDeferredCrashChild$", "-test.timeout=5m")
				child.Env = append(os.Environ(), "AIRLOCK_CRASH_DSN="+dsn, "AIRLOCK_CRASH_UPSTREAM="+srv.URL,
					fmt.Sprintf("AIRLOCK_CRASH_IDEMPOTENT=%v", c.idempotent))
				out, _ := child.StdoutPipe()
				child.Stderr = child.Stdout
				if err := child.Start(); err != nil {
					t.Fatal(err)
				}
				var logs strings.Builder
				go func() {
					sc := bufio.NewScanner(out)
					for sc.Scan() {
						logs.WriteString(sc.Text() + "\n")
					}
				}()
				select {
				case <-up.arrived:
				case <-time.After(2 * time.Minute):
					_ = child.Process.Kill()
					t.Fatalf("the child host never sent the post; its output:\n%s", logs.String())
				}
				if err := child.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				_ = child.Wait()
				killed := time.Now()

				// A new host on the same store ends the job.
				h, _, rec := e.startWith(crashCfg)
				var st *host.JobStatus
				for {
					st, _ = jobStatus(h, "agent-q", "tenant-a", id)
					if st != nil && st.State != "queued" && st.State != "running" {
						break
					}
					if time.Since(killed) > 2*time.Minute {
						t.Fatalf("job %s is still %+v two minutes after its host was killed; host logs:\n%s", id, st, rec.Logs())
					}
					time.Sleep(200 * time.Millisecond)
				}
				took := time.Since(killed)
				posted := slices.DeleteFunc(up.fake.Messages(fakeslack.General), func(m fakeslack.Message) bool { return !strings.Contains(m.Text, "crash #1") })
				t.Logf("job ended %s %.1f s after the kill; %d posts received, %d took effect", st.State, took.Seconds(), up.posts.Load(), len(posted))
				if c.idempotent {
					if st.State != "done" || len(posted) != 1 || up.posts.Load() != 2 {
						t.Fatalf("job = %+v, %d posts took effect of %d received; want done, replayed once: exactly one", st, len(posted), up.posts.Load())
					}
					return
				}
				if st.State != host.CodeOutcomeUnknown || up.posts.Load() != 1 || len(posted) != 1 {
					t.Fatalf("job = %+v, %d posts took effect of %d received; want outcome_unknown and the post never sent again", st, len(posted), up.posts.Load())
				}
				if !strings.Contains(string(st.Result), "check before asking again") {
					t.Errorf("the job's result %s does not tell the agent to check upstream", st.Result)
				}
				audited := slices.ContainsFunc(rec.Audit.Events(), func(ev audit.Event) bool {
					return ev.Tool == "slack.post_message" && ev.Code == host.CodeOutcomeUnknown
				})
				if !audited {
					t.Errorf("no audit event records the outcome_unknown call")
				}
				// Still settled later: nothing runs it again.
				time.Sleep(2 * time.Second)
				if up.posts.Load() != 1 {
					t.Fatalf("the post was sent again after outcome_unknown")
				}
			})
		})
	}
}

// TestDeferredCrashChild is the host TestDeferredCallAfterHostKilled kills: it runs the queued
// job until the parent kills it.
func TestDeferredCrashChild(t *testing.T) {
	dsn := os.Getenv("AIRLOCK_CRASH_DSN")
	if dsn == "" {
		t.Skip("run by TestDeferredCallAfterHostKilled")
	}
	e := newDeferredEnv(t, dsn)
	e.srv = &httptest.Server{URL: os.Getenv("AIRLOCK_CRASH_UPSTREAM")}
	if os.Getenv("AIRLOCK_CRASH_IDEMPOTENT") == "true" {
		markIdempotent(e)
	}
	e.startWith(crashCfg)
	select {} // until killed
}

// markIdempotent annotates post_message idempotent (safe to repeat), as a manifest may.
func markIdempotent(e *deferredEnv) {
	for i := range e.m.Tools {
		if e.m.Tools[i].Name == "post_message" {
			e.m.Tools[i].Annotations.Idempotent = true
		}
	}
}
