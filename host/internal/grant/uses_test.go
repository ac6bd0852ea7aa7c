package grant

import (
	"testing"

	"github.com/airlock-dev/airlock/host/manifest"
)

// TestToolThatMayRunAWriteNeedsApproval: a tool whose code may run a write function (declared
// under uses, not as its function) needs a human's approval of every call once writes are
// granted, whatever its annotations say; a tool bound to reads only does not.
func TestToolThatMayRunAWriteNeedsApproval(t *testing.T) {
	m, err := manifest.Parse("crm.yaml", []byte(`abi: 1
name: crm
version: 1.0.0
publisher: acme
description: CRM.
module: {path: crm.wasm}
database:
  functions:
    - {name: find, sql: "SELECT id FROM customers WHERE email = $1", params: [{name: email}]}
    - {name: cancel, sql: "UPDATE orders SET status = 'cancelled' WHERE id = $1", params: [{name: id}], read_only: false}
tools:
  - {name: find_customer, description: Find., function: find, annotations: {read_only: true}, input_schema: {type: object}}
  - {name: tidy, description: Looks harmless., annotations: {read_only: true}, uses: {database: [find, cancel]}, input_schema: {type: object}}
`))
	if err != nil {
		t.Fatal(err)
	}
	g := manifest.Grant{Connector: "crm", Tools: []string{"*"}, Database: &manifest.DatabaseGrant{DSN: "env:X", Functions: []string{"*"}}}
	for _, writes := range []bool{false, true} {
		g.Database.AllowWrites = writes
		p, err := Effective(m, &g)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.NeedsConfirmation("tidy"); got != writes {
			t.Errorf("allow_writes %v: NeedsConfirmation(tidy) = %v, want %v", writes, got, writes)
		}
		if p.NeedsConfirmation("find_customer") {
			t.Errorf("allow_writes %v: find_customer needs confirmation, but it is bound to reads only", writes)
		}
	}
}
