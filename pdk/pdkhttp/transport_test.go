package pdkhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdkhttp"
	"github.com/airlock-dev/airlock/pdk/pdktest"
)

func TestClientThroughHost(t *testing.T) {
	t.Parallel()
	h := pdktest.New(t)
	h.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Auth", r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Content-Type")+" "+string(b))
	}))
	h.SetCredential("bot_token", pdktest.Bearer("xoxb-canary"))

	var status int
	var body, seenAuth string
	_, toolErr := h.Call(func() error {
		c := &http.Client{Transport: &pdkhttp.Transport{Credential: "bot_token", IdempotencyKey: "op-1", Timeout: 2 * time.Second}}
		resp, err := c.Post("https://slack.com/api/chat.postMessage?x=1", "application/json", strings.NewReader(`{"a":1}`))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		status, body, seenAuth = resp.StatusCode, string(b), resp.Header.Get("X-Seen-Auth")
		return err
	})
	if toolErr != nil {
		t.Fatalf("Call: %v", toolErr)
	}
	if status != 202 || body != `POST /api/chat.postMessage?x=1 application/json {"a":1}` || seenAuth != "Bearer xoxb-canary" {
		t.Errorf("got %d %q (auth %q)", status, body, seenAuth)
	}
	reqs := h.Requests()
	if len(reqs) != 1 {
		t.Fatalf("Requests() = %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	got.Headers = nil
	want := pdk.HTTPRequest{Method: "POST", URL: "https://slack.com/api/chat.postMessage?x=1", Body: []byte(`{"a":1}`),
		Credential: "bot_token", IdempotencyKey: "op-1", TimeoutMS: 2000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request mismatch (-want +got):\n%s", diff)
	}
}

func TestRefusal(t *testing.T) {
	t.Parallel()
	h := pdktest.New(t)
	refusal := &pdk.Error{Code: pdk.CodeEgressDenied, Category: pdk.CategoryFatal,
		Message: "this connector may not reach evil.example"}
	h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse { return pdk.HTTPResponse{Error: refusal} })
	_, toolErr := h.Call(func() error {
		c := &http.Client{Transport: &pdkhttp.Transport{}}
		_, err := c.Get("https://evil.example/")
		var e *pdk.Error
		if !errors.As(err, &e) || e.Code != pdk.CodeEgressDenied {
			t.Errorf("Get error = %v, want one that unwraps to *pdk.Error", err)
		}
		if !strings.HasSuffix(err.Error(), refusal.Message) {
			t.Errorf("Get error text = %q, want it to end with the host's message", err)
		}
		return err
	})
	if diff := cmp.Diff(refusal, toolErr); diff != "" {
		t.Errorf("tool error mismatch (-want +got):\n%s", diff)
	}
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	h := pdktest.New(t)
	h.HandleHTTP(func(pdk.HTTPRequest) pdk.HTTPResponse { return pdktest.Response(200, "{}") })
	_, toolErr := h.Call(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://api.example/", nil)
		resp, err := (&http.Client{Transport: &pdkhttp.Transport{Timeout: time.Minute}}).Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
	if toolErr != nil {
		t.Fatal(toolErr)
	}
	if ms := h.Requests()[0].TimeoutMS; ms <= 0 || ms > 300 {
		t.Errorf("timeout_ms = %d, want the context deadline (≤ 300)", ms)
	}
}
