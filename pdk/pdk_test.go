package pdk_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdktest"
)

func TestInputOutput(t *testing.T) {
	t.Parallel()
	h := pdktest.New(t)
	type args struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	h.SetInput(map[string]any{"name": "héllo", "count": 3, "ignored": true})
	out, toolErr := h.Call(func() error {
		var a args
		if err := pdk.Input(&a); err != nil {
			return err
		}
		return pdk.Output(map[string]any{"echo": a.Name, "twice": a.Count * 2})
	})
	if toolErr != nil {
		t.Fatalf("Call: %v", toolErr)
	}
	if got, want := string(out), `{"echo":"héllo","twice":6}`; got != want {
		t.Errorf("output = %s, want %s", got, want)
	}
}

func TestInputBytesLarge(t *testing.T) {
	t.Parallel()
	h := pdktest.New(t)
	big := strings.Repeat("x", 1<<20)
	h.SetInput(map[string]string{"s": big})
	out, toolErr := h.Call(func() error {
		pdk.OutputBytes(pdk.InputBytes())
		return nil
	})
	if toolErr != nil {
		t.Fatalf("Call: %v", toolErr)
	}
	if want := `{"s":"` + big + `"}`; string(out) != want {
		t.Errorf("echo of a 1 MiB input differs (len %d, want %d)", len(out), len(want))
	}
}

func TestInputInvalid(t *testing.T) {
	t.Parallel()
	h := pdktest.New(t)
	h.SetInput(json.RawMessage(`[1,2]`))
	_, toolErr := h.Call(func() error {
		var v struct{ A string }
		return pdk.Input(&v)
	})
	if toolErr == nil || toolErr.Category != pdk.CategoryCorrectable || toolErr.Code != pdk.CodeInvalidArguments {
		t.Errorf("Input([1,2]) tool error = %+v, want correctable invalid_arguments", toolErr)
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	hostRefusal := &pdk.Error{Code: pdk.CodeEgressDenied, Category: pdk.CategoryFatal, Message: "the host refused"}
	tests := []struct {
		name string
		fn   func() error
		want *pdk.Error
	}{
		{"nil", func() error { return nil }, nil},
		{"correctable", func() error { return pdk.Correctable("bad_channel", "no channel %q", "x") },
			&pdk.Error{Code: "bad_channel", Category: pdk.CategoryCorrectable, Message: `no channel "x"`}},
		{"fatal", func() error { return pdk.Fatal("creds", "rejected") },
			&pdk.Error{Code: "creds", Category: pdk.CategoryFatal, Message: "rejected"}},
		{"retryable", func() error { return pdk.Retryable("rate_limited", 1500*time.Microsecond, "slow down") },
			&pdk.Error{Code: "rate_limited", Category: pdk.CategoryRetryable, Message: "slow down", RetryAfterMS: 2}},
		{"errorf", func() error { return pdk.Errorf(pdk.CategoryRetryable, "x", "n=%d", 4) },
			&pdk.Error{Code: "x", Category: pdk.CategoryRetryable, Message: "n=4"}},
		{"wrapped refusal", func() error { return fmt.Errorf("post: %w", hostRefusal) }, hostRefusal},
		{"plain error", func() error { return errors.New("channel must not be empty") },
			&pdk.Error{Code: pdk.CodePluginError, Category: pdk.CategoryCorrectable, Message: "channel must not be empty"}},
		{"empty fields", func() error { return &pdk.Error{} },
			&pdk.Error{Code: pdk.CodePluginError, Category: pdk.CategoryCorrectable, Message: pdk.CodePluginError}},
		{"panic", func() error { var m map[string]int; m["x"] = 1; return nil }, //lint:ignore SA5000 the panic is the point
			&pdk.Error{Code: pdk.CodePluginTrap, Category: pdk.CategoryFatal,
				Message: "the connector failed unexpectedly: assignment to entry in nil map"}},
		{"panic after output", func() error { pdk.OutputBytes([]byte(`{}`)); panic("boom") },
			&pdk.Error{Code: pdk.CodePluginTrap, Category: pdk.CategoryFatal, Message: "the connector failed unexpectedly: boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := pdktest.New(t)
			_, got := h.Call(tt.fn)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tool error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHTTPHandleFunc(t *testing.T) {
	t.Parallel()
	h := pdktest.New(t)
	h.HandleHTTP(func(req pdk.HTTPRequest) pdk.HTTPResponse {
		if req.Credential != "api_key" {
			return pdk.HTTPResponse{Error: &pdk.Error{Code: pdk.CodeUnknownSlot, Category: pdk.CategoryFatal, Message: "no such slot"}}
		}
		return pdktest.Response(201, map[string]string{"got": string(req.Body)})
	})
	var resp pdk.HTTPResponse
	_, toolErr := h.Call(func() error {
		var err error
		resp, err = pdk.HTTP(pdk.HTTPRequest{Method: "POST", URL: "https://api.example/x", Body: []byte("hi\x00there"),
			Credential: "api_key", IdempotencyKey: "k1", TimeoutMS: 500})
		return err
	})
	if toolErr != nil {
		t.Fatalf("Call: %v", toolErr)
	}
	if resp.Status != 201 || string(resp.Body) != `{"got":"hi\u0000there"}` {
		t.Errorf("HTTP response = %d %s", resp.Status, resp.Body)
	}
	want := []pdk.HTTPRequest{{Method: "POST", URL: "https://api.example/x", Body: []byte("hi\x00there"),
		Credential: "api_key", IdempotencyKey: "k1", TimeoutMS: 500}}
	if diff := cmp.Diff(want, h.Requests()); diff != "" {
		t.Errorf("Requests() mismatch (-want +got):\n%s", diff)
	}

	// A refusal is an *Error, and a connector that returns it hands it to the agent unchanged.
	_, toolErr = h.Call(func() error {
		_, err := pdk.HTTP(pdk.HTTPRequest{Method: "GET", URL: "https://api.example/x", Credential: "other"})
		var e *pdk.Error
		if !errors.As(err, &e) || e.Code != pdk.CodeUnknownSlot {
			t.Errorf("HTTP error = %v, want *pdk.Error with code %s", err, pdk.CodeUnknownSlot)
		}
		return err
	})
	if toolErr == nil || toolErr.Code != pdk.CodeUnknownSlot || toolErr.Message != "no such slot" {
		t.Errorf("tool error = %+v, want the host refusal", toolErr)
	}
}

func TestHTTPServeInjectsCredential(t *testing.T) {
	t.Parallel()
	var gotAuth []string
	h := pdktest.New(t)
	h.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintf(w, "%s %s %s %s", r.Method, r.Host, r.URL.RequestURI(), b)
	}))
	h.SetCredential("token", pdktest.Bearer("canary-secret"))
	var resp pdk.HTTPResponse
	_, toolErr := h.Call(func() error {
		var err error
		resp, err = pdk.HTTP(pdk.HTTPRequest{Method: "PUT", URL: "https://api.example/v1/x?q=1",
			Headers: map[string][]string{"authorization": {"Bearer plugin-made-this-up"}}, Body: []byte("b"), Credential: "token"})
		if err != nil {
			return err
		}
		_, err = pdk.HTTP(pdk.HTTPRequest{Method: "GET", URL: "https://api.example/v1/y"})
		if err != nil {
			return err
		}
		_, err = pdk.HTTP(pdk.HTTPRequest{Method: "GET", URL: "https://api.example/v1/z", Credential: "missing"})
		return err
	})
	if diff := cmp.Diff([]string{"Bearer canary-secret", ""}, gotAuth); diff != "" {
		t.Errorf("Authorization seen upstream mismatch (-want +got):\n%s", diff)
	}
	if resp.Status != 429 || string(resp.Body) != "PUT api.example /v1/x?q=1 b" || pdk.RetryAfter(resp.Headers) != 7*time.Second {
		t.Errorf("response = %d %q %v", resp.Status, resp.Body, resp.Headers)
	}
	if toolErr == nil || toolErr.Code != pdk.CodeCredential || toolErr.Category != pdk.CategoryCorrectable {
		t.Errorf("request with an unfilled slot: tool error = %+v, want correctable %s", toolErr, pdk.CodeCredential)
	}
}

func TestHTTPNoUpstream(t *testing.T) {
	t.Parallel()
	h := pdktest.New(t)
	_, toolErr := h.Call(func() error {
		_, err := pdk.HTTP(pdk.HTTPRequest{Method: "GET", URL: "https://api.example/"})
		return err
	})
	if toolErr == nil || toolErr.Code != pdk.CodeEgressDenied {
		t.Errorf("tool error = %+v, want %s", toolErr, pdk.CodeEgressDenied)
	}
}

func TestDB(t *testing.T) {
	t.Parallel()
	h := pdktest.New(t)
	h.HandleDB(func(req pdk.DBRequest) pdk.DBResponse {
		return pdk.DBResponse{Columns: []string{"fn"}, Rows: [][]any{{req.Function}, {len(req.Params)}}}
	})
	var got pdk.DBResponse
	_, toolErr := h.Call(func() error {
		var err error
		got, err = pdk.DB(pdk.DBRequest{Function: "orders_by_customer", Params: []any{"c1", 2}})
		return err
	})
	if toolErr != nil {
		t.Fatalf("Call: %v", toolErr)
	}
	want := pdk.DBResponse{Columns: []string{"fn"}, Rows: [][]any{{"orders_by_customer"}, {float64(2)}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DB mismatch (-want +got):\n%s", diff)
	}
}

func TestConfigAndLog(t *testing.T) {
	t.Parallel()
	h := pdktest.New(t)
	h.SetConfig(map[string]string{"default_channel": "C0GENERAL", "empty": ""})
	type result struct {
		V, E             string
		OK, EmptyOK, NoK bool
	}
	var r result
	_, toolErr := h.Call(func() error {
		r.V, r.OK = pdk.Config("default_channel")
		r.E, r.EmptyOK = pdk.Config("empty")
		_, r.NoK = pdk.Config("nope")
		pdk.Log(pdk.LevelInfo, "hello")
		pdk.Logf(pdk.LevelWarn, "n=%d", 2)
		pdk.Log(pdk.LevelDebug, "") // dropped
		return nil
	})
	if toolErr != nil {
		t.Fatalf("Call: %v", toolErr)
	}
	if diff := cmp.Diff(result{V: "C0GENERAL", OK: true}, r); diff != "" {
		t.Errorf("Config mismatch (-want +got):\n%s", diff)
	}
	want := []pdktest.LogLine{{Level: pdk.LevelInfo, Message: "hello"}, {Level: pdk.LevelWarn, Message: "n=2"}}
	if diff := cmp.Diff(want, h.Logs()); diff != "" {
		t.Errorf("Logs() mismatch (-want +got):\n%s", diff)
	}
}

func TestOutsideCall(t *testing.T) {
	defer func() {
		r := recover()
		if s, _ := r.(string); !strings.Contains(s, "pdktest.Host.Call") {
			t.Errorf("pdk.InputBytes outside a call: recover() = %v, want a panic naming pdktest.Host.Call", r)
		}
	}()
	pdk.InputBytes()
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		h        map[string][]string
		min, max time.Duration
	}{
		{nil, 0, 0},
		{map[string][]string{"Retry-After": {"30"}}, 30 * time.Second, 30 * time.Second},
		{map[string][]string{"retry-after": {" 2 "}}, 2 * time.Second, 2 * time.Second},
		{map[string][]string{"Retry-After": {"-1"}}, 0, 0},
		{map[string][]string{"Retry-After": {"soon"}}, 0, 0},
		{map[string][]string{"Retry-After": {future}}, 80 * time.Second, 91 * time.Second},
	}
	for _, tt := range tests {
		if got := pdk.RetryAfter(tt.h); got < tt.min || got > tt.max {
			t.Errorf("RetryAfter(%v) = %v, want in [%v, %v]", tt.h, got, tt.min, tt.max)
		}
	}
}
