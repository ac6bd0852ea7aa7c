package egress

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/abi"
)

// Tests of plain-http upstreams (h1Transport) written as an upstream that misbehaves at the
// HTTP/1.1 level. Each upstream is a raw TCP server, so it can send what net/http's server never
// would; the connector reaches it as https://api.example.test through Upstreams.

// rawUpstream accepts connections and runs serve on each, with the connection's number (from 1).
type rawUpstream struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func newRawUpstream(t *testing.T, serve func(n int64, conn net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			n := u.conns.Add(1)
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer conn.Close()
				serve(n, conn, bufio.NewReader(conn))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); u.wg.Wait() })
	return u
}

// client reaches u as https://api.example.test, through Upstreams.
func (u *rawUpstream) client(t *testing.T, cfg Config) *Client {
	t.Helper()
	cfg.Rules = []Rule{{Host: "api.example.test", Methods: allMethods}}
	cfg.Upstreams = map[string]string{"https://api.example.test": "http://" + u.ln.Addr().String()}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// answer reads one request and writes a complete response with body.
func answer(conn net.Conn, br *bufio.Reader, body string) (*http.Request, bool) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, false
	}
	_, _ = io.Copy(io.Discard, req.Body)
	_, err = fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return req, err == nil
}

func post(c *Client, ctx context.Context, path string) abi.HTTPResponse {
	return c.Do(ctx, abi.HTTPRequest{Method: "POST", URL: "https://api.example.test" + path, Body: []byte(`{"text":"hi"}`)})
}

// One caller's requests share one connection (keep-alive), each answered in turn.
func TestKeepAlive(t *testing.T) {
	u := newRawUpstream(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		for i := 1; ; i++ {
			if _, ok := answer(conn, br, fmt.Sprintf("answer %d", i)); !ok {
				return
			}
		}
	})
	c := u.client(t, Config{})
	for i := 1; i <= 20; i++ {
		resp := post(c, context.Background(), "/x")
		wantStatus(t, resp, 200)
		if want := fmt.Sprintf("answer %d", i); string(resp.Body) != want {
			t.Fatalf("request %d got %q, want %q", i, resp.Body, want)
		}
	}
	if n := u.conns.Load(); n != 1 {
		t.Errorf("20 requests opened %d connections, want 1 (keep-alive)", n)
	}
}

// A request whose context is already done never reaches the upstream, on a pooled connection or
// a new one (an early version wrote it before the cancellation closed the connection).
func TestCancelledRequestNotSent(t *testing.T) {
	var requests atomic.Int64
	u := newRawUpstream(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		for {
			if _, ok := answer(conn, br, "ok"); !ok {
				return
			}
			requests.Add(1)
		}
	})
	c := u.client(t, Config{Retry: RetryPolicy{MaxAttempts: 1}})
	wantStatus(t, post(c, context.Background(), "/warm"), 200) // leaves one idle connection
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 50 {
		if resp := post(c, ctx, "/cancelled"); resp.Error == nil {
			t.Fatalf("a cancelled request was answered: %+v", resp)
		}
	}
	wantStatus(t, post(c, context.Background(), "/after"), 200)
	if n := requests.Load(); n != 2 {
		t.Errorf("the upstream answered %d requests, want 2: cancelled requests went out", n)
	}
}

// A kept-alive connection is closed once it has been idle for the idle timeout even when no
// request follows (an upstream a connector called once must not hold a socket of the host for
// good), and the transport goes on working, on new connections, after each sweep.
func TestIdleConnectionClosedWithoutAnotherRequest(t *testing.T) {
	gone := make(chan int64, 4)
	u := newRawUpstream(t, func(n int64, conn net.Conn, br *bufio.Reader) {
		for {
			if _, ok := answer(conn, br, "ok"); !ok {
				gone <- n // the host closed it
				return
			}
		}
	})
	c := u.client(t, Config{Retry: RetryPolicy{MaxAttempts: 1}})
	c.upPlain.idleTimeout = 50 * time.Millisecond
	for round := int64(1); round <= 2; round++ {
		wantStatus(t, post(c, context.Background(), "/once"), 200)
		select {
		case n := <-gone:
			if n != round {
				t.Errorf("round %d: connection %d closed, want %d", round, n, round)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the idle connection is still open 10 s after its 50 ms idle timeout", round)
		}
	}
	if n := u.conns.Load(); n != 2 {
		t.Errorf("%d connections opened, want 2 (one per round)", n)
	}
}

// An upstream that closes a kept-alive connection while it is idle (its keep-alive timeout) does
// not fail the next request, not even a POST the host may not replay: it goes out once, on a new
// connection.
func TestIdleConnectionClosedByUpstream(t *testing.T) {
	closed := make(chan struct{}, 4)
	var mu sync.Mutex
	var got []string
	u := newRawUpstream(t, func(n int64, conn net.Conn, br *bufio.Reader) {
		if req, err := http.ReadRequest(br); err == nil {
			mu.Lock()
			got = append(got, req.Method+" "+req.URL.Path)
			mu.Unlock()
			body := fmt.Sprintf("connection %d", n)
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
		conn.Close() // no Connection: close: the client finds out when it next looks
		closed <- struct{}{}
	})
	c := u.client(t, Config{})
	wantStatus(t, post(c, context.Background(), "/first"), 200)
	<-closed
	time.Sleep(10 * time.Millisecond) // the FIN crosses loopback
	resp := post(c, context.Background(), "/second")
	wantStatus(t, resp, 200)
	if string(resp.Body) != "connection 2" {
		t.Errorf("second POST answered %q, want it on a new connection", resp.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "POST /first,POST /second" {
		t.Errorf("upstream saw %q, want each POST once", got)
	}
}

// An upstream that answers one request twice cannot have its second answer taken for the
// answer to the next request (response smuggling on a kept-alive connection): whether the extra
// answer came with the first (it waits in the client's buffer) or after it (it waits in the
// socket). Bytes that arrive only after the next request went out cannot be told from its answer,
// with net/http's Transport as here; the upstream chooses that answer anyway.
func TestUnsolicitedResponseNotReused(t *testing.T) {
	for _, sameWrite := range []bool{true, false} {
		t.Run(fmt.Sprintf("same_write=%v", sameWrite), func(t *testing.T) {
			extra := make(chan struct{}, 8)
			u := newRawUpstream(t, func(n int64, conn net.Conn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				real := fmt.Sprintf("real %d", n)
				first := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(real), real)
				smuggled := "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
				if sameWrite {
					io.WriteString(conn, first+smuggled)
				} else {
					io.WriteString(conn, first)
					time.Sleep(20 * time.Millisecond) // the client has read the first answer
					io.WriteString(conn, smuggled)
				}
				extra <- struct{}{}
				for {
					if _, ok := answer(conn, br, "smuggled"); !ok {
						return
					}
				}
			})
			c := u.client(t, Config{})
			for i := 1; i <= 3; i++ {
				resp := post(c, context.Background(), "/x")
				wantStatus(t, resp, 200)
				if string(resp.Body) != fmt.Sprintf("real %d", i) {
					t.Fatalf("request %d got %q, want the answer of a fresh connection", i, resp.Body)
				}
				<-extra
				time.Sleep(10 * time.Millisecond) // the extra answer crosses loopback
			}
		})
	}
}

// Attack (hostile upstream, red team s9): the first answer on a connection is framed so that the
// bytes after it, by the framing the client must apply, are a whole second response carrying
// subject alice's data: a body on a HEAD answer, a 204 or 304 (which have none), a chunked body
// with bytes after its last chunk, Content-Length beside Transfer-Encoding (chunked wins), a
// final answer after interim ones. Whether those bytes come with the answer or just after it,
// the next request, of subject bob, must not be answered by them on the pooled connection.
func TestFramingLeftoversNotReadByNextSubject(t *testing.T) {
	smuggled := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\nalice's mailbox 123"
	for _, v := range []struct {
		name, method, first string
	}{
		{"head_with_body", "HEAD", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(smuggled))},
		{"no_content_with_body", "POST", "HTTP/1.1 204 No Content\r\n\r\n"},
		{"not_modified_with_body", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"},
		{"chunked_then_more", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nreal\r\n0\r\n\r\n"},
		{"length_and_chunked", "GET", fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nreal\r\n0\r\n\r\n", 15+len(smuggled))},
		{"interim_then_final", "POST", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal"},
	} {
		for _, sameWrite := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/same_write=%v", v.name, sameWrite), func(t *testing.T) {
				sent := make(chan struct{}, 8)
				u := newRawUpstream(t, func(n int64, conn net.Conn, br *bufio.Reader) {
					if n > 1 { // alice's connection only: later ones answer honestly
						for {
							if _, ok := answer(conn, br, fmt.Sprintf("real %d", n)); !ok {
								return
							}
						}
					}
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					if sameWrite {
						io.WriteString(conn, v.first+smuggled)
					} else {
						io.WriteString(conn, v.first)
						time.Sleep(20 * time.Millisecond) // the client has read the first answer
						io.WriteString(conn, smuggled)
					}
					sent <- struct{}{}
					for {
						if _, ok := answer(conn, br, fmt.Sprintf("real %d", n)); !ok {
							return
						}
					}
				})
				c := u.client(t, Config{})
				alice := WithSubject(context.Background(), "alice")
				first := c.Do(alice, abi.HTTPRequest{Method: v.method, URL: "https://api.example.test/inbox"})
				if first.Error != nil {
					t.Fatalf("alice's %s: %+v", v.method, first.Error)
				}
				<-sent
				time.Sleep(10 * time.Millisecond) // the leftover bytes cross loopback
				bob := WithSubject(context.Background(), "bob")
				for i := range 2 {
					resp := c.Do(bob, abi.HTTPRequest{Method: "GET", URL: "https://api.example.test/inbox"})
					wantStatus(t, resp, 200)
					if !strings.HasPrefix(string(resp.Body), "real ") {
						t.Fatalf("bob's request %d was answered %q, from the bytes after alice's answer", i+1, resp.Body)
					}
				}
			})
		}
	}
}

// A body that never ends is cut at MaxResponseBytes, and the request returns: the host does not
// read on to the end of the body to keep the connection, nor after a redirect's body.
func TestEndlessBody(t *testing.T) {
	u := newRawUpstream(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		head := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		if req.URL.Path == "/redirect" {
			head = "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nTransfer-Encoding: chunked\r\n\r\n"
		}
		if _, err := io.WriteString(conn, head); err != nil {
			return
		}
		chunk := "4000\r\n" + strings.Repeat("x", 0x4000) + "\r\n"
		for {
			if _, err := io.WriteString(conn, chunk); err != nil {
				return
			}
		}
	})
	c := u.client(t, Config{MaxResponseBytes: 1 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang fails, not a slow machine
	defer cancel()
	wantError(t, post(c, ctx, "/stream"), abi.CodeResponseTooLarge)
	// The redirect's body is discarded after 64 KiB; the hop to /elsewhere streams forever too.
	wantError(t, c.Do(ctx, abi.HTTPRequest{URL: "https://api.example.test/redirect"}), abi.CodeResponseTooLarge)
	if ctx.Err() != nil {
		t.Fatal("the requests only ended with the test's deadline")
	}
}

// Response headers that never end are refused after 256 KiB, as net/http's Transport does.
func TestEndlessHeaders(t *testing.T) {
	u := newRawUpstream(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		if _, err := io.WriteString(conn, "HTTP/1.1 200 OK\r\n"); err != nil {
			return
		}
		line := "X-Filler: " + strings.Repeat("y", 1000) + "\r\n"
		for {
			if _, err := io.WriteString(conn, line); err != nil {
				return
			}
		}
	})
	c := u.client(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp := post(c, ctx, "/x")
	wantError(t, resp, abi.CodeUpstreamError)
	if ctx.Err() != nil {
		t.Fatal("the request only ended with the test's deadline")
	}
}

// An upstream that sends its headers and then stalls in the body is cut off by timeout_ms.
func TestStalledBodyTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	u := newRawUpstream(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
		<-release
	})
	c := u.client(t, Config{Retry: RetryPolicy{MaxAttempts: 1}})
	start := time.Now()
	resp := c.Do(context.Background(), abi.HTTPRequest{URL: "https://api.example.test/x", TimeoutMS: 100})
	wantError(t, resp, abi.CodeTimeout)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the timeout of 100 ms took %v", d)
	}
	// Cancelled rather than timed out: reported as cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	resp = c.Do(ctx, abi.HTTPRequest{URL: "https://api.example.test/x"})
	wantError(t, resp, abi.CodeUnavailable)
	if !strings.Contains(resp.Error.Message, "cancelled") {
		t.Errorf("message %q does not say the request was cancelled", resp.Error.Message)
	}
}

// 1xx interim answers are skipped; the final answer is handed over.
func TestInterimResponses(t *testing.T) {
	u := newRawUpstream(t, func(_ int64, conn net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(conn, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"+
			"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
	})
	c := u.client(t, Config{})
	resp := post(c, context.Background(), "/x")
	wantStatus(t, resp, 201)
	if string(resp.Body) != "done" {
		t.Errorf("body %q, want the final answer's", resp.Body)
	}
}

// An https upstream that offers HTTP/2 gets HTTP/1.1 (net/http's Transport, HTTP/2 off); plain http gets
// HTTP/1.1 on the calling goroutine.
func TestProtocolPerScheme(t *testing.T) {
	proto := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	tlsSrv := httptest.NewUnstartedServer(proto)
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	plainSrv := httptest.NewServer(proto)
	defer plainSrv.Close()
	c, err := New(Config{
		Rules: []Rule{{Host: "secure.example.test"}, {Host: "plain.example.test"}},
		Upstreams: map[string]string{
			"https://secure.example.test": tlsSrv.URL,
			"https://plain.example.test":  plainSrv.URL,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.upTransport.TLSClientConfig = tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	for host, want := range map[string]string{"secure.example.test": "HTTP/1.1", "plain.example.test": "HTTP/1.1"} {
		resp := c.Do(context.Background(), abi.HTTPRequest{URL: "https://" + host + "/"})
		wantStatus(t, resp, 200)
		if string(resp.Body) != want {
			t.Errorf("%s was reached over %s, want %s", host, resp.Body, want)
		}
	}
}
