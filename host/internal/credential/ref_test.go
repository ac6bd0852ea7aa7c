package credential

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
)

// countingSource resolves "x:NAME" from vals, counting reads; down makes it fail as an
// unreachable source would.
type countingSource struct {
	mu    sync.Mutex
	vals  map[string]string
	reads int
	down  bool
	fresh []bool // secret.FreshRead of each read's context
}

func (s *countingSource) Resolve(ctx context.Context, ref string) (secret.Value, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	s.fresh = append(s.fresh, secret.FreshRead(ctx))
	if s.down {
		return secret.Value{}, errors.New("the source is unreachable")
	}
	v, ok := s.vals[strings.TrimPrefix(ref, "x:")]
	if !ok {
		return secret.Value{}, fmt.Errorf("%s: %w", ref, secret.ErrNotFound)
	}
	return secret.New(v), nil
}

func TestRef(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	src := &countingSource{vals: map[string]string{"k": "v1"}}
	var logs bytes.Buffer
	r := NewRef(RefConfig{Connector: "c", Slot: "s", Kind: "bearer", Reference: "x:k", Secrets: src, TTL: time.Minute,
		Now: clock, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	value := func() string {
		t.Helper()
		v, err := r.Value(ctx)
		if err != nil {
			return "error: " + err.Error()
		}
		return v.Expose()
	}
	if got := value(); got != "v1" {
		t.Fatalf("Value = %q", got)
	}
	src.vals["k"] = "v2"
	if got := value(); got != "v1" || src.reads != 1 {
		t.Errorf("within the TTL: Value = %q after %d reads, want the cached v1 after 1", got, src.reads)
	}
	r.Invalidate("", secret.Value{}) // the upstream said 401
	if got := value(); got != "v2" {
		t.Errorf("after Invalidate: Value = %q, want v2", got)
	}
	src.vals["k"] = "v3"
	now = now.Add(2 * time.Minute)
	if got := value(); got != "v3" {
		t.Errorf("after the TTL: Value = %q, want v3", got)
	}
	// The first read and the one after the 401 ask a caching source (vault:, op:, doppler:) to
	// read its manager, not its own cache; a read at the end of the TTL does not.
	if got := fmt.Sprint(src.fresh); got != "[true true false]" {
		t.Errorf("FreshRead of the reads = %s, want [true true false]", got)
	}

	// Unreachable: the last value keeps serving, logged once.
	src.down = true
	now = now.Add(2 * time.Minute)
	for range 3 {
		now = now.Add(2 * time.Minute)
		if got := value(); got != "v3" {
			t.Errorf("source down: Value = %q, want the last value", got)
		}
	}
	if n := strings.Count(logs.String(), "could not be read again"); n != 1 {
		t.Errorf("logged %d times while the source was down, want once:\n%s", n, logs.String())
	}

	// Removed: the value stops being used at once, and says what to do.
	src.down = false
	delete(src.vals, "k")
	now = now.Add(2 * time.Minute)
	if got := value(); !strings.Contains(got, "credential s of connector c is unavailable") || !r.Failing() {
		t.Errorf("removed: Value = %q, want an unavailable error", got)
	}
	var ce *Error
	if _, err := r.Value(ctx); !errors.As(err, &ce) || !errors.Is(err, ErrUnresolvable) {
		t.Errorf("error %v is not an *Error wrapping ErrUnresolvable", err)
	}

	// Fresh (the state store): every use reads.
	fresh := NewRef(RefConfig{Connector: "c", Slot: "s", Reference: "x:f", Secrets: src, Fresh: true})
	src.vals["f"] = "a"
	fresh.Value(ctx)
	src.vals["f"] = "b"
	if v, _ := fresh.Value(ctx); v.Expose() != "b" {
		t.Errorf("Fresh: Value = %q, want b", v.Expose())
	}
}

// A reference without a scheme may be a secret pasted by mistake: no message repeats it.
func TestRefDoesNotEchoSchemelessReference(t *testing.T) {
	var logs bytes.Buffer
	r := NewRef(RefConfig{Connector: "weather", Slot: "api_key", Reference: "wx_live_SECRET", Secrets: secret.Mux{"env": secret.Env{}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	err := r.Check(context.Background())
	if err == nil || strings.Contains(err.Error(), "wx_live_SECRET") || strings.Contains(logs.String(), "wx_live_SECRET") {
		t.Errorf("Check = %v, log %q: want an error that does not repeat the value", err, logs.String())
	}
	if !strings.Contains(err.Error(), "airlock grant weather --credential api_key=store:NAME") {
		t.Errorf("Check = %v, want the command that fixes it", err)
	}
}

// deniedSource answers v1, then refuses the host (access revoked at the secret manager).
type deniedSource struct{ denied bool }

func (s *deniedSource) Resolve(_ context.Context, ref string) (secret.Value, error) {
	if s.denied {
		return secret.Value{}, fmt.Errorf("%s: the manager refused the host: %w", ref, secret.ErrDenied)
	}
	return secret.New("v1"), nil
}

// A secret manager that stops letting the host read a secret (its access revoked) stops the
// value at the next read, as a deleted secret does; only an unreachable source keeps the last
// value serving.
func TestRefStopsWhenAccessDenied(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	src := &deniedSource{}
	r := NewRef(RefConfig{Connector: "c", Slot: "s", Kind: "bearer", Reference: "x:k", Secrets: src, TTL: time.Minute,
		Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if v, err := r.Value(ctx); err != nil || v.Expose() != "v1" {
		t.Fatalf("Value = %v, %v", v, err)
	}
	src.denied = true
	now = now.Add(2 * time.Minute)
	v, err := r.Value(ctx)
	if err == nil {
		t.Fatalf("after the manager denied access: Value = %q, want an error (the last value must not be used)", v.Expose())
	}
	if !strings.Contains(err.Error(), "denied") || strings.Contains(err.Error(), "v1") {
		t.Errorf("error = %v, want one saying access is denied, without the value", err)
	}
}
