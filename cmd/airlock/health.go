package main

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/airlock-dev/airlock/host"
)

// probes answers the unauthenticated health endpoints of 'airlock serve --http':
//
//	GET /healthz  200 {"status":"ok"} while the process serves HTTP at all (liveness)
//	GET /readyz   200 when the state store answers, Redis (if configured) is reachable and the
//	              configured connectors are loaded; 503 with the failing checks otherwise, and
//	              from the moment a shutdown starts, so that load balancers stop sending calls
//
// Neither says anything an anonymous caller could use: no DSN, no token, no connector secret.
type probes struct {
	h        *host.Host
	draining atomic.Bool
}

// readyBody is the JSON body of /readyz.
type readyBody struct {
	Status     string       `json:"status"` // "ready", "not_ready" or "draining"
	Checks     []host.Check `json:"checks"`
	Connectors []string     `json:"connectors"`
	Tools      int          `json:"tools"`
}

func (p *probes) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		b := readyBody{Status: "ready", Checks: p.h.Readiness(r.Context()), Connectors: p.h.Connectors(), Tools: len(p.h.Tools())}
		b.Checks = append(b.Checks, host.Check{Name: "connectors", OK: true})
		for _, c := range b.Checks {
			if !c.OK {
				b.Status = "not_ready"
			}
		}
		if p.draining.Load() {
			b.Status = "draining"
			b.Checks = append(b.Checks, host.Check{Name: "shutdown", Error: "shutting down: finishing the calls in progress"})
		}
		code := http.StatusOK
		if b.Status != "ready" {
			code = http.StatusServiceUnavailable
		}
		writeProbe(w, code, b)
	})
}

func writeProbe(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}
