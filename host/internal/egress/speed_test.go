package egress

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// slackAnswer is what the fake Slack answers chat.postMessage with.
var slackAnswer = []byte(`{"ok":true,"channel":"C0GENERAL","ts":"1795443394.714321","message":{"type":"message",` +
	`"user":"U0BOT","bot_id":"B0BOT","text":"benchmark: deploy finished","ts":"1795443394.714321","team":"T0AIRLOCK"}}`)

// countingServer answers every request with slackAnswer and counts the connections opened to it.
func countingServer(tb testing.TB) (*httptest.Server, *atomic.Int64) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(slackAnswer)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv, &conns
}

// BenchmarkSerialHTTPS is BenchmarkSerial's egress case against an https upstream that offers
// HTTP/2, as real ones do: net/http's Transport, which speaks HTTP/1.1 to it (HTTP/2 is off).
func BenchmarkSerialHTTPS(b *testing.B) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(slackAnswer)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c, req := slackPost(b, srv.URL, []byte(`{"channel":"C0GENERAL","text":"benchmark: deploy finished"}`))
	c.upTransport.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		if resp := c.Do(context.Background(), req); resp.Error != nil || resp.Status != 200 {
			b.Fatalf("Do: %v %d", resp.Error, resp.Status)
		}
	}
}

// BenchmarkSerial is one caller sending the Slack connector's chat.postMessage through Do, and
// the same request through a plain net/http client (native), to the same loopback server.
func BenchmarkSerial(b *testing.B) {
	srv, _ := countingServer(b)
	body := []byte(`{"channel":"C0GENERAL","text":"benchmark: deploy finished"}`)
	b.Run("native", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		defer client.CloseIdleConnections()
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			req, _ := http.NewRequest("POST", srv.URL+"/api/chat.postMessage", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
			req.Header.Set("Authorization", "Bearer "+canaryBearer)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadAll(resp.Body); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
	b.Run("egress", func(b *testing.B) {
		c, req := slackPost(b, srv.URL, body)
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if resp := c.Do(context.Background(), req); resp.Error != nil || resp.Status != 200 {
				b.Fatalf("Do: %v %d", resp.Error, resp.Status)
			}
		}
	})
}

// slackPost returns a client that routes slack.com to upstream with the bot token in slot
// "bot", closed when b ends, and the Slack connector's chat.postMessage request with body.
func slackPost(b *testing.B, upstream string, body []byte) (*Client, abi.HTTPRequest) {
	b.Helper()
	c, err := New(Config{
		Rules:     []Rule{{Host: "slack.com", PathPrefix: "/api/", Methods: []string{"POST"}}},
		Slots:     map[string]Slot{"bot": {Kind: KindBearer, Hosts: []string{"slack.com"}, Secret: secret.New(canaryBearer)}},
		Upstreams: map[string]string{"https://slack.com": upstream},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c, abi.HTTPRequest{Method: "POST", URL: "https://slack.com/api/chat.postMessage", Credential: "bot",
		Headers: map[string][]string{"Content-Type": {"application/json; charset=utf-8"}}, Body: body}
}
