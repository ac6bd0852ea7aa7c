package egress

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/abi"
)

// tlsUpstream starts an https upstream for secure.example.test that counts its connections and
// returns a client that trusts its certificate.
func tlsUpstream(t *testing.T, h http.HandlerFunc, setup func(*httptest.Server)) (*Client, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true // offers h2, as real upstreams do
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	if setup != nil {
		setup(srv)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c, err := New(Config{
		Rules:     []Rule{{Host: "secure.example.test"}},
		Upstreams: map[string]string{"https://secure.example.test": srv.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.upTransport.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	return c, &conns
}

func getSecure(c *Client) abi.HTTPResponse {
	return c.Do(context.Background(), abi.HTTPRequest{URL: "https://secure.example.test/"})
}

// Calls to an https upstream that offers HTTP/2 go out as HTTP/1.1 over one kept-alive TLS
// connection. It is TLS 1.3, so the server's session tickets arrive after the handshake, while
// the connection sits idle in the pool; they must not make it look dirty.
func TestHTTPSKeepAliveHTTP1(t *testing.T) {
	c, conns := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.TLS.Version != tls.VersionTLS13 {
			t.Errorf("the upstream was reached over %+v, want TLS 1.3 (session tickets)", r.TLS)
		}
		io.WriteString(w, r.Proto)
	}, nil)
	for i := range 5 {
		resp := getSecure(c)
		wantStatus(t, resp, 200)
		if string(resp.Body) != "HTTP/1.1" {
			t.Fatalf("call %d reached the upstream over %s, want HTTP/1.1", i, resp.Body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 calls opened %d TLS connections, want 1 (kept alive)", n)
	}
}

// An upstream that closes each connection after its answer (close_notify, then FIN), or times out
// idle connections, is reached on a new connection each time, without an error.
func TestHTTPSUpstreamClosesIdle(t *testing.T) {
	c, conns := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "ok")
	}, nil)
	for range 3 {
		wantStatus(t, getSecure(c), 200)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("3 calls to an upstream closing after each answer opened %d connections, want 3", n)
	}

	c2, conns2 := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") },
		func(s *httptest.Server) { s.Config.IdleTimeout = 50 * time.Millisecond })
	wantStatus(t, getSecure(c2), 200)
	time.Sleep(300 * time.Millisecond) // the upstream closes the idle connection with close_notify
	wantStatus(t, getSecure(c2), 200)
	if n := conns2.Load(); n != 2 {
		t.Errorf("a call after the upstream closed the idle connection used %d connections in all, want 2", n)
	}
}

// A certificate the client does not trust fails the call, with an error that names the cause.
func TestHTTPSUntrustedCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the request reached an upstream whose certificate is not trusted")
	}))
	defer srv.Close()
	c, err := New(Config{
		Rules:     []Rule{{Host: "secure.example.test"}},
		Upstreams: map[string]string{"https://secure.example.test": srv.URL},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := getSecure(c)
	if resp.Error == nil || !strings.Contains(resp.Error.Message, "certificate") {
		t.Fatalf("a call to an untrusted certificate gave %+v, want an error naming the certificate", resp)
	}
}

// An upstream that only speaks HTTP/2 is not reachable over HTTP/1.1: the call fails with an
// error, promptly, instead of hanging or being read as an answer.
func TestHTTPSUpstreamOnlyHTTP2(t *testing.T) {
	c, _ := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("an h2-only upstream served a %s request", r.Proto)
	}, func(s *httptest.Server) {
		s.Config.Protocols = new(http.Protocols)
		s.Config.Protocols.SetHTTP2(true)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp := c.Do(ctx, abi.HTTPRequest{URL: "https://secure.example.test/"})
	if resp.Error == nil {
		t.Fatalf("an h2-only upstream answered %d %q over HTTP/1.1, want an error", resp.Status, resp.Body)
	}
	if ctx.Err() != nil {
		t.Fatalf("the call to an h2-only upstream waited for its deadline: %v", resp.Error)
	}
	if !strings.Contains(resp.Error.Message, "HTTP/2") {
		t.Errorf("the error of a call to an h2-only upstream does not name HTTP/2 as a possible cause: %s", resp.Error.Message)
	}
}

// A TLS 1.0 upstream is refused (the Transport's default minimum is TLS 1.2).
func TestHTTPSOldTLSRefused(t *testing.T) {
	c, _ := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		t.Error("the request reached a TLS 1.0 upstream")
	}, func(s *httptest.Server) {
		s.TLS = &tls.Config{MaxVersion: tls.VersionTLS10}
	})
	if resp := getSecure(c); resp.Error == nil {
		t.Fatalf("a TLS 1.0 upstream answered %d, want an error", resp.Status)
	}
}

// A certificate valid for other names than the one dialed fails the call.
func TestHTTPSWrongName(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the request reached an upstream whose certificate is for another name")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// The test certificate names example.com, 127.0.0.1 and ::1, not localhost.
	c, err := New(Config{
		Rules:     []Rule{{Host: "secure.example.test"}},
		Upstreams: map[string]string{"https://secure.example.test": "https://localhost:" + port},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.upTransport.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	resp := getSecure(c)
	if resp.Error == nil || !strings.Contains(resp.Error.Message, "certificate") {
		t.Fatalf("a call to a certificate for another name gave %+v, want an error naming the certificate", resp)
	}
}

// An endless body over TLS is cut at the response limit and the call fails; the connection is not
// pooled (the next call opens a new one).
func TestHTTPSEndlessBody(t *testing.T) {
	c, conns := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			io.WriteString(w, "ok")
			return
		}
		chunk := []byte(strings.Repeat("x", 32<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}, nil)
	resp := getSecure(c)
	if resp.Error == nil {
		t.Fatalf("an endless body gave %d with %d bytes, want an error", resp.Status, len(resp.Body))
	}
	wantStatus(t, c.Do(context.Background(), abi.HTTPRequest{URL: "https://secure.example.test/ok"}), 200)
	if n := conns.Load(); n != 2 {
		t.Errorf("the call after an endless body used %d connections in all, want 2 (not the cut one)", n)
	}
}

// An expired certificate fails the call even when its issuer is trusted.
func TestHTTPSExpiredCertificate(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "expired test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(-24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		t.Error("the request reached an upstream with an expired certificate")
	}, func(s *httptest.Server) {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	})
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	c.upTransport.TLSClientConfig = &tls.Config{RootCAs: roots}
	resp := getSecure(c)
	if resp.Error == nil || !strings.Contains(resp.Error.Message, "certificate") {
		t.Fatalf("a call to an expired certificate gave %+v, want an error naming the certificate", resp)
	}
}
