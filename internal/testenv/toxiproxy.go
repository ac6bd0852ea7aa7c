package testenv

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// ToxiproxyServer is a toxiproxy server of the test's own, driven through its HTTP API (its Go
// client package pulls in Prometheus and zerolog; the API is four calls).
type ToxiproxyServer struct {
	t   testing.TB
	api string
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartToxiproxy starts toxiproxy-server (see Toxiproxy) on a free loopback port, stopped when
// the test ends.
func StartToxiproxy(t testing.TB) *ToxiproxyServer {
	t.Helper()
	bin := Toxiproxy(t)
	port := FreePort(t)
	cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting toxiproxy: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	tp := &ToxiproxyServer{t: t, api: "http://127.0.0.1:" + strconv.Itoa(port)}
	for range 200 {
		if resp, err := http.Get(tp.api + "/version"); err == nil {
			resp.Body.Close()
			return tp
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("toxiproxy did not start within 10 s")
	return nil
}

func (tp *ToxiproxyServer) call(method, path string, body any) {
	tp.t.Helper()
	var b bytes.Buffer
	if body != nil {
		_ = json.NewEncoder(&b).Encode(body)
	}
	req, _ := http.NewRequest(method, tp.api+path, &b)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tp.t.Fatalf("toxiproxy %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		tp.t.Fatalf("toxiproxy %s %s: HTTP %d", method, path, resp.StatusCode)
	}
}

// Proxy creates a proxy named name to upstream (host:port) and returns its listen address.
func (tp *ToxiproxyServer) Proxy(name, upstream string) string {
	listen := "127.0.0.1:" + strconv.Itoa(FreePort(tp.t))
	tp.call("POST", "/proxies", map[string]any{"name": name, "listen": listen, "upstream": upstream, "enabled": true})
	return listen
}

// Toxic adds a toxic (latency, limit_data, reset_peer, timeout, …) to a proxy's stream
// ("upstream" or "downstream"), applied to every connection.
func (tp *ToxiproxyServer) Toxic(proxy, name, typ, stream string, attrs map[string]any) {
	tp.call("POST", "/proxies/"+proxy+"/toxics", map[string]any{"name": name, "type": typ, "stream": stream,
		"toxicity": 1.0, "attributes": attrs})
}

// Clear removes a toxic: the fault clears.
func (tp *ToxiproxyServer) Clear(proxy, name string) {
	tp.call("DELETE", "/proxies/"+proxy+"/toxics/"+name, nil)
}

// Enable turns a proxy on or off; off closes its connections and refuses new ones.
func (tp *ToxiproxyServer) Enable(proxy string, on bool) {
	tp.call("POST", "/proxies/"+proxy, map[string]any{"enabled": on})
}
