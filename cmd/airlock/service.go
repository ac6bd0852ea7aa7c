package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/host"
)

// service holds what 'airlock serve --http' needs to run as a service: TLS, health probes and
// a graceful shutdown. serve.go hooks it in; the logic lives here.
type service struct {
	tlsCert, tlsKey string
	shutdownTimeout time.Duration

	probes probes
	// streams is cancelled once the host's calls in progress finished during a shutdown: it
	// ends the long-lived GET event streams of MCP sessions, so that they do not hold the drain
	// until its bound. They stay open until then: results can travel on them, and an MCP client
	// whose stream breaks fails its session, and with it the call it waits for.
	streams       context.Context
	cancelStreams context.CancelFunc
}

// streamFlushGrace is how long event streams stay open after the last call returned, for its
// result to be written (microseconds in practice; the bound keeps a stuck client from holding
// the shutdown).
const streamFlushGrace = time.Second

func (sv *service) register(fs *flag.FlagSet) {
	fs.StringVar(&sv.tlsCert, "tls-cert", os.Getenv("AIRLOCK_TLS_CERT"), "serve HTTPS with this PEM certificate `file` (chain first to last; reread when it changes; $AIRLOCK_TLS_CERT)")
	fs.StringVar(&sv.tlsKey, "tls-key", os.Getenv("AIRLOCK_TLS_KEY"), "the PEM private key `file` of --tls-cert ($AIRLOCK_TLS_KEY)")
	fs.DurationVar(&sv.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM or SIGINT, how long to let calls in progress finish before closing their connections")
}

// listen opens addr, with TLS when --tls-cert is set, and returns the listener and its scheme.
func (sv *service) listen(addr string, logger *slog.Logger) (net.Listener, string, error) {
	if (sv.tlsCert == "") != (sv.tlsKey == "") {
		return nil, "", usagef("--tls-cert and --tls-key go together")
	}
	var cfg *tls.Config
	if sv.tlsCert != "" {
		cr := &certReloader{certFile: sv.tlsCert, keyFile: sv.tlsKey, logger: logger}
		if _, err := cr.load(); err != nil {
			return nil, "", err
		}
		cfg = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cr.GetCertificate, NextProtos: []string{"h2", "http/1.1"}}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	if cfg == nil {
		return ln, "http", nil
	}
	return tls.NewListener(ln, cfg), "https", nil
}

// handler adds the probes to mux and returns mux wrapped so that a shutdown ends idle streams.
func (sv *service) handler(mux *http.ServeMux) http.Handler {
	sv.streams, sv.cancelStreams = context.WithCancel(context.Background())
	sv.probes.register(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet { // an MCP event stream (or a probe: it ends at once anyway)
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			defer context.AfterFunc(sv.streams, cancel)()
			r = r.WithContext(ctx)
		}
		mux.ServeHTTP(w, r)
	})
}

// drainOnDone shuts hs down gracefully once ctx is done (SIGTERM or SIGINT): /readyz turns 503
// at once, no new connection is accepted, and calls in progress get --shutdown-timeout to
// finish; then their connections are closed. The host, closed after serve returns, waits for
// the calls it runs and flushes the audit sink.
func (sv *service) drainOnDone(ctx context.Context, hs *http.Server, logger *slog.Logger) {
	<-ctx.Done()
	sv.probes.draining.Store(true)
	logger.Info("shutting down: no new connections; finishing the calls in progress", "bound", sv.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), sv.shutdownTimeout)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- hs.Shutdown(sctx) }() // closes the listeners at once
	// Results travel on the sessions' event streams, written just after the host's call returns:
	// keep the streams until every call returned, and a moment more for the last result.
	sv.probes.h.WaitCalls(sctx)
	select {
	case <-time.After(streamFlushGrace):
	case <-sctx.Done():
	}
	sv.cancelStreams()
	if err := <-shut; err != nil {
		logger.Error("shutdown: calls still running after --shutdown-timeout are cut off; raise it if calls take longer", "bound", sv.shutdownTimeout, "err", err)
		hs.Close()
	}
}

// certReloader serves the certificate in certFile/keyFile, read again on the first handshake
// after either file's modification time or size changes (a renewed certificate needs no
// restart). A pair that does not load is logged and the previous one keeps serving.
type certReloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu    sync.Mutex
	stamp string
	cert  *tls.Certificate
}

func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := c.load()
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.cert != nil {
			c.logger.Error("TLS certificate not reloaded; the previous one keeps serving", "err", err)
			return c.cert, nil
		}
		return nil, err
	}
	return cert, nil
}

// load returns the current pair, reading the files again if they changed since the last read.
func (c *certReloader) load() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := stampOf(c.certFile, c.keyFile)
	if c.cert != nil && st == c.stamp {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s / --tls-key %s: %w (both PEM; the key must match the certificate)", c.certFile, c.keyFile, err)
	}
	if c.cert != nil {
		c.logger.Info("TLS certificate reloaded", "file", c.certFile)
	}
	c.cert, c.stamp = &cert, st
	return c.cert, nil
}

// closeHost closes h once serving stopped: it waits for the calls the host still runs and
// flushes the audit sink, logging records that could not be written.
func closeHost(h *host.Host, logger *slog.Logger) {
	if err := h.Close(context.Background()); err != nil {
		logger.Error("shutdown: closing the host failed; audit records may be missing", "err", err)
		return
	}
	logger.Info("shut down: calls finished and the audit log flushed")
}
