package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// served is an 'airlock serve --http' running in this process, as main runs it: cancelling
// stop is what SIGTERM and SIGINT do (main turns them into the command's context).
type served struct {
	addr string
	logs *testenv.Buffer
	stop context.CancelFunc
	done chan int
}

func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &served{addr: ln.Addr().String(), logs: &testenv.Buffer{}, done: make(chan int, 1)}
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() { s.done <- run(ctx, append([]string{"serve", "--http", s.addr}, args...), s.logs, s.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(60 * time.Second):
			t.Errorf("serve did not stop within 60 s of its context ending")
		}
	})
	return s
}

// get fetches path over client until the server answers (it may still be starting).
func (s *served) get(t *testing.T, client *http.Client, scheme, path string) (int, string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := client.Get(scheme + "://" + s.addr + path)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v\nserver output: %s", path, err, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A load balancer or kubelet probes without a token: /healthz and /readyz answer with JSON
// while /mcp still wants one. /readyz names the store and Redis checks and the connectors.
func TestHealthAndReadinessProbes(t *testing.T) {
	w := newGrantWorld(t)
	w.install(t)
	w.must(t, exitOK, "grant", "slack", "--tools", "*", "--scopes", "*", "--hosts", "*", "--credential", "bot_token=store:slack_bot")
	w.must(t, exitOK, "agent", "add", "bot", "--subject", "acme")
	s := startServe(t, append([]string{"--redis", testenv.Redis(t)}, w.g...)...)
	c := &http.Client{Timeout: 10 * time.Second}

	code, body := s.get(t, c, "http", "/healthz")
	if code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("/healthz = %d %s, want 200 {\"status\":\"ok\"}", code, body)
	}
	code, body = s.get(t, c, "http", "/readyz")
	var ready readyBody
	if err := json.Unmarshal([]byte(body), &ready); err != nil {
		t.Fatalf("/readyz body is not JSON: %s", body)
	}
	checks := map[string]bool{}
	for _, ch := range ready.Checks {
		checks[ch.Name] = ch.OK
	}
	if code != http.StatusOK || ready.Status != "ready" || !checks["store"] || !checks["redis"] ||
		len(ready.Connectors) != 1 || ready.Connectors[0] != "slack" || ready.Tools == 0 {
		t.Errorf("/readyz = %d %s, want 200 ready with store and redis ok and the slack connector", code, body)
	}
	if code, _ := s.get(t, c, "http", "/mcp"); code != http.StatusUnauthorized {
		t.Errorf("/mcp without a token = %d, want 401 (the probes must not open anything else)", code)
	}
	if code, _ := s.get(t, c, "http", "/healthz/../admin/v1/grants"); code != http.StatusUnauthorized {
		t.Errorf("a path through /healthz reached the admin API without a token: %d", code)
	}
}

// slowUpstream holds every request until release is closed, and says when one arrived.
type slowUpstream struct {
	next    http.Handler
	arrived chan struct{}
	release chan struct{}
}

func (u *slowUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case u.arrived <- struct{}{}:
	default:
	}
	<-u.release
	u.next.ServeHTTP(w, r)
}

// slowWorld is a grantWorld whose Slack upstream holds every request until released, with an
// agent token.
func slowWorld(t *testing.T) (*grantWorld, *slowUpstream, string) {
	t.Helper()
	w := newGrantWorld(t)
	w.install(t)
	up := &slowUpstream{next: w.fake, arrived: make(chan struct{}, 1), release: make(chan struct{})}
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	t.Cleanup(func() {
		select {
		case <-up.release:
		default:
			close(up.release)
		}
	})
	routes := filepath.Join(w.dir, "routes.yaml")
	os.WriteFile(routes, []byte(fmt.Sprintf("connector: slack\nupstreams: {\"https://slack.com\": %q}\n", upSrv.URL)), 0o600)
	w.must(t, exitOK, "grant", "slack", "--file", routes, "--tools", "*", "--scopes", "*", "--hosts", "*", "--credential", "bot_token=store:slack_bot")
	token, _ := w.must(t, exitOK, "agent", "add", "bot", "--subject", "acme")
	return w, up, strings.TrimSpace(token)
}

type callOutcome struct {
	res *sdk.CallToolResult
	err error
}

// callSlow connects an MCP client with token and starts a slack.list_channels call; it returns
// once the call reached the upstream.
func callSlow(t *testing.T, s *served, up *slowUpstream, token string) chan callOutcome {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	if code, body := s.get(t, c, "http", "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before shutdown = %d %s", code, body)
	}
	// The Go SDK's client fails a session whose event stream cannot be opened, and with it the
	// calls it waits for: a client still opening its stream when the listener closes loses its
	// call (see RATIONALE.md). This one has its stream open before the shutdown starts.
	streamOpen := make(chan struct{})
	client := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: "http://" + s.addr + "/mcp", MaxRetries: -1,
		HTTPClient: &http.Client{Transport: bearerTransport{token: token, streamOpen: streamOpen, once: &sync.Once{}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	select {
	case <-streamOpen:
	case <-time.After(30 * time.Second):
		t.Fatal("the MCP client did not open its event stream")
	}
	result := make(chan callOutcome, 1)
	go func() {
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "slack.list_channels", Arguments: map[string]any{}})
		result <- callOutcome{res, err}
	}()
	select {
	case <-up.arrived:
	case <-time.After(60 * time.Second):
		t.Fatalf("the call never reached the upstream\nserver output: %s", s.logs.String())
	}
	return result
}

// auditOf returns the audit records of slack.list_channels calls in w's state.
func auditOf(t *testing.T, w *grantWorld) []store.AuditRecord {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(w.dir, "state", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.QueryAudit(context.Background(), store.AuditFilter{Tool: "slack.list_channels", Kind: "call"})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// SIGTERM during a slow tool call: new connections stop at once, the call in progress
// completes and answers its agent, the server exits 0, and the call's audit record is in the
// store.
func TestShutdownDrainsCallInProgress(t *testing.T) {
	w, up, token := slowWorld(t)
	s := startServe(t, append([]string{"--shutdown-timeout", "60s", "--log-level", "info"}, w.g...)...)
	result := callSlow(t, s, up, token)

	s.stop() // SIGTERM
	for deadline := time.Now().Add(30 * time.Second); ; {
		conn, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			break // no longer accepting
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections 30 s after SIGTERM")
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case o := <-result:
		t.Fatalf("the call ended before its upstream answered: %+v %v", o.res, o.err)
	case code := <-s.done:
		t.Fatalf("serve exited (%d) with a call in progress", code)
	default:
	}

	close(up.release)
	o := <-result
	if o.err != nil || o.res.IsError {
		t.Fatalf("the call in progress during shutdown failed: %+v %v\nserver output: %s", o.res, o.err, s.logs.String())
	}
	select {
	case code := <-s.done:
		s.done <- code // for the cleanup
		if code != exitOK {
			t.Fatalf("serve exited %d after a graceful shutdown\n%s", code, s.logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not exit after its last call finished\n%s", s.logs.String())
	}

	recs := auditOf(t, w)
	if len(recs) != 1 || !strings.Contains(string(recs[0].Data), `"outcome":"ok"`) {
		t.Fatalf("audit records of the drained call = %d, want 1 with outcome ok: %+v", len(recs), recs)
	}
	if !strings.Contains(s.logs.String(), "audit log flushed") {
		t.Errorf("the shutdown did not report the audit flush:\n%s", s.logs.String())
	}
}

// A call that outlasts --shutdown-timeout does not hold the shutdown: its connection is cut,
// the log says to raise the bound, the server exits, and the call is still in the audit trail.
func TestShutdownTimeoutBoundsTheDrain(t *testing.T) {
	w, up, token := slowWorld(t)
	s := startServe(t, append([]string{"--shutdown-timeout", "1s"}, w.g...)...)
	result := callSlow(t, s, up, token)
	s.stop() // SIGTERM; the upstream never answers
	select {
	case code := <-s.done:
		s.done <- code
	case <-time.After(45 * time.Second):
		t.Fatalf("serve still runs 45 s after SIGTERM with --shutdown-timeout 1s\n%s", s.logs.String())
	}
	if o := <-result; o.err == nil && !o.res.IsError {
		t.Errorf("the cut-off call succeeded: %+v", o.res)
	}
	if !strings.Contains(s.logs.String(), "raise it if calls take longer") {
		t.Errorf("the log does not say the drain was cut off:\n%s", s.logs.String())
	}
	if recs := auditOf(t, w); len(recs) != 1 {
		t.Errorf("audit records of the cut-off call = %d, want 1", len(recs))
	}
}

// bearerTransport adds the agent's token and, if streamOpen is set, closes it once the
// session's GET event stream is open.
type bearerTransport struct {
	token      string
	streamOpen chan struct{}
	once       *sync.Once
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodGet && resp.StatusCode == http.StatusOK && b.streamOpen != nil {
		b.once.Do(func() { close(b.streamOpen) })
	}
	return resp, err
}

// writeCert writes a self-signed certificate for 127.0.0.1 with common name cn to certFile and
// keyFile, and returns it.
func writeCert(t *testing.T, certFile, keyFile, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// The key first: a reader that sees the new certificate must not find the old key.
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// An operator serves HTTPS with --tls-cert/--tls-key, then renews the certificate in place (as
// cert-manager or certbot do): new connections get the new one without a restart; a broken
// renewal keeps the last good certificate serving; TLS below 1.2 is refused.
func TestTLSServeAndRotate(t *testing.T) {
	hermetic(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile, "airlock-first")
	g := []string{"--state-dir", filepath.Join(dir, "state"), "--config", filepath.Join(dir, "airlock.yaml")}
	os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte("state_dir: state\n"), 0o600)
	s := startServe(t, append([]string{"--tls-cert", certFile, "--tls-key", keyFile}, g...)...)

	clientFor := func(cert *x509.Certificate) *http.Client {
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	}
	servedCN := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("TLS handshake: %v\n%s", err, s.logs.String())
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if code, body := s.get(t, clientFor(first), "https", "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz over TLS = %d %s", code, body)
	}
	if !strings.Contains(s.logs.String(), "https://"+s.addr+"/mcp") {
		t.Errorf("serve did not announce its https URL: %s", s.logs.String())
	}

	second := writeCert(t, certFile, keyFile, "airlock-second")
	later := time.Now().Add(2 * time.Second) // a different mtime even on a coarse filesystem clock
	os.Chtimes(certFile, later, later)
	os.Chtimes(keyFile, later, later)
	if cn := servedCN(); cn != "airlock-second" {
		t.Fatalf("after renewal the server presents %q, want airlock-second", cn)
	}
	if code, _ := s.get(t, clientFor(second), "https", "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with the renewed certificate = %d", code)
	}

	os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"), 0o600)
	if cn := servedCN(); cn != "airlock-second" {
		t.Errorf("after a broken renewal the server presents %q, want the last good airlock-second", cn)
	}

	conn, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Errorf("a TLS 1.1 handshake succeeded, want TLS 1.2 at least")
	}
}

func TestTLSFlagErrors(t *testing.T) {
	hermetic(t)
	dir := t.TempDir()
	g := []string{"--state-dir", filepath.Join(dir, "state"), "--config", filepath.Join(dir, "airlock.yaml")}
	os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte("state_dir: state\n"), 0o600)
	code, _, errOut := airlock(t, append([]string{"serve", "--http", "127.0.0.1:0", "--tls-cert", filepath.Join(dir, "c.pem")}, g...)...)
	if code != exitUsage || !strings.Contains(errOut, "--tls-cert and --tls-key go together") {
		t.Errorf("--tls-cert alone = %d %s, want a usage error", code, errOut)
	}
	os.WriteFile(filepath.Join(dir, "c.pem"), []byte("junk"), 0o600)
	os.WriteFile(filepath.Join(dir, "k.pem"), []byte("junk"), 0o600)
	code, _, errOut = airlock(t, append([]string{"serve", "--http", "127.0.0.1:0", "--tls-cert", filepath.Join(dir, "c.pem"), "--tls-key", filepath.Join(dir, "k.pem")}, g...)...)
	if code != exitError || !strings.Contains(errOut, "--tls-cert") || !strings.Contains(errOut, "PEM") {
		t.Errorf("unreadable certificate = %d %s, want an error naming --tls-cert", code, errOut)
	}
}

// airlock --version prints the version and the commit; -ldflags stamps both (see version.go).
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, _ := airlock(t, args...)
		if code != exitOK || !strings.HasPrefix(out, "airlock ") || !strings.Contains(out, "commit ") {
			t.Errorf("airlock %s = %d %q", args[0], code, out)
		}
	}
	version, commit = "v1.2.3", "0123abc"
	t.Cleanup(func() { version, commit = "", "" })
	if _, out, _ := airlock(t, "--version"); !strings.HasPrefix(out, "airlock v1.2.3 (commit 0123abc") {
		t.Errorf("stamped --version = %q", out)
	}
}
