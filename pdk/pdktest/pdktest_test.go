package pdktest

import (
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/pdk"
)

// TestConcurrentCalls: Call serialises on the process-wide fake host, so hosts used from
// parallel goroutines do not see each other's input or output.
func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := New(t)
			h.SetInput(map[string]int{"n": i})
			for range 50 {
				out, toolErr := h.Call(func() error {
					pdk.OutputBytes(pdk.InputBytes())
					return nil
				})
				if toolErr != nil || string(out) != `{"n":`+string(rune('0'+i))+`}` {
					t.Errorf("host %d: got %s %v", i, out, toolErr)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestCallWithoutError(t *testing.T) {
	t.Parallel()
	h := New(t)
	out, toolErr := h.Call(func() error { return nil })
	if out != nil || toolErr != nil {
		t.Errorf("Call(no output) = %q, %v; want nil, nil", out, toolErr)
	}
	var e *pdk.Error
	_, toolErr = h.Call(func() error { return errors.New("plain") })
	if toolErr == nil || !errors.As(error(toolErr), &e) || e.Category != pdk.CategoryCorrectable {
		t.Errorf("plain error: %+v", toolErr)
	}
}

func FuzzDecodeToolError(f *testing.F) {
	for _, seed := range []string{
		`{"code":"x","category":"fatal","message":"m"}`,
		`{"code":"x","category":"FATAL","message":"m"}`,
		`{"message":""}`, `null`, ``, "\x00", `{"category":"retryable","message":"m","retry_after_ms":-1}`,
		`{"Code":"x","Category":"fatal","Message":"m"}`, "plain text error",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := decodeToolError(b)
		switch {
		case e == nil:
			t.Fatal("nil error")
		case e.Code == "":
			t.Errorf("empty code for %q", b)
		case e.Category != pdk.CategoryRetryable && e.Category != pdk.CategoryCorrectable && e.Category != pdk.CategoryFatal:
			t.Errorf("category %q for %q", e.Category, b)
		}
	})
}

// A bad URL is refused as the host refuses it (host/internal/egress parseTarget): malformed is
// bad_request, correctable (the URL may come from the agent's arguments); another scheme or
// userinfo is egress_denied, fatal. A connector tested here branches as it will under the host.
func TestBadURLRefusedAsByTheHost(t *testing.T) {
	t.Parallel()
	h := New(t)
	h.Serve(http.NotFoundHandler())
	for _, c := range []struct {
		url, code string
		category  pdk.Category
	}{
		{"", pdk.CodeBadRequest, pdk.CategoryCorrectable},
		{"not a url", pdk.CodeBadRequest, pdk.CategoryCorrectable},
		{"https://", pdk.CodeBadRequest, pdk.CategoryCorrectable},
		{"/relative/path", pdk.CodeBadRequest, pdk.CategoryCorrectable},
		{"ftp://files.example.test/x", pdk.CodeEgressDenied, pdk.CategoryFatal},
		{"https://user:pw@api.example.test/x", pdk.CodeEgressDenied, pdk.CategoryFatal},
	} {
		var got error
		h.Call(func() error {
			_, got = pdk.HTTP(pdk.HTTPRequest{Method: "GET", URL: c.url})
			return nil
		})
		var e *pdk.Error
		if !errors.As(got, &e) || e.Code != c.code || e.Category != c.category {
			t.Errorf("pdk.HTTP(%q) error = %v, want %s, %s", c.url, got, c.code, c.category)
		}
	}
}
