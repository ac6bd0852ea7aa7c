package secret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file holds what the secret managers reached over plain HTTP (1Password Connect, Doppler)
// share: a bearer-token GET with a timeout, no redirects and a capped body, the manager's own
// token kept and re-read once when the manager refuses it, and a small TTL cache that a re-read
// after an upstream 401 bypasses.

// DefaultManagerTimeout bounds one request to a secret manager (connect, headers and body), when
// the source's Timeout is zero.
const DefaultManagerTimeout = 10 * time.Second

// maxManagerResponse caps what is read of a secret manager's answer (1 MiB): an item with a few
// fields is a few KiB; a larger body is a wrong address or a broken server.
const maxManagerResponse = 1 << 20

type freshKey struct{}

// WithFreshRead returns a context telling the [Source] it is passed to that the value it holds
// may be stale: the source reads the secret from its manager instead of its own cache. The host
// uses it when an upstream refused the value (HTTP 401), so a rotated secret is used at once.
func WithFreshRead(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// FreshRead reports whether ctx asks for a read that bypasses a source's cache
// ([WithFreshRead]). Sources that cache must honour it.
func FreshRead(ctx context.Context) bool {
	b, _ := ctx.Value(freshKey{}).(bool)
	return b
}

// managerHTTP sends the GET requests of one secret manager's API.
type managerHTTP struct {
	name   string // "1Password Connect", "Doppler": for messages
	base   *url.URL
	client *http.Client
}

func newManagerHTTP(name, base string, c *http.Client, timeout time.Duration) (*managerHTTP, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		// Do not echo base: a URL with credentials in it is a secret.
		return nil, fmt.Errorf("%s: the address is not an http(s) URL without credentials or query, such as https://host:8080", name)
	}
	var hc http.Client
	if c != nil {
		hc = *c
	}
	if timeout <= 0 {
		timeout = DefaultManagerTimeout
	}
	if hc.Timeout == 0 || hc.Timeout > timeout {
		hc.Timeout = timeout
	}
	// Never follow a redirect: it would carry the manager's token, or lead the host elsewhere.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &managerHTTP{name: name, base: u, client: &hc}, nil
}

// managerResponse is one answer of a secret manager.
type managerResponse struct {
	status int
	header http.Header
	body   []byte
}

// get sends GET base+path?query with the bearer token. Its errors name the manager's host and
// never the token, the query or the manager's own words.
func (m *managerHTTP) get(ctx context.Context, path string, query url.Values, token string) (managerResponse, error) {
	u := *m.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return managerResponse{}, fmt.Errorf("%s: building the request: %w", m.name, ErrBadReference)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return managerResponse{}, cerr
		}
		what := "cannot reach the server"
		var ue *url.Error
		if errors.As(err, &ue) && ue.Timeout() {
			what = fmt.Sprintf("no answer within %s from the server", m.client.Timeout)
		}
		return managerResponse{}, fmt.Errorf("%s: %s at %s: check the address and the network", m.name, what, m.base.Host)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManagerResponse+1))
	if err != nil {
		return managerResponse{}, fmt.Errorf("%s: reading the answer of %s was cut off: check the server and the network", m.name, m.base.Host)
	}
	if len(body) > maxManagerResponse {
		return managerResponse{}, fmt.Errorf("%s: the answer of %s is larger than %d bytes: check the address points at the %s API", m.name, m.base.Host, maxManagerResponse, m.name)
	}
	return managerResponse{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// retryAfter renders a Retry-After header (seconds or an HTTP date) as advice.
func retryAfter(h http.Header, now time.Time) string {
	v := h.Get("Retry-After")
	if v == "" {
		return "retry later"
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return fmt.Sprintf("retry after %d s", n)
	}
	if t, err := http.ParseTime(v); err == nil {
		return fmt.Sprintf("retry after %d s", max(0, int(t.Sub(now).Round(time.Second)/time.Second)))
	}
	return "retry later"
}

// managerToken is a secret manager's own access token: read from its reference at first use and
// again when the manager refuses it, so a token an agent renews on disk is picked up.
type managerToken struct {
	name    string // for messages: "1Password Connect", "Doppler"
	ref     string
	secrets Source

	mu  sync.Mutex
	tok string
}

// get returns the token, reading its reference again when there is none yet or it equals stale
// (a token the manager just refused).
func (t *managerToken) get(ctx context.Context, stale string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != "" && t.tok != stale {
		return t.tok, nil
	}
	v, err := t.secrets.Resolve(ctx, t.ref)
	if err != nil {
		return "", fmt.Errorf("%s: the token reference %s cannot be read: %w", t.name, Display(t.ref), err)
	}
	t.tok = v.Expose()
	return t.tok, nil
}

// withToken calls do with the manager's token; when do reports the token refused (401), it
// reads the token reference again and, if that gave another token, calls do once more.
func (t *managerToken) withToken(ctx context.Context, do func(token string) (refused bool, err error)) error {
	tok, err := t.get(ctx, "")
	if err != nil {
		return err
	}
	refused, err := do(tok)
	if !refused {
		return err
	}
	fresh, terr := t.get(ctx, tok)
	if terr != nil {
		return terr
	}
	if fresh == tok {
		return err
	}
	_, err = do(fresh)
	return err
}

// ttlCache keeps what a source read from its manager for a while. Safe for concurrent use.
type ttlCache[T any] struct {
	ttl time.Duration // <= 0: no caching
	now func() time.Time

	mu sync.Mutex
	m  map[string]ttlEntry[T]
}

type ttlEntry[T any] struct {
	v       T
	expires time.Time
}

const maxManagerCache = 1024

// get returns the cached value of key, unless ctx asks for a fresh read.
func (c *ttlCache[T]) get(ctx context.Context, key string) (T, bool) {
	var zero T
	if c.ttl <= 0 || FreshRead(ctx) {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || !c.now().Before(e.expires) {
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[T]) put(key string, v T) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxManagerCache {
		c.m = map[string]ttlEntry[T]{}
	}
	c.m[key] = ttlEntry[T]{v: v, expires: c.now().Add(c.ttl)}
}
