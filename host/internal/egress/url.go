package egress

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// maxURLLen bounds the URL a plugin may send, in bytes.
const maxURLLen = 8 << 10

// target is a parsed, normalised URL that passed the syntax checks (not yet policy).
type target struct {
	scheme string     // "http" or "https"
	host   string     // lowercase name without trailing dot, or canonical IP without brackets
	ip     netip.Addr // valid if host is an IP literal
	port   int
	u      *url.URL // what is sent: normalised host, no userinfo, no fragment; query as given

	upstream bool // chosen by an upstream (a redirect target): quoted in messages
}

func defaultPort(scheme string) int {
	if scheme == "http" {
		return 80
	}
	return 443
}

// hostPort is host[:port] as it appears in a URL, the port omitted when it is the default.
func (t *target) hostPort() string {
	h := t.host
	if t.ip.Is6() {
		h = "[" + h + "]"
	}
	if t.port != defaultPort(t.scheme) {
		h += ":" + strconv.Itoa(t.port)
	}
	return h
}

// originKey is scheme://host:port with the port always present, for map lookups.
func (t *target) originKey() string {
	return t.scheme + "://" + net.JoinHostPort(t.host, strconv.Itoa(t.port))
}

// display is the URL without query or fragment, for records and messages. It is not shortened
// here: text is scrubbed before it is cut (a cut secret no longer matches), so [Client.emit] and
// [failure.response] shorten after scrubbing.
func (t *target) display() string {
	return t.scheme + "://" + t.hostPort() + t.u.EscapedPath()
}

// where is the URL without query or fragment for a message to the plugin and agent: as display,
// or quoted as upstream text if an upstream chose it.
func (t *target) where() string {
	if t.upstream {
		return quoteUpstream(t.scheme + "://" + t.hostPort() + t.u.EscapedPath())
	}
	return t.display()
}

// name is the host for a message, quoted as upstream text if an upstream chose it.
func (t *target) name() string {
	if t.upstream {
		return quoteUpstream(t.host)
	}
	return t.host
}

// maxQuoted bounds the upstream text quoted in a message, in bytes after escaping.
const maxQuoted = 100

// quoteUpstream renders text an upstream chose (a redirect target, a header value) for a message
// an agent reads: at most maxQuoted bytes, in double quotes with every non-printable or non-ASCII
// character escaped, and marked as the upstream's, so it cannot pass for the host's own words.
// Scrub s first: the cut and the escapes would hide a secret from the scrubber.
func quoteUpstream(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	cut := ""
	for _, r := range s {
		q := strconv.QuoteToASCII(string(r))
		q = q[1 : len(q)-1]
		if b.Len()-1+len(q) > maxQuoted {
			cut = "…"
			break
		}
		b.WriteString(q)
	}
	b.WriteByte('"')
	return b.String() + cut + " (upstream text)"
}

// parseTarget parses and normalises a URL, refusing every form that different parsers could
// read differently. The failure message never contains the query string or userinfo.
func parseTarget(raw string) (*target, *failure) {
	const example = "write an absolute http or https URL such as https://api.example.com/v1/items"
	switch {
	case raw == "":
		return nil, badRequest("the request has no URL: " + example)
	case len(raw) > maxURLLen:
		return nil, badRequest(fmt.Sprintf("the URL is longer than %d bytes", maxURLLen))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, badRequest("the URL is malformed: " + example)
	}
	switch {
	case u.Scheme == "":
		return nil, badRequest("the URL is not absolute: " + example)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, denied("the URL's scheme is not http or https, the only ones the connector may use")
	case u.Opaque != "" || !strings.HasPrefix(raw[len(u.Scheme)+1:], "//"):
		return nil, badRequest("the URL has no host: " + example)
	case u.User != nil:
		return nil, denied("the URL contains userinfo (a name or password before '@'), which hides the real host; " +
			"remove it and name a credential slot instead")
	}
	// The authority as written: url.Parse has already unescaped u.Host.
	authority := raw[len(u.Scheme)+3:]
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	for i := 0; i < len(authority); i++ {
		if authority[i] >= 0x80 {
			return nil, badRequest("the URL's host contains non-ASCII characters: use its punycode (xn--…) form")
		}
	}
	if strings.Contains(authority, "%") {
		if strings.HasPrefix(authority, "[") {
			return nil, badRequest("the URL's host has an IPv6 zone (%25…); zones are not allowed")
		}
		return nil, badRequest("the URL's host is percent-encoded: write it in plain ASCII (punycode for international names)")
	}

	t := &target{scheme: u.Scheme}
	host := strings.ToLower(u.Hostname())
	if strings.HasPrefix(u.Host, "[") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return nil, badRequest("the URL's host is not a valid bracketed IPv6 address")
		}
		t.ip = a.Unmap()
		t.host = t.ip.String()
	} else {
		host = strings.TrimSuffix(host, ".")
		if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
			t.ip = a
			t.host = a.String()
		} else if why := checkName(host); why != "" {
			return nil, badRequest("the URL's host " + why)
		} else {
			t.host = host
		}
	}

	t.port = defaultPort(t.scheme)
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, badRequest("the URL's port is not between 1 and 65535")
		}
		t.port = n
	}

	if why := checkPath(u); why != "" {
		return nil, denied("the connector may not reach this URL: its path " + why)
	}
	nu := &url.URL{Scheme: t.scheme, Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	if nu.Path == "" {
		nu.Path, nu.RawPath = "/", ""
	}
	t.u = nu
	t.u.Host = t.hostPort()
	return t, nil
}

// checkName returns why host is not an acceptable DNS name, or "".
func checkName(host string) string {
	if host == "" {
		return "is empty"
	}
	if len(host) > 253 {
		return "is longer than 253 characters"
	}
	labels := strings.Split(host, ".")
	// WHATWG URL parsers, inet_aton and some resolvers read a host whose last label is a number
	// as an IPv4 address in decimal, octal or hex (2130706433, 0177.0.0.1, 0x7f.1, 127.1).
	if last := labels[len(labels)-1]; isNumber(last) {
		return "is a numeric address in a non-canonical form; write IPv4 addresses as four decimal numbers (127.0.0.1)"
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "has an empty or overlong label"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "contains characters not allowed in a host name; use letters, digits, '-' and punycode (xn--…) for international names"
			}
		}
	}
	return ""
}

// isNumber reports whether a label parses as a number in the WHATWG IPv4 parser: decimal
// digits, or 0x followed by hex digits (including "0x" alone).
func isNumber(l string) bool {
	if l == "" {
		return false
	}
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		for i := 2; i < len(l); i++ {
			if !isHex(l[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// checkPath returns why the path is refused, or "".
func checkPath(u *url.URL) string {
	ep := u.EscapedPath()
	lower := strings.ToLower(ep)
	switch {
	case strings.Contains(lower, "%2f"):
		return "contains an encoded slash (%2F)"
	case strings.Contains(lower, "%5c") || strings.Contains(u.Path, `\`):
		return "contains a backslash"
	case hasDotSegment(u.Path) || hasDotSegment(ep):
		return "contains a . or .. segment"
	}
	for i := 0; i < len(u.Path); i++ {
		if c := u.Path[i]; c < 0x20 || c == 0x7f {
			return "contains a control character"
		}
	}
	return ""
}

// hasDotSegment reports whether p has a "." or ".." segment, also with a ";parameter" suffix
// (Tomcat and others read "..;" as "..").
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// hostPattern is a normalised Rule or Slot host.
type hostPattern struct {
	host     string // exact host, or the suffix ".example.com" for a wildcard
	wildcard bool
}

func (p hostPattern) String() string {
	if p.wildcard {
		return "*" + p.host
	}
	return p.host
}

func parseHostPattern(s string) (hostPattern, error) {
	h := strings.TrimSuffix(strings.ToLower(s), ".")
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		if why := checkName(rest); why != "" {
			return hostPattern{}, fmt.Errorf("host pattern %q: the name %s", s, why)
		}
		if !strings.Contains(rest, ".") {
			return hostPattern{}, fmt.Errorf("host pattern %q is too broad: a wildcard needs at least two labels after \"*.\"", s)
		}
		return hostPattern{host: "." + rest, wildcard: true}, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		if a.Zone() != "" {
			return hostPattern{}, fmt.Errorf("host %q has an IPv6 zone", s)
		}
		return hostPattern{host: a.Unmap().String()}, nil
	}
	if why := checkName(h); why != "" {
		return hostPattern{}, fmt.Errorf("host %q: the name %s", s, why)
	}
	return hostPattern{host: h}, nil
}

func (p hostPattern) match(t *target) bool {
	if p.wildcard {
		return !t.ip.IsValid() && strings.HasSuffix(t.host, p.host)
	}
	return t.host == p.host
}

func matchAny(ps []hostPattern, t *target) bool {
	return slices.ContainsFunc(ps, func(p hostPattern) bool { return p.match(t) })
}

func patternList(ps []hostPattern) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// rule is a normalised Rule.
type rule struct {
	name    string // Rule.Host as written, which a Binding names
	scheme  string
	host    hostPattern
	port    int
	prefix  string
	methods []string
}

// matchPrefix reports whether path is inside prefix on segment boundaries.
func matchPrefix(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	dir := strings.TrimSuffix(prefix, "/")
	return strings.HasPrefix(path, dir) && (len(path) == len(dir) || path[len(dir)] == '/')
}

// allow returns "" if some rule allows method on t, or a short reason naming the first
// dimension (host, scheme, port, path, method) on which the closest rules disagree.
func (c *Client) allow(t *target, method string) string {
	path := t.u.EscapedPath()
	for _, r := range c.rules { // the common case, allowed, without building the reason
		if r.host.match(t) && r.scheme == t.scheme && r.port == t.port && matchPrefix(r.prefix, path) && slices.Contains(r.methods, method) {
			return ""
		}
	}
	rs := filter(c.rules, func(r rule) bool { return r.host.match(t) })
	if len(rs) == 0 {
		return fmt.Sprintf("host %s is not granted", t.name())
	}
	next := filter(rs, func(r rule) bool { return r.scheme == t.scheme })
	if len(next) == 0 {
		return fmt.Sprintf("scheme %s is not granted for %s; use %s", t.scheme, t.name(), list(rs, func(r rule) string { return r.scheme }))
	}
	rs = next
	next = filter(rs, func(r rule) bool { return r.port == t.port })
	if len(next) == 0 {
		return fmt.Sprintf("port %d is not granted for %s; granted: %s", t.port, t.name(), list(rs, func(r rule) string { return strconv.Itoa(r.port) }))
	}
	rs = next
	next = filter(rs, func(r rule) bool { return matchPrefix(r.prefix, path) })
	if len(next) == 0 {
		shown := path // shortened after scrubbing, with the whole message
		if t.upstream {
			shown = quoteUpstream(path)
		}
		return fmt.Sprintf("path %s is outside the granted prefixes %s", shown, list(rs, func(r rule) string { return r.prefix }))
	}
	rs = next
	if !slices.ContainsFunc(rs, func(r rule) bool { return slices.Contains(r.methods, method) }) {
		var ms []string
		for _, r := range rs {
			ms = append(ms, r.methods...)
		}
		slices.Sort(ms)
		return fmt.Sprintf("method %s is not granted for this path; granted: %s", method, strings.Join(slices.Compact(ms), ", "))
	}
	return ""
}

func filter(rs []rule, keep func(rule) bool) []rule {
	var out []rule
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func list(rs []rule, f func(rule) string) string {
	var s []string
	for _, r := range rs {
		if v := f(r); !slices.Contains(s, v) {
			s = append(s, v)
		}
	}
	return strings.Join(s, ", ")
}

// Methods a plugin may use. CONNECT and TRACE are never allowed.
var allowedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

const methodList = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

func normalizeMethod(m string) (string, *failure) {
	if m == "" {
		return http.MethodGet, nil
	}
	um := strings.ToUpper(m)
	switch {
	case allowedMethods[um]:
		return um, nil
	case um == http.MethodConnect || um == http.MethodTrace:
		return "", denied(fmt.Sprintf("the connector may not send %s requests", um))
	}
	return "", badRequest(fmt.Sprintf("method %q is not supported; use one of %s", trunc(m, 20), methodList))
}

// filterQuery removes query parameters that api_key slots use, so a plugin cannot supply or
// shadow a credential. Other parameters are kept exactly as written.
func (c *Client) filterQuery(t *target) {
	if len(c.dropQuery) == 0 || t.u.RawQuery == "" {
		return
	}
	parts := strings.Split(t.u.RawQuery, "&")
	kept := parts[:0]
	for _, p := range parts {
		if !c.isCredentialParam(p) {
			kept = append(kept, p)
		}
	}
	t.u.RawQuery = strings.Join(kept, "&")
}

func (c *Client) isCredentialParam(part string) bool {
	// Some servers also split on ';'.
	for sub := range strings.SplitSeq(part, ";") {
		k, _, _ := strings.Cut(sub, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		k = strings.TrimSpace(k)
		for _, d := range c.dropQuery {
			if strings.EqualFold(k, d) {
				return true
			}
		}
	}
	return false
}
