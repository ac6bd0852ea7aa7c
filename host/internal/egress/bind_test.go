package egress

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/abi"
)

// TestBindingNarrowsOneCall: under a tool's binding, a request may use only the rules and
// slots the tool declares, though the connector's grant allows more — including a redirect hop
// an upstream sends to a granted host the tool does not use.
func TestBindingNarrowsOneCall(t *testing.T) {
	h := newHarness(t)
	api := h.serve("api.example.test", apiIP, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/bounce" {
			http.Redirect(w, r, "http://other.example.test/x", http.StatusFound)
			return
		}
		echo(w, r)
	})
	other := h.serve("other.example.test", otherIP, nil)
	c := h.client(Config{Rules: apiRules(), Slots: testSlots()})
	ctx := WithCall(context.Background(), &Call{Binding: &Binding{Tool: "crm.find", Hosts: []string{"api.example.test"}, Slots: []string{"bearer"}}})

	wantStatus(t, c.Do(ctx, abi.HTTPRequest{URL: "http://api.example.test/api/ok", Credential: "bearer"}), 200)
	for _, tc := range []struct {
		name string
		req  abi.HTTPRequest
		says string
	}{
		{"unbound host", abi.HTTPRequest{URL: "http://other.example.test/x"}, "tool crm.find may not reach other.example.test"},
		{"unbound slot", abi.HTTPRequest{URL: "http://api.example.test/api/ok", Credential: "key"}, "tool crm.find may not use credential key"},
		{"redirect to an unbound host", abi.HTTPRequest{URL: "http://api.example.test/api/bounce"}, "redirected to http://other.example.test/x: tool crm.find may not reach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := c.Do(ctx, tc.req)
			wantError(t, resp, abi.CodeEgressDenied)
			if !strings.Contains(resp.Error.Message, tc.says) || !strings.Contains(resp.Error.Message, "uses") {
				t.Errorf("message %q does not say %q and where the binding is declared", resp.Error.Message, tc.says)
			}
		})
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("other.example.test received %d requests under a binding that excludes it", n)
	}
	// Without a binding, the same client reaches both (the grant allows them).
	wantStatus(t, c.Do(context.Background(), abi.HTTPRequest{URL: "http://other.example.test/x"}), 200)
	if n := len(api.requests()); n != 2 {
		t.Errorf("api.example.test received %d requests, want 2", n)
	}
}

type recorder []Record

func (r *recorder) Observe(rec Record) { *r = append(*r, rec) }

// TestCallBindsAndObserves: a call's binding and observer apply together: the unbound request
// is refused and the observer hears of it.
func TestCallBindsAndObserves(t *testing.T) {
	h := newHarness(t)
	h.serve("api.example.test", apiIP, nil)
	other := h.serve("other.example.test", otherIP, nil)
	c := h.client(Config{Rules: apiRules(), Slots: testSlots()})
	var seen recorder
	ctx := WithCall(context.Background(), &Call{Binding: &Binding{Tool: "crm.find", Hosts: []string{"api.example.test"}}, Observer: &seen})
	wantError(t, c.Do(ctx, abi.HTTPRequest{URL: "http://other.example.test/x"}), abi.CodeEgressDenied)
	if len(seen) != 1 || seen[0].Decision != DecisionDenied {
		t.Errorf("observer saw %+v, want the one denied request", seen)
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("other.example.test received %d requests under a binding that excludes it", n)
	}
}
