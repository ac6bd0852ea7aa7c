package host

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/airlock-dev/airlock/host/internal/egress"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/internal/abi"
)

// What a call may use is bound to the tool being run (DESIGN.md invariant 9): the manifest's
// tools[].uses (manifest.Uses) names the database functions, network hosts and credential slots
// of each tool. The grant says what the connector may use at all; the binding says which of it
// this call may. Network rules and slots are enforced by egress under egress.WithCall; the
// database functions here, in airlock_db.

// networkBinding is the egress binding of tool t, called name ("connector.tool").
func networkBinding(name string, t *manifest.Tool) *egress.Binding {
	b := t.Binding()
	return &egress.Binding{Tool: name, Hosts: b.Network, Slots: b.Credentials}
}

// networkBindings are the egress bindings of m's tools, by tool name: built once per connector,
// shared by its calls (they do not change them).
func networkBindings(m *manifest.Manifest) map[string]*egress.Binding {
	bs := make(map[string]*egress.Binding, len(m.Tools))
	for i := range m.Tools {
		t := &m.Tools[i]
		bs[t.Name] = networkBinding(m.Name+"."+t.Name, t)
	}
	return bs
}

// binding is the egress binding of c's tool t.
func (c *connector) binding(t *manifest.Tool) *egress.Binding {
	if b := c.bindings[t.Name]; b != nil {
		return b
	}
	return networkBinding(c.manifest.Name+"."+t.Name, t) // a connector built without them
}

// checkDB returns why the running call may not run the database function name (requested as
// request), or nil:
//
//   - egress_denied: the tool's binding does not name the function;
//   - confirmation_required: the function writes and no human approved this call. Every tool
//     that may run a granted write function needs approval (grant.Policy.Confirm), so this
//     only fires should a policy ever miss one;
//   - egress_denied: the tool runs this write function as its own (tools[].function) and the
//     plugin changed the parameters the host built from the approved arguments.
func (hc *callHandler) checkDB(name string, request []byte) *abi.Error {
	tool := hc.ev.Tool
	if !hc.tool.UsesFunction(name) {
		return &abi.Error{Code: abi.CodeEgressDenied, Category: abi.Fatal, Message: fmt.Sprintf(
			"tool %s may not run database function %q: its manifest binds it to %s (tools[].uses.database). "+
				"The connector tried to use another tool's function; do not retry, report it to the connector's publisher",
			tool, truncateName(name), orNone(hc.tool.Binding().Database))}
	}
	f, ok := hc.c.manifest.Function(name)
	if !ok || f.ReadOnly {
		return nil
	}
	if !hc.approved {
		return &abi.Error{Code: abi.CodeNeedsConfirm, Category: abi.Correctable, Message: fmt.Sprintf(
			"database function %s writes, and this call of %s was not approved by a human; a write runs only in a call a human approved. "+
				"Ask the user to approve this exact call of %s, then call it again", name, tool, tool)}
	}
	if hc.tool.Function == name && !sameFunctionCall(hc.fnInput, request) {
		return &abi.Error{Code: abi.CodeEgressDenied, Category: abi.Fatal, Message: fmt.Sprintf(
			"tool %s sent write function %s other parameters than the approved arguments give; the host runs an approved write only as approved. "+
				"Do not retry, report it to the connector's publisher", tool, name)}
	}
	return nil
}

// sameFunctionCall reports whether two database requests name the same function with the same
// parameters (compared as compact JSON).
func sameFunctionCall(a, b []byte) bool {
	type call struct {
		Function string            `json:"function"`
		Params   []json.RawMessage `json:"params"`
	}
	var x, y call
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil || x.Function != y.Function || len(x.Params) != len(y.Params) {
		return false
	}
	for i := range x.Params {
		var cx, cy bytes.Buffer
		if json.Compact(&cx, x.Params[i]) != nil || json.Compact(&cy, y.Params[i]) != nil || !bytes.Equal(cx.Bytes(), cy.Bytes()) {
			return false
		}
	}
	return true
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
