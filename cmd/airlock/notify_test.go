package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// 'airlock serve' with a notify: block in airlock.yaml, as the README shows it: an agent's call
// that needs approval reaches the webhook, signed as documented, linking to the console.
func TestServeNotifiesPendingApproval(t *testing.T) {
	w := newGrantWorld(t)
	w.install(t)
	w.must(t, exitOK, "grant", "slack", "--tools", "*", "--scopes", "*", "--hosts", "*", "--credential", "bot_token=store:slack_bot", "--confirm", "post_message")
	out, _ := w.must(t, exitOK, "agent", "add", "bot", "--subject", "acme")
	token := strings.TrimSpace(out)

	const hookKey = "whsec-cli-test-4f7Q"
	t.Setenv("TEST_HOOK_SECRET", hookKey)
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	arrived := make(chan struct{}, 8)
	recv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
		arrived <- struct{}{}
	}))
	t.Cleanup(recv.Close)
	cfg := fmt.Sprintf("state_dir: state\nnotify:\n  public_url: https://airlock.example.com\n  webhooks:\n    - name: ops\n      url: %s\n      secret: env:TEST_HOOK_SECRET\n", recv.URL)
	if err := os.WriteFile(filepath.Join(w.dir, "airlock.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, w.g...)
	if code, body := s.get(t, &http.Client{Timeout: 10 * time.Second}, "http", "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d %s\n%s", code, body, s.logs.String())
	}

	client := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: "http://" + s.addr + "/mcp",
		HTTPClient: &http.Client{Transport: bearerTransport{token: token, once: &sync.Once{}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "slack.post_message",
		Arguments: map[string]any{"channel": "C0GENERAL", "text": "deploy"}})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := json.Marshal(res.Content)
	id := regexp.MustCompile(`ap_[0-9a-f]+`).FindString(string(text))
	if !res.IsError || id == "" {
		t.Fatalf("post_message = %s, want approval_pending with an ID", text)
	}
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatalf("the webhook got nothing\nserver output: %s", s.logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	r, body := got[0], bodies[0]
	ts, sig, _ := strings.Cut(strings.TrimPrefix(r.Header.Get("X-Airlock-Signature"), "t="), ",v1=")
	m := hmac.New(sha256.New, []byte(hookKey))
	m.Write([]byte(ts + "." + string(body)))
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(m.Sum(nil)))) {
		t.Errorf("X-Airlock-Signature %q does not verify", r.Header.Get("X-Airlock-Signature"))
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil || p["id"] != id || p["agent"] != "bot" || p["subject"] != "acme" ||
		p["link"] != "https://airlock.example.com/console/approvals/"+id {
		t.Errorf("payload %s (%v), want approval %s by bot for acme with its console link", body, err, id)
	}
}

// A generic webhook without a signing secret is refused when serve starts, saying what to add.
func TestServeRefusesUnsignedWebhook(t *testing.T) {
	w := newGrantWorld(t)
	cfg := "state_dir: state\nnotify:\n  webhooks:\n    - name: ops\n      url: https://hooks.example.com/airlock\n"
	if err := os.WriteFile(filepath.Join(w.dir, "airlock.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errOut strings.Builder
	code := run(ctx, append([]string{"serve", "--http", "127.0.0.1:0"}, w.g...), io.Discard, &errOut)
	if code == exitOK || !strings.Contains(errOut.String(), "notify: webhook ops: no secret") {
		t.Errorf("serve = %d %s, want a refusal naming the missing secret", code, errOut.String())
	}
}
