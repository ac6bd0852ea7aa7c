package egress

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/airlock-dev/airlock/internal/abi"
)

// userAgent is sent when the plugin sets none.
const userAgent = "airlock/1"

// Header values build sets, shared by every request and never written to.
var (
	userAgentValue = []string{userAgent}
	gzipValue      = []string{"gzip"}
)

// hopByHop are headers that describe one connection, not the request (RFC 9110 §7.6.1).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Proxy-Connection": true,
}

// reserved are headers only the host sets.
var reserved = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Cookie2": true,
	"Host": true, "Content-Length": true,
	// The host asks for gzip itself (build) and decodes it (readResponse), so the body can be
	// scrubbed; a plugin asking for another encoding would get bytes the scrubber cannot read.
	"Accept-Encoding": true,
}

// filterHeaders copies the plugin's headers without those it may not set.
func (c *Client) filterHeaders(in map[string][]string) (http.Header, *failure) {
	out := make(http.Header, len(in)+2)
	var nominated []string // named in Connection: hop-by-hop too
	for k, vs := range in {
		if http.CanonicalHeaderKey(k) == "Connection" {
			for _, v := range vs {
				for tok := range strings.SplitSeq(v, ",") {
					nominated = append(nominated, http.CanonicalHeaderKey(strings.TrimSpace(tok)))
				}
			}
		}
	}
	for k, vs := range in {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, badRequest(fmt.Sprintf("header name %q is not a valid HTTP header name", trunc(k, 64)))
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, badRequest(fmt.Sprintf("the value of header %s contains a line break or control character", trunc(k, 64)))
			}
		}
		ck := http.CanonicalHeaderKey(k)
		if reserved[ck] || hopByHop[ck] || strings.HasPrefix(ck, "Proxy-") || c.dropHeader[ck] || containsString(nominated, ck) {
			continue
		}
		out[ck] = append(out[ck], vs...)
	}
	return out, nil
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// send performs one attempt: the request and its redirect hops. The retry loop (run) wraps
// send. A refusal or failure is returned both as the response to hand over and as the failure,
// so the loop can classify it; f.answered says whether an upstream answered on some hop.
func (c *Client) send(ctx context.Context, h *hop) (_ abi.HTTPResponse, f *failure) {
	answered := false
	h.replay = false // a new attempt is not the replay of the last one
	defer func() {
		if f != nil {
			f.answered = f.answered || answered
		}
	}()
	for {
		rec := Record{Method: h.method, URL: h.t.display(), Host: h.t.host, Credential: h.credName,
			Injected: h.slot != nil, Redirect: h.n, Attempt: h.attempt, Replay: h.replay}
		if h.n == 0 && !h.replay {
			rec.Wait = h.wait
		}
		start := time.Now()
		req, err := c.build(ctx, h)
		if err != nil {
			f := &failure{code: abi.CodeInternal, category: abi.Fatal, msg: "the host could not build this request", cause: err}
			rec.Decision, rec.Reason = DecisionError, f.msg
			c.emit(ctx, rec, f)
			return f.response(c.scrub), f
		}
		resp, err := c.roundTrip(req, h.viaUpstream)
		if err != nil {
			f := c.classify(ctx, err, h)
			rec.Decision, rec.Reason, rec.Duration = f.decision(), f.why(), time.Since(start)
			c.emit(ctx, rec, f)
			return f.response(c.scrub), f
		}
		answered = true
		rec.Status = resp.StatusCode

		if loc := resp.Header.Get("Location"); loc != "" && isRedirect(resp.StatusCode) && c.maxRedirects >= 0 {
			drain(resp.Body)
			rec.Decision, rec.Duration = DecisionAllowed, time.Since(start)
			c.emit(ctx, rec, nil)
			next, f := c.follow(h, resp.StatusCode, loc)
			if f != nil {
				nrec := Record{Method: h.method, Host: h.t.host, Credential: h.credName, Redirect: h.n + 1,
					Decision: f.decision(), Reason: f.why()}
				if next != nil && next.t != nil {
					nrec.Method, nrec.URL, nrec.Host = next.method, next.t.display(), next.t.host
				}
				nrec.Attempt = h.attempt
				c.emit(ctx, nrec, f)
				return f.response(c.scrub), f
			}
			h = next
			continue
		}

		out, f := c.readResponse(ctx, resp, h)
		rec.Duration = time.Since(start)
		if f != nil {
			rec.Decision, rec.Reason = f.decision(), f.why()
			c.emit(ctx, rec, f)
			return f.response(c.scrub), f
		}
		rec.Decision = DecisionAllowed
		c.emit(ctx, rec, nil)
		if out.Status == http.StatusUnauthorized && h.slot != nil && h.slot.source != nil && !h.replayed {
			// The upstream refused the token: invalidate it, get a new one (an OAuth token, a
			// rotated secret), replay once if it changed.
			h.replayed = true
			old := h.token
			h.slot.source.Invalidate(h.subject, old)
			if f := c.fetchToken(ctx, h); f != nil {
				f.answered = true
				c.emit(ctx, Record{Method: h.method, URL: h.t.display(), Host: h.t.host, Credential: h.credName,
					Redirect: h.n, Attempt: h.attempt, Replay: true, Decision: f.decision(), Reason: f.why()}, f)
				return f.response(c.scrub), f
			}
			if h.token.Expose() == old.Expose() {
				return out, nil // no new token: hand over the 401
			}
			if !matchAny(h.credHosts, h.t) {
				f := denied(fmt.Sprintf("the credential %s may not be sent to %s any more: for this connection it is now limited to %s",
					h.credName, h.t.name(), patternList(h.credHosts)))
				f.answered = true
				c.emit(ctx, Record{Method: h.method, URL: h.t.display(), Host: h.t.host, Credential: h.credName,
					Redirect: h.n, Attempt: h.attempt, Replay: true, Decision: f.decision(), Reason: f.why()}, f)
				return f.response(c.scrub), f
			}
			h.replay = true
			continue
		}
		return out, nil
	}
}

// roundTrip sends req on the transport for its scheme and destination: plain http on the
// calling goroutine (h1Transport), https through net/http (HTTP/1.1, HTTP/2 off);
// Upstreams targets on their own transports, never sharing a connection with checked
// destinations.
func (c *Client) roundTrip(req *http.Request, viaUpstream bool) (*http.Response, error) {
	switch {
	case req.URL.Scheme == "http" && viaUpstream:
		return c.upPlain.RoundTrip(req)
	case req.URL.Scheme == "http":
		return c.plain.RoundTrip(req)
	case viaUpstream:
		return c.upClient.Do(req)
	}
	return c.client.Do(req)
}

// build turns a checked hop into an *http.Request: the upstream mapping is applied and the
// credential injected.
func (c *Client) build(ctx context.Context, h *hop) (*http.Request, error) {
	u := *h.t.u
	h.viaUpstream = false
	if up, ok := c.upstreams[h.t.originKey()]; ok {
		u.Scheme, u.Host = up.Scheme, up.Host
		h.viaUpstream = true
	}
	// A new map per request (the hop's is kept for retries and redirects) sharing the hop's
	// value slices: transports only read a request's header.
	header := make(http.Header, len(h.header)+3)
	maps.Copy(header, h.header)
	if _, ok := header["User-Agent"]; !ok {
		header["User-Agent"] = userAgentValue
	}
	// As net/http's transport would (its own decoding is off, see newTransport): gzip, except
	// for HEAD and ranges, whose partial gzip stream could not be decoded.
	if _, ok := header["Range"]; !ok && h.method != http.MethodHead {
		header["Accept-Encoding"] = gzipValue
	}
	if s := h.slot; s != nil {
		v := s.secret.Expose()
		if s.source != nil {
			v = h.token.Expose()
		}
		switch {
		case isOAuth(s.kind):
			header.Set("Authorization", "Bearer "+v)
		case s.kind == KindBearer:
			header.Set("Authorization", "Bearer "+v)
		case s.kind == KindBasic:
			header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(v)))
		case s.query:
			kv := url.QueryEscape(s.param) + "=" + url.QueryEscape(v)
			if u.RawQuery == "" {
				u.RawQuery = kv
			} else {
				u.RawQuery += "&" + kv
			}
		default:
			header.Set(s.param, v)
		}
	}
	req := &http.Request{
		Method:     h.method,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Host:       u.Host,
	}
	if len(h.body) > 0 {
		body := h.body
		req.ContentLength = int64(len(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req.WithContext(ctx), nil
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// follow checks a redirect like a new request and returns the next hop. The returned hop may be
// non-nil with a failure, so the record can name the refused URL.
func (c *Client) follow(h *hop, status int, loc string) (*hop, *failure) {
	if h.n >= c.maxRedirects {
		return nil, &failure{code: abi.CodeUpstreamError, category: abi.Fatal,
			msg: fmt.Sprintf("%s redirected more than %d times; stopped following", h.t.where(), c.maxRedirects)}
	}
	// Checked on the Location as received, before parsing lowercases, resolves or cuts it.
	if c.carriesSecret(loc) {
		return nil, c.echoedSecret(h)
	}
	t, f := c.redirectTarget(h, loc)
	if f != nil {
		f.msg = fmt.Sprintf("%s redirected to %s, which the connector may not use: %s", h.t.where(), c.quote(loc), f.msg)
		return nil, f
	}
	if c.carriesSecret(t.u.String()) { // formed by resolving the reference
		return nil, c.echoedSecret(h)
	}
	next := &hop{method: h.method, t: t, header: h.header, body: h.body, credName: h.credName, n: h.n + 1, timeoutMS: h.timeoutMS,
		attempt: h.attempt, subject: h.subject, replayed: h.replayed, bind: h.bind}
	// 303, and 301/302 after anything but GET or HEAD, become a GET without a body, as browsers do.
	if status == http.StatusSeeOther && h.method != http.MethodHead ||
		(status == http.StatusMovedPermanently || status == http.StatusFound) && h.method != http.MethodGet && h.method != http.MethodHead {
		next.method, next.body = http.MethodGet, nil
		next.header = h.header.Clone()
		for _, k := range []string{"Content-Type", "Content-Encoding", "Content-Language", "Content-Location"} {
			next.header.Del(k)
		}
	}
	if why := h.bind.refuseTarget(c.rules, t); why != "" {
		return next, denied(fmt.Sprintf("%s redirected to %s: %s", h.t.display(), t.display(), why))
	}
	if why := c.allow(t, next.method); why != "" {
		return next, denied(fmt.Sprintf("%s redirected to %s, which the connector may not reach (%s); ask an admin to grant it if the redirect is expected",
			h.t.where(), t.where(), why))
	}
	c.filterQuery(t)
	// The credential follows only to the same host, one its slot allows, without a downgrade
	// to plain http. Otherwise the hop goes out unauthenticated: the upstream chose it.
	if s := h.slot; s != nil && t.host == h.t.host && matchAny(h.credentialHosts(), t) && !(h.t.scheme == "https" && t.scheme == "http") {
		next.slot, next.token, next.credHosts = s, h.token, h.credHosts
	}
	return next, nil
}

// redirectTarget resolves a Location header against the current hop and parses it with the same
// rules as a plugin URL. A Location pointing at an Upstreams target is mapped back to its origin.
func (c *Client) redirectTarget(h *hop, loc string) (*target, *failure) {
	ref, err := url.Parse(loc)
	if err != nil {
		return nil, badRequest("the Location header is malformed")
	}
	raw := loc
	switch {
	case ref.Scheme != "":
	case strings.HasPrefix(loc, "//"):
		raw = h.t.scheme + ":" + loc
	default:
		base := *h.t.u // the origin URL, without the credential
		raw = base.ResolveReference(ref).String()
	}
	t, f := parseTarget(raw)
	if f != nil {
		return nil, f
	}
	if origin, ok := c.reverse[t.originKey()]; ok {
		ot, f := parseTarget(origin + t.u.RequestURI())
		if f != nil {
			return nil, f
		}
		t = ot
	}
	t.upstream = true
	return t, nil
}

// carriesSecret reports whether s, or s with its %XX escapes decoded, holds a form of a secret.
func (c *Client) carriesSecret(s string) bool {
	if c.scrub.Contains([]byte(s)) {
		return true
	}
	u, err := url.PathUnescape(s)
	return err == nil && u != s && c.scrub.Contains([]byte(u))
}

// echoedSecret is the failure for a redirect whose target holds a secret. The target is not
// followed (it would carry the credential on to wherever the upstream points) nor shown.
func (c *Client) echoedSecret(h *hop) *failure {
	return &failure{code: abi.CodeUpstreamError, category: abi.Fatal,
		msg: fmt.Sprintf("%s redirected to a URL that contains a credential airlock sent it; the redirect was not followed "+
			"and its target is withheld (the upstream echoes credentials: report it to its operator)", h.t.where())}
}

// quote renders upstream text for a message: scrubbed first, then bounded and escaped by
// quoteUpstream.
func (c *Client) quote(s string) string { return quoteUpstream(c.scrub.String(s)) }

// readResponse reads, caps, decodes and scrubs the final response.
func (c *Client) readResponse(ctx context.Context, resp *http.Response, h *hop) (abi.HTTPResponse, *failure) {
	defer resp.Body.Close()
	codings := contentCodings(resp.Header)
	for _, cc := range codings {
		if decoders[cc] == nil {
			return abi.HTTPResponse{}, &failure{code: abi.CodeUpstreamError, category: abi.Fatal,
				msg: fmt.Sprintf("%s answered with Content-Encoding %s, which airlock does not decode (it decodes gzip and deflate) and so cannot inspect for secrets; the response was withheld",
					h.t.where(), c.quote(cc))}
		}
	}
	tooLarge := func() *failure { // formatted only when needed: most responses fit
		return &failure{code: abi.CodeResponseTooLarge, category: abi.Correctable,
			msg: fmt.Sprintf("the response from %s is larger than the limit of %s; ask for less data (pagination, filters, fewer fields)",
				h.t.where(), byteSize(c.maxResponse))}
	}
	if resp.ContentLength > c.maxResponse {
		return abi.HTTPResponse{}, tooLarge()
	}
	body, err := readBody(resp.Body, resp.ContentLength, c.maxResponse+1)
	if err != nil {
		return abi.HTTPResponse{}, c.classify(ctx, err, h)
	}
	if int64(len(body)) > c.maxResponse {
		return abi.HTTPResponse{}, tooLarge()
	}
	// The response and its header map are this call's alone (the transport made them for it and
	// nothing else holds them): filtered and scrubbed in place rather than copied.
	header := resp.Header
	if header == nil {
		header = http.Header{}
	}
	if len(codings) > 0 && len(body) > 0 {
		if body, err = decode(body, codings, c.maxResponse); errors.Is(err, errTooLarge) {
			return abi.HTTPResponse{}, tooLarge()
		} else if err != nil {
			return abi.HTTPResponse{}, &failure{code: abi.CodeUpstreamError, category: abi.Fatal, cause: err,
				msg: fmt.Sprintf("the response from %s could not be decoded as its Content-Encoding says; the response was withheld", h.t.where())}
		}
		header.Del("Content-Encoding")
		header.Del("Content-Length")
	}
	header.Del("Set-Cookie")
	header.Del("Set-Cookie2")
	c.scrub.Headers(header)
	out := abi.HTTPResponse{Status: resp.StatusCode, Headers: header}
	if len(body) > 0 {
		out.Body = c.scrub.Bytes(body)
	}
	return out, nil
}

// readBody reads at most limit bytes of r. A body whose length is announced (size ≥ 0) is read
// into one buffer of that size (plus one byte, to see a body longer than announced) instead of
// one grown from 512 bytes; the announcement is only a hint, bounded by limit.
func readBody(r io.Reader, size, limit int64) ([]byte, error) {
	if size < 0 || size >= limit {
		return io.ReadAll(io.LimitReader(r, limit))
	}
	buf := make([]byte, 0, size+1)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return buf, err
		case len(buf) == cap(buf): // longer than announced: read on, still bounded
			rest, err := io.ReadAll(io.LimitReader(r, limit-int64(len(buf))))
			return append(buf, rest...), err
		}
	}
}

// contentCodings lists the content codings applied to a body, in the order they were applied,
// from every Content-Encoding line and every comma-separated element, lowercased, without
// "identity" and empty elements (RFC 9110 §8.4: a recipient must consider them all).
func contentCodings(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Content-Encoding") {
		for cc := range strings.SplitSeq(v, ",") {
			if cc = strings.ToLower(strings.Trim(cc, " \t")); cc != "" && cc != "identity" {
				out = append(out, cc)
			}
		}
	}
	return out
}

// decoders are the content codings airlock undoes; a response in any other is refused.
var decoders = map[string]func(io.Reader) (io.Reader, error){
	"gzip":    func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
	"x-gzip":  func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
	"deflate": func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) },
}

// maxCodings bounds the codings undone on one body; more are refused as malformed.
const maxCodings = 4

var errTooLarge = errors.New("decoded body exceeds the response limit")

// decode undoes codings (applied in order) on body, streaming, and fails with errTooLarge as
// soon as the decoded body passes limit bytes, so a compression bomb costs at most limit bytes.
func decode(body []byte, codings []string, limit int64) ([]byte, error) {
	if len(codings) > maxCodings {
		return nil, fmt.Errorf("%d content codings (at most %d are decoded)", len(codings), maxCodings)
	}
	var r io.Reader = bytes.NewReader(body)
	for i := len(codings) - 1; i >= 0; i-- {
		next, err := decoders[codings[i]](r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", codings[i], err)
		}
		r = next
	}
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	switch {
	case err != nil:
		return nil, err
	case int64(len(out)) > limit:
		return nil, errTooLarge
	}
	return out, nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB (%d bytes)", n>>20, n)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB (%d bytes)", n>>10, n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// drain reads a little of a body we discard so the connection can be reused, then closes it.
func drain(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 64<<10)
	_ = body.Close()
}

// classify turns a transport error into an agent-safe failure. The error itself (which may hold
// the URL with an injected query credential) is kept only as the scrubbed cause for logs.
func (c *Client) classify(ctx context.Context, err error, h *hop) *failure {
	where := h.t.where()
	if ue, ok := err.(*url.Error); ok {
		err = ue.Err // drop the URL: it may carry the query string and an injected credential
	}
	var ae *addrError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var invalidErr x509.CertificateInvalidError
	var netErr net.Error
	f := &failure{code: abi.CodeUpstreamError, category: abi.Retryable, cause: err, transient: true}
	var ns *notSentError
	f.notSent = errors.As(err, &ns)
	switch {
	case errors.As(err, &ae):
		f.code, f.category, f.transient = abi.CodeEgressDenied, abi.Fatal, false
		f.msg = fmt.Sprintf("the connector may not reach %s (%s resolves to a %s address); private, loopback and link-local targets need an explicit grant (private_targets)",
			where, h.t.name(), ae.class)
		f.reason = fmt.Sprintf("%s (%s)", f.msg, ae.addr)
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded ||
		errors.As(err, &netErr) && netErr.Timeout():
		f.code = abi.CodeTimeout
		if h.timeoutMS > 0 {
			f.msg = fmt.Sprintf("the request to %s did not complete within its timeout (%d ms) or the call's remaining time", where, h.timeoutMS)
		} else {
			f.msg = fmt.Sprintf("the request to %s did not complete within the call's remaining time", where)
		}
	case errors.Is(err, context.Canceled):
		f.code, f.transient = abi.CodeUnavailable, false
		f.msg = fmt.Sprintf("the request to %s was cancelled", where)
	case errors.As(err, &dnsErr):
		f.msg = fmt.Sprintf("the host name %s could not be resolved", h.t.name())
		if dnsErr.IsNotFound {
			f.category, f.transient = abi.Correctable, false
			f.msg += "; check the URL"
		}
	case errors.As(err, &certErr) || errors.As(err, &hostErr) || errors.As(err, &authErr) || errors.As(err, &invalidErr):
		f.category, f.transient = abi.Fatal, false
		f.msg = fmt.Sprintf("the TLS certificate of %s is not valid; the request was not sent", h.t.name())
	case errors.Is(err, syscall.ECONNREFUSED):
		f.msg = fmt.Sprintf("%s refused the connection", where)
	// net/http's Transport says "server closed idle connection" (an unexported error) when the
	// upstream closes a connection before the request went out on it, as an h2-only upstream
	// does right after the TLS handshake when the machine is busy enough for the close to come
	// first.
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "server closed idle connection"):
		f.msg = fmt.Sprintf("the connection to %s was closed before a complete response", where)
		if h.t.scheme == "https" {
			// The one cause retrying cannot cure: egress speaks HTTP/1.1 (send.go).
			f.msg += "; if that upstream serves only HTTP/2, airlock cannot reach it (its egress speaks HTTP/1.1)"
		}
	default:
		f.msg = fmt.Sprintf("a network error occurred talking to %s", where)
	}
	return f
}
