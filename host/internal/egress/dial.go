package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxDialAddrs bounds how many resolved addresses one dial tries.
const maxDialAddrs = 8

// blocked lists address ranges that are never dialed unless a grant's AllowPrivate covers them,
// with the name used in messages. Anything that is not global unicast is refused as well.
var blocked = func() []struct {
	p    netip.Prefix
	name string
} {
	var out []struct {
		p    netip.Prefix
		name string
	}
	for _, e := range [][2]string{
		{"0.0.0.0/8", "unspecified (this-network)"},
		{"10.0.0.0/8", "private"},
		{"100.64.0.0/10", "shared (carrier-grade NAT)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local (cloud metadata)"},
		{"172.16.0.0/12", "private"},
		{"192.0.0.0/24", "IETF protocol assignment"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay"},
		{"192.168.0.0/16", "private"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "IPv4-compatible"},
		{"64:ff9b::/96", "NAT64"},
		{"64:ff9b:1::/48", "NAT64"},
		{"100::/64", "discard"},
		{"2001::/23", "IETF protocol assignment (Teredo …)"},
		{"2001:db8::/32", "documentation"},
		{"2002::/16", "6to4"},
		{"3fff::/20", "documentation"},
		{"5f00::/16", "segment routing"},
		{"fc00::/7", "private (unique local)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local"},
		{"ff00::/8", "multicast"},
	} {
		out = append(out, struct {
			p    netip.Prefix
			name string
		}{netip.MustParsePrefix(e[0]), e[1]})
	}
	return out
}()

// forbidden returns the class of a that makes it undialable ("loopback", "private" …), or ""
// if a may be dialed: it is public unicast or inside AllowPrivate.
func (c *Client) forbidden(a netip.Addr) string {
	a = a.Unmap()
	if !a.IsValid() {
		return "invalid"
	}
	if a.Zone() != "" {
		return "zoned"
	}
	for _, p := range c.allowPrivate {
		if p.Contains(a) {
			return ""
		}
	}
	for _, b := range blocked {
		if b.p.Contains(a) {
			return b.name
		}
	}
	if !a.IsGlobalUnicast() {
		return "non-unicast"
	}
	return ""
}

// addrError reports a refused address. Its text is safe for logs; the plugin sees a message
// without the address.
type addrError struct {
	host  string
	addr  netip.Addr
	class string
}

func (e *addrError) Error() string {
	return fmt.Sprintf("%s resolves to %s, a %s address", e.host, e.addr, e.class)
}

// dialContext is the transports' DialContext. addr is the host:port of the URL being dialed.
// It resolves the host itself and dials only checked IP addresses, so the address checked is
// the address connected to. The upstream transport (upstream true) dials only Upstreams
// targets, and those without the address checks: the admin named them.
func (c *Client) dialContext(ctx context.Context, network, addr string, upstream bool) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("invalid port in %q", addr)
	}
	host = strings.ToLower(host)
	trusted := false
	if upstream {
		if !c.trusted[net.JoinHostPort(host, portStr)] {
			return nil, fmt.Errorf("egress: %s is not an upstream target", addr) // cannot happen: build picks the transport
		}
		trusted = true
	}

	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = c.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	if len(addrs) > maxDialAddrs {
		addrs = addrs[:maxDialAddrs]
	}
	addrs = slices.Clone(addrs) // unmapped below: never write to the resolver's (maybe cached) slice
	// Refuse the host if any of its addresses is refused: a name that mixes public and private
	// answers is a rebinding attempt or a misconfiguration, and either way should be looked at.
	for i, a := range addrs {
		addrs[i] = a.Unmap()
		if trusted {
			continue
		}
		if class := c.forbidden(addrs[i]); class != "" {
			return nil, &addrError{host: host, addr: addrs[i], class: class}
		}
	}
	var firstErr error
	for _, a := range addrs {
		conn, err := c.dialAddr(ctx, network, netip.AddrPortFrom(a, uint16(port)), trusted)
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// dialChecked dials one address that dialContext checked, checking it again in Control on the
// socket's actual destination.
func (c *Client) dialChecked(ctx context.Context, network string, ap netip.AddrPort, trusted bool) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: c.control(trusted)}
	return d.DialContext(ctx, network, ap.String())
}

func (c *Client) control(trusted bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("dial control: unexpected address %q", address)
		}
		if trusted {
			return nil
		}
		if class := c.forbidden(ap.Addr()); class != "" {
			return &addrError{host: ap.Addr().String(), addr: ap.Addr(), class: class}
		}
		return nil
	}
}
