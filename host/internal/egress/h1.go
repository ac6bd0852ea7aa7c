package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// h1Transport sends plain-http requests (HTTP/1.1 without TLS: Upstreams targets such as a local
// proxy, and http rules) on the calling goroutine, over keep-alive connections it pools per
// host:port. net/http's Transport hands every request to a write goroutine and every response
// back from a read goroutine; on a loopback or LAN upstream those hand-offs cost more than the
// request itself (RATIONALE.md, issue 19). https keeps net/http's Transport, HTTP/1.1 with
// HTTP/2 off (newTransport).
//
// The wire format is net/http's own (Request.Write, ReadResponse); what this adds is what the
// Transport adds around them, with the same limits: response headers capped at
// maxResponseHeader bytes, 1xx answers skipped, the connection reused only after a body read to
// its end with no byte left over and no Connection: close, at most maxIdlePerHost idle per host
// and maxIdle in all, idle ones closed after idleTimeout (by a timer, whether or not another
// request comes) and skipped when the peer has closed them, and
// a request that met a connection the upstream had closed while idle sent again on a new one
// when no byte of it was written or it may be replayed (as net/http does). Dials go through the
// same checked dialer as the Transport's.
type h1Transport struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// disableKeepAlives closes every connection after its response (tests: one connection per
	// attempt, as Transport.DisableKeepAlives).
	disableKeepAlives bool

	// idleTimeout is how long a connection may stay idle (the idleTimeout constant; shorter in
	// tests).
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   map[string][]*h1Conn // host:port → idle connections, most recent last
	nIdle  int
	closed bool
	// sweeper closes the connections idle for idleTimeout, whether or not another request
	// comes (an upstream used once must not hold a socket for the life of the process). It is
	// armed while a connection is idle: put arms it, sweep re-arms it for the oldest left.
	sweeper *time.Timer
	armed   bool
}

// Limits, as the Transport's configuration in newTransport.
const (
	maxResponseHeader = 256 << 10
	maxIdlePerHost    = 8
	maxIdle           = 64
	idleTimeout       = 90 * time.Second
	max1xx            = 5
)

var errHeaderTooLarge = fmt.Errorf("egress: the response headers exceed %d bytes", maxResponseHeader)

func newH1Transport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *h1Transport {
	return &h1Transport{dial: dial, idleTimeout: idleTimeout, idle: make(map[string][]*h1Conn)}
}

// h1Conn is one connection; it counts what crosses it for the round trip in progress.
type h1Conn struct {
	conn      net.Conn
	addr      string
	peek      *peeker
	br        *bufio.Reader
	bw        *bufio.Writer
	limit     int64 // bytes that may still be read, < 0 for no limit (set while reading headers)
	written   int64 // bytes written in this round trip
	read      int64 // bytes read in this round trip
	idleSince time.Time
}

func (pc *h1Conn) Read(p []byte) (int, error) {
	if pc.limit >= 0 {
		if pc.limit == 0 {
			return 0, errHeaderTooLarge
		}
		if int64(len(p)) > pc.limit {
			p = p[:pc.limit]
		}
	}
	n, err := pc.conn.Read(p)
	pc.read += int64(n)
	if pc.limit >= 0 {
		pc.limit -= int64(n)
	}
	return n, err
}

func (pc *h1Conn) Write(p []byte) (int, error) {
	n, err := pc.conn.Write(p)
	pc.written += int64(n)
	return n, err
}

// RoundTrip sends req and returns the response, whose Body must be closed (it returns the
// connection to the pool when it was read to its end).
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	if err := ctx.Err(); err != nil {
		return nil, err // nothing dialled, nothing sent
	}
	for tries := 0; ; tries++ {
		pc, reused, err := t.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		resp, err := t.roundTrip(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		// The upstream closed a pooled connection before answering (it timed it out while idle):
		// send again on another, as net/http does, if no byte went out or the request may be
		// replayed.
		if !reused || pc.read > 0 || ctx.Err() != nil || tries >= maxIdlePerHost || !(pc.written == 0 || replayable(req)) {
			return nil, err
		}
		if req.Body != nil {
			if req.GetBody == nil {
				return nil, err
			}
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// replayable is net/http's rule for resending a request on a new connection: an idempotent
// method or an idempotency key, and a body that can be read again.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, k1 := req.Header["Idempotency-Key"]
	_, k2 := req.Header["X-Idempotency-Key"]
	return k1 || k2
}

func (t *h1Transport) roundTrip(ctx context.Context, pc *h1Conn, req *http.Request) (*http.Response, error) {
	// A context already done sends nothing (as net/http's Transport): AfterFunc below runs its
	// function on another goroutine, which could set the deadline after the request was written.
	if err := ctx.Err(); err != nil {
		t.put(pc)
		return nil, err
	}
	// A cancelled or expired context unblocks the reads and writes below at once.
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = pc.conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	pc.written, pc.read, pc.limit = 0, 0, -1
	if err := req.Write(pc.bw); err != nil {
		return fail(err)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err)
	}
	pc.limit = maxResponseHeader
	var resp *http.Response
	for n1xx := 0; ; n1xx++ {
		var err error
		if resp, err = http.ReadResponse(pc.br, req); err != nil {
			return fail(err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode < 100 {
			break
		}
		if resp.StatusCode == http.StatusSwitchingProtocols || n1xx >= max1xx {
			return fail(fmt.Errorf("egress: unexpected %d response", resp.StatusCode))
		}
	}
	pc.limit = -1
	b := &h1Body{rc: resp.Body, t: t, pc: pc, ctx: ctx, stop: stop, keep: !resp.Close}
	if resp.Body == http.NoBody {
		b.eof = true
	}
	resp.Body = b
	return resp, nil
}

// h1Body is a response body; Close returns its connection to the pool if the body was read to
// its end, and closes it otherwise (never reading on: a hostile upstream's body may not end).
type h1Body struct {
	rc   io.ReadCloser
	t    *h1Transport
	pc   *h1Conn
	ctx  context.Context
	stop func() bool
	keep bool // the upstream did not ask to close the connection
	eof  bool
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("egress: read on a closed response body")
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil && b.ctx.Err() != nil:
		err = b.ctx.Err()
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	stopped := b.stop() // false: the context's deadline was set on the connection
	if !b.eof || !b.keep || !stopped || b.pc.br.Buffered() > 0 {
		return b.pc.conn.Close()
	}
	_ = b.rc.Close() // at its end: reads nothing more
	b.t.put(b.pc)
	return nil
}

// get returns an idle connection to addr that the peer has not closed, or dials a new one.
func (t *h1Transport) get(ctx context.Context, addr string) (pc *h1Conn, reused bool, err error) {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[addr]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		pc = list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		t.nIdle--
		t.mu.Unlock()
		if now.Sub(pc.idleSince) < t.idleTimeout && pc.peek.peerOpen() {
			return pc, true, nil
		}
		_ = pc.conn.Close()
	}
	conn, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	pc = &h1Conn{conn: conn, addr: addr, peek: newPeeker(conn)}
	pc.br = bufio.NewReader(pc)
	pc.bw = bufio.NewWriter(pc)
	return pc, false, nil
}

func (t *h1Transport) put(pc *h1Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.disableKeepAlives || t.nIdle >= maxIdle || len(t.idle[pc.addr]) >= maxIdlePerHost {
		_ = pc.conn.Close()
		return
	}
	pc.idleSince = time.Now()
	t.idle[pc.addr] = append(t.idle[pc.addr], pc)
	t.nIdle++
	if !t.armed { // one timer for the transport, not one per request
		t.armed = true
		if t.sweeper == nil {
			t.sweeper = time.AfterFunc(t.idleTimeout, t.sweep)
		} else {
			t.sweeper.Reset(t.idleTimeout)
		}
	}
}

// sweep closes the connections that have been idle for idleTimeout and arms the sweeper again
// for the oldest one left, if any.
func (t *h1Transport) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.armed = false
	if t.closed {
		return
	}
	now := time.Now()
	var oldest time.Time
	for addr, list := range t.idle {
		kept := list[:0]
		for _, pc := range list {
			if now.Sub(pc.idleSince) >= t.idleTimeout {
				_ = pc.conn.Close()
				t.nIdle--
				continue
			}
			if oldest.IsZero() || pc.idleSince.Before(oldest) {
				oldest = pc.idleSince
			}
			kept = append(kept, pc)
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = kept
		}
	}
	if !oldest.IsZero() {
		t.armed = true
		t.sweeper.Reset(oldest.Add(t.idleTimeout).Sub(now))
	}
}

// close closes the idle connections; after it, connections in use are closed when their
// response is.
func (t *h1Transport) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.sweeper != nil {
		t.sweeper.Stop()
	}
	for addr, list := range t.idle {
		for _, pc := range list {
			_ = pc.conn.Close()
		}
		delete(t.idle, addr)
	}
	t.nIdle = 0
}
