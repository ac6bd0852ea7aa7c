package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/mcp"
	"github.com/airlock-dev/airlock/host/store"
)

// observeFlags are serve's observability flags. Tracing has none: it follows the standard
// OTEL_* environment variables (see host.TracingFromEnv).
type observeFlags struct {
	metrics string
}

func (o *observeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.metrics, "metrics", os.Getenv("AIRLOCK_METRICS"), "serve Prometheus metrics at http://`ADDR`/metrics, on a listener of its own, e.g. 127.0.0.1:9090 (off by default; $AIRLOCK_METRICS). Traces: set OTEL_EXPORTER_OTLP_ENDPOINT")
}

// observability is what serve set up for operators to watch it.
type observability struct {
	metrics  *host.Metrics // nil without --metrics
	shutdown []func(context.Context) error
}

// startObservability sets up the metrics (and their listener) and tracing, and puts them in g
// for openRuntime. Agent names are metric labels only when registered with 'airlock agent add'
// (or the stdio --agent), a set an admin controls.
func startObservability(ctx context.Context, g *globals, o *observeFlags, stdioAgent, httpAddr string, logger *slog.Logger, w io.Writer) (*observability, error) {
	obs := &observability{}
	tp, stop, err := host.TracingFromEnv(ctx)
	if err != nil {
		return nil, err
	}
	g.tracer = tp
	obs.shutdown = append(obs.shutdown, stop)
	if o.metrics == "" {
		return obs, nil
	}
	if o.metrics == httpAddr {
		return nil, usagef("--metrics %s is the MCP listener's address: metrics need a listener of their own", o.metrics)
	}
	_, _, stateDir, err := g.stateDSN()
	if err != nil {
		return nil, err
	}
	agents := registeredAgents{agents: mcp.OpenAgents(filepath.Join(stateDir, "agents.json")), stdio: stdioAgent}
	obs.metrics = host.NewMetrics(&host.MetricsOptions{Agent: agents.has})
	g.metrics = obs.metrics
	ln, err := net.Listen("tcp", o.metrics)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	if ip, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(ip).IsLoopback() {
		logger.Warn("the metrics listener is not on loopback: anyone who reaches it sees connector, tool and host names and call volumes; bind it to 127.0.0.1 or protect it", "addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", obs.metrics.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go hs.Serve(ln)
	obs.shutdown = append(obs.shutdown, hs.Shutdown)
	banner(g, w, fmt.Sprintf("airlock serve: Prometheus metrics at http://%s/metrics", ln.Addr()), "metrics", "http://"+ln.Addr().String()+"/metrics")
	return obs, nil
}

// close stops the metrics listener and flushes the traces.
func (obs *observability) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, f := range obs.shutdown {
		f(ctx)
	}
}

// registeredAgents answers whether a name is a registered agent's, re-reading the agents file
// (a stat when unchanged) at most once a second.
type registeredAgents struct {
	agents *mcp.Agents
	stdio  string

	mu    sync.Mutex
	names map[string]bool
	read  time.Time
}

func (r *registeredAgents) has(name string) bool {
	if name == r.stdio {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.read) > time.Second {
		if list, err := r.agents.List(); err == nil {
			r.names = make(map[string]bool, len(list))
			for _, a := range list {
				r.names[a.Name] = true
			}
		}
		r.read = time.Now()
	}
	return r.names[name]
}

// refusals records the requests next refuses with 401 on listener ("mcp", "admin"): in the
// audit trail (rate-limited there), in the metrics, and in the log, at most one line every 10
// seconds with the number refused since the last line, so a token-guessing flood cannot flood
// the log.
func refusals(listener string, next http.Handler, st *store.Store, m *host.Metrics, logger *slog.Logger) http.Handler {
	var (
		every   = rate.Sometimes{First: 1, Interval: 10 * time.Second}
		pending atomic.Int64
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status != http.StatusUnauthorized {
			return
		}
		// Both listeners' challenges say "expired" for an expired token only (host/mcp, host/admin).
		audit.RefusedAuth(st, listener, r, strings.Contains(sw.Header().Get("WWW-Authenticate"), "expired"))
		if m != nil {
			m.AuthRefused(listener)
		}
		pending.Add(1)
		every.Do(func() {
			logger.Warn("refused requests without a valid token", "listener", listener, "refused", pending.Swap(0),
				"last_remote", r.RemoteAddr, "last_path", truncate(r.URL.Path, 64), "token_sent", r.Header.Get("Authorization") != "")
		})
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// statusWriter records the status of a response; Unwrap keeps http.ResponseController (and so
// streaming) working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// banner prints serve's startup line: plain text, or with --log-json a JSON log line (always,
// whatever --log-level), so a log pipeline that expects JSON gets nothing else.
func banner(g *globals, w io.Writer, text string, attrs ...any) {
	if !g.logJSON {
		fmt.Fprintln(w, text)
		return
	}
	slog.New(slog.NewJSONHandler(w, nil)).Info(text, attrs...)
}

// reportJSON writes a command's failure as a JSON log line when --log-json is set, so stderr
// stays JSON to the end; usage mistakes keep their plain text and exit status.
func (g *globals) reportJSON(w io.Writer, err error) error {
	var ue *usageError
	if err == nil || !g.logJSON || errors.Is(err, errHelp) || errors.Is(err, errSilent) || errors.As(err, &ue) {
		return err
	}
	slog.New(slog.NewJSONHandler(w, nil)).Error("airlock serve: " + err.Error())
	return errSilent
}
