package egress

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pipeListener hands server ends of net.Pipe connections to an http.Server. Unlike sockets,
// pipes block durably, so a Client and its upstream can run inside a testing/synctest bubble
// where time is fake and waits are exact.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP(apiIP), Port: 80}
}

// pipeUpstream is a fake upstream, reached through pipes, that records when each request came.
type pipeUpstream struct {
	c     *Client
	srv   *http.Server
	ln    *pipeListener
	start time.Time

	mu      sync.Mutex
	reqs    []seen
	at      []time.Duration // arrival of each request, since start
	dials   int
	refuse  int // refuse this many more dials with ECONNREFUSED
	records []Record
}

// stepFunc answers the n-th request (1-based).
type stepFunc func(n int, w http.ResponseWriter, r *http.Request)

// newPipe starts a Client and an upstream inside the current synctest bubble. Every host
// resolves to apiIP. The jitter always draws its ceiling, so waits are exact. Call close before
// the bubble ends.
func newPipe(t *testing.T, cfg Config, step stepFunc) *pipeUpstream {
	t.Helper()
	p := &pipeUpstream{ln: &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}, start: time.Now()}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.reqs = append(p.reqs, seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(body)})
		p.at = append(p.at, time.Since(p.start))
		n := len(p.reqs)
		p.mu.Unlock()
		step(n, w, r)
	})}
	go p.srv.Serve(p.ln)
	if cfg.Rules == nil {
		cfg.Rules = []Rule{{Scheme: "http", Host: "api.example.test", Methods: allMethods},
			{Scheme: "http", Host: "other.example.test", Methods: allMethods}}
	}
	if cfg.Slots == nil {
		cfg.Slots = testSlots()
	}
	cfg.Resolver = fixedResolver{}
	cfg.Observe = func(r Record) {
		p.mu.Lock()
		p.records = append(p.records, r)
		p.mu.Unlock()
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.transport.DisableKeepAlives = true // one connection per attempt: exact counts, no transport-level replay
	c.plain.disableKeepAlives = true
	c.randN = func(n int64) int64 { return n - 1 }
	c.dialAddr = func(ctx context.Context, network string, ap netip.AddrPort, trusted bool) (net.Conn, error) {
		p.mu.Lock()
		p.dials++
		refuse := p.refuse > 0
		if refuse {
			p.refuse--
		}
		p.mu.Unlock()
		if refuse {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		cli, srv := net.Pipe()
		select {
		case p.ln.ch <- srv:
			return cli, nil
		case <-ctx.Done():
			cli.Close()
			srv.Close()
			return nil, ctx.Err()
		}
	}
	p.c = c
	return p
}

func (p *pipeUpstream) close() {
	p.c.Close()
	p.srv.Close()
}

func (p *pipeUpstream) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reqs)
}

func (p *pipeUpstream) requests() []seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]seen(nil), p.reqs...)
}

func (p *pipeUpstream) arrivals() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Duration(nil), p.at...)
}

func (p *pipeUpstream) recs() []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Record(nil), p.records...)
}

type fixedResolver struct{}

func (fixedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr(apiIP)}, nil
}

// reset closes the connection without an answer.
func reset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

// hang blocks until the client gives up.
func hang(r *http.Request) { <-r.Context().Done() }
