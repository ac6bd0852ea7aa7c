package mcp

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A loopback origin is trusted only on a loopback connection: on a server reached over the
// network, "http://localhost:3000" is a page on the visitor's own machine, not the admin's.
func TestOriginAllowed(t *testing.T) {
	allowed := map[string]bool{"https://console.example.com": true}
	for _, tc := range []struct {
		origin, local string
		want          bool
	}{
		{"http://localhost:6274", "127.0.0.1:8700", true},
		{"http://[::1]:6274", "[::1]:8700", true},
		{"http://LOCALHOST:6274", "127.0.0.1:8700", true},
		{"http://localhost:6274", "192.0.2.10:8700", false},
		{"http://127.0.0.1:6274", "192.0.2.10:8700", false},
		{"https://console.example.com", "192.0.2.10:8700", true},
		{"https://console.example.com:443", "192.0.2.10:8700", true},
		{"http://console.example.com", "192.0.2.10:8700", false},
		{"https://console.example.com.evil.example", "127.0.0.1:8700", false},
		{"http://localhost.evil.example", "127.0.0.1:8700", false},
		{"null", "127.0.0.1:8700", false},
		{"file://", "127.0.0.1:8700", false},
	} {
		r := httptest.NewRequest("POST", "/mcp", nil)
		addr, _ := net.ResolveTCPAddr("tcp", tc.local)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, addr))
		if got := originAllowed(tc.origin, allowed, r); got != tc.want {
			t.Errorf("originAllowed(%q) on %s = %v, want %v", tc.origin, tc.local, got, tc.want)
		}
	}
}

func TestCheckOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://Console.Example.com:443": "https://console.example.com",
		"http://example.com:80/":          "http://example.com",
		"http://example.com:8080":         "http://example.com:8080",
		"http://[::1]:3000":               "http://[::1]:3000",
	} {
		if got, err := CheckOrigin(in); err != nil || got != want {
			t.Errorf("CheckOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "*", "example.com", "https://example.com/app", "https://user@example.com", "ftp://example.com", "null"} {
		if _, err := CheckOrigin(bad); err == nil {
			t.Errorf("CheckOrigin(%q) accepted it", bad)
		}
	}
}
