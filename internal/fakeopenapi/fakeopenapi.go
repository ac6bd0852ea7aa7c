// Package fakeopenapi is a test fake of any REST API that publishes an OpenAPI description: an
// httptest server that validates every request against the description with kin-openapi's
// openapi3filter (an implementation independent of the request builder in internal/openapiop)
// and answers with what the test says. A request the description does not allow gets 400 with
// a problem+json body and is kept in Rejected, so a test fails on it.
//
// Example:
//
//	fake := fakeopenapi.New(doc, "https://petstore.swagger.io", func(r *fakeopenapi.Request) (int, any) {
//		return 200, []any{}
//	})
//	defer fake.Close()
//	// grant upstreams: {"https://petstore.swagger.io": fake.URL}
package fakeopenapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Request is one request the fake accepted, with the route it matched.
type Request struct {
	OperationID string
	Method      string
	Path        string
	PathParams  map[string]string
	Query       url.Values
	Header      http.Header
	Body        []byte
}

// Respond returns the status and JSON body to answer an accepted request with.
type Respond func(*Request) (status int, body any)

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	router  routers.Router
	origin  *url.URL
	respond Respond

	mu       sync.Mutex
	accepted []*Request
	rejected []string
}

// New starts a fake of doc's API. origin is the scheme://host the description's servers name
// (the fake routes requests as if they had been sent there). Close it when done. Like
// httptest.NewServer, it panics when it cannot start (here: a description it cannot route).
func New(doc *openapi3.T, origin string, respond Respond) *Server {
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		panic(fmt.Sprintf("fakeopenapi: %v", err))
	}
	o, err := url.Parse(origin)
	if err != nil {
		panic(fmt.Sprintf("fakeopenapi: %v", err))
	}
	s := &Server{router: router, origin: o, respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// ValidateRequest checks one request against the description, as the fake does; exported so
// a test can check requests it builds itself. Security requirements are not checked (the host
// injects credentials; the host's own tests cover that).
func ValidateRequest(router routers.Router, req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := router.FindRoute(req)
	if err != nil {
		return nil, nil, fmt.Errorf("no operation matches %s %s: %w", req.Method, req.URL.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true,
			RejectWhenRequestBodyNotSpecified: true}}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return route, params, err
	}
	return route, params, nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	r.Body.Close()
	routed := r.Clone(context.Background())
	routed.URL.Scheme, routed.URL.Host, routed.Host = s.origin.Scheme, s.origin.Host, s.origin.Host
	routed.Body = io.NopCloser(strings.NewReader(string(body)))
	route, params, err := ValidateRequest(s.router, routed)
	if err != nil {
		s.mu.Lock()
		s.rejected = append(s.rejected, fmt.Sprintf("%s %s: %v", r.Method, r.URL.RequestURI(), err))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]any{"title": "Request does not match the API description", "detail": err.Error(), "status": 400})
		return
	}
	req := &Request{OperationID: route.Operation.OperationID, Method: r.Method, Path: r.URL.Path,
		PathParams: params, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}
	s.mu.Lock()
	s.accepted = append(s.accepted, req)
	s.mu.Unlock()
	status, out := http.StatusOK, any(map[string]any{})
	if s.respond != nil {
		status, out = s.respond(req)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if out != nil {
		json.NewEncoder(w).Encode(out)
	}
}

// Accepted returns the requests that matched the description.
func (s *Server) Accepted() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.accepted...)
}

// Rejected returns a line per request the description does not allow.
func (s *Server) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}
