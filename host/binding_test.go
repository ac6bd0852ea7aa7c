package host_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
)

// rogueCRM is the rogue connector (host/testdata/plugins/rogue) loaded over a small SQLite CRM,
// with everything granted, writes included: the grant is not what stops it.
type rogueCRM struct {
	h   *host.Host
	rec *hosttest.Recorder
	db  *sql.DB
}

func newRogueCRM(t *testing.T) *rogueCRM {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crm.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range []string{
		`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE)`,
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, status TEXT NOT NULL)`,
		`INSERT INTO customers VALUES (1, 'Ada Lovelace', 'ada@example.com')`,
		`INSERT INTO orders VALUES (11, 1, 'open'), (12, 1, 'open')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	m, wasm := hosttest.Connector(t, "./host/testdata/plugins/rogue", "host/testdata/rogue.yaml")
	env := map[string]string{"CRM_DSN": "sqlite:" + path, "API_TOKEN": "CANARY-api-token-4x", "ADMIN_TOKEN": "CANARY-admin-token-9q"}
	src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { v, ok := env[n]; return v, ok }}}
	h, rec := hosttest.New(t, host.Config{Secrets: src})
	g := &manifest.Grant{Connector: "rogue", Tools: []string{"*"}, Hosts: []string{"*"},
		Credentials: manifest.SecretRefs(map[string]string{"api_token": "env:API_TOKEN", "admin_token": "env:ADMIN_TOKEN"}),
		Database:    &manifest.DatabaseGrant{DSN: "env:CRM_DSN", Functions: []string{"*"}, AllowWrites: true}}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return &rogueCRM{h: h, rec: rec, db: db}
}

func (r *rogueCRM) call(t *testing.T, tool, args string, confirmed bool) *host.Result {
	t.Helper()
	return r.h.Call(context.Background(), host.CallRequest{Tool: "rogue." + tool, Arguments: json.RawMessage(args),
		Agent: "agent-1", Confirmed: confirmed})
}

func (r *rogueCRM) status(t *testing.T, order int) string {
	t.Helper()
	var s string
	if err := r.db.QueryRow(`SELECT status FROM orders WHERE id = ?`, order).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// dbEvent returns the audit record of the call's database request for function fn.
func (r *rogueCRM) dbEvent(t *testing.T, res *host.Result, fn string) audit.Event {
	t.Helper()
	for _, e := range r.rec.Audit.Events() {
		if e.RequestID == res.Meta.RequestID && e.Kind == audit.KindRequest && e.URL == "db:"+fn {
			return e
		}
	}
	t.Fatalf("no audit record of the database request %s in call %s", fn, res.Meta.RequestID)
	return audit.Event{}
}

// TestRogueReadToolCannotRunAGrantedWriteFunction is issue 14 item 1 as it was met: the
// unconfirmed read tool find_customer of a rogue plugin ran the granted write function
// set_order_status and cancelled an order. The function is not in find_customer's binding: the
// host refuses it, no row changes, and the audit names the tool and the function.
func TestRogueReadToolCannotRunAGrantedWriteFunction(t *testing.T) {
	r := newRogueCRM(t)
	res := r.call(t, "find_customer", `{"email":"ada@example.com"}`, false)
	if res.OK || res.Error.Code != abi.CodeEgressDenied {
		t.Fatalf("find_customer = %+v, want egress_denied", res.Error)
	}
	for _, want := range []string{"rogue.find_customer", "set_order_status", "uses.database"} {
		if !strings.Contains(res.Error.Message, want) {
			t.Errorf("message %q does not name %q", res.Error.Message, want)
		}
	}
	if s := r.status(t, 11); s != "open" {
		t.Fatalf("order 11 is %q, want open: the write ran", s)
	}
	e := r.dbEvent(t, res, "set_order_status")
	if e.Tool != "rogue.find_customer" || e.Outcome != "denied" || e.Code != abi.CodeEgressDenied {
		t.Errorf("audit record = tool %q outcome %q code %q, want rogue.find_customer denied egress_denied", e.Tool, e.Outcome, e.Code)
	}
	// The same refusal when a human confirmed the read: approval of one tool does not lend its
	// call another tool's function.
	if res := r.call(t, "find_customer", `{"email":"ada@example.com"}`, true); res.OK || res.Error.Code != abi.CodeEgressDenied {
		t.Fatalf("confirmed find_customer = %+v, want egress_denied", res.Error)
	}
	if s := r.status(t, 11); s != "open" {
		t.Fatalf("order 11 is %q, want open", s)
	}
}

// TestToolThatMayWriteNeedsApproval: a tool that declares a write function in its binding needs
// a human's approval of each call, whatever its annotations claim; approved, it runs.
func TestToolThatMayWriteNeedsApproval(t *testing.T) {
	r := newRogueCRM(t)
	res := r.call(t, "tidy", `{}`, false)
	if res.OK || res.Error.Code != abi.CodeNeedsConfirm {
		t.Fatalf("unconfirmed tidy = %+v, want %s", res.Error, abi.CodeNeedsConfirm)
	}
	if s := r.status(t, 11); s != "open" {
		t.Fatalf("order 11 is %q, want open: the write ran without approval", s)
	}
	if res := r.call(t, "tidy", `{}`, true); !res.OK {
		t.Fatalf("approved tidy = %+v, want it to run", res.Error)
	}
	if s := r.status(t, 11); s != "cancelled" {
		t.Fatalf("order 11 is %q after the approved call, want cancelled", s)
	}
}

// TestWriteInAnUnapprovedCallIsRefused: should a policy ever let a tool that may write run
// without approval, the host still refuses the write function inside that call.
func TestWriteInAnUnapprovedCallIsRefused(t *testing.T) {
	r := newRogueCRM(t)
	host.DropConfirmation(r.h, "rogue", "tidy")
	res := r.call(t, "tidy", `{}`, false)
	if res.OK || res.Error.Code != abi.CodeNeedsConfirm || !strings.Contains(res.Error.Message, "set_order_status writes") {
		t.Fatalf("tidy without approval = %+v, want %s from the database function", res.Error, abi.CodeNeedsConfirm)
	}
	if s := r.status(t, 11); s != "open" {
		t.Fatalf("order 11 is %q, want open", s)
	}
	if e := r.dbEvent(t, res, "set_order_status"); e.Outcome != "denied" || e.Tool != "rogue.tidy" {
		t.Errorf("audit record = tool %q outcome %q, want rogue.tidy denied", e.Tool, e.Outcome)
	}
}

// TestApprovedWriteRunsOnlyAsApproved: a tool whose function writes runs it only with the
// parameters the host built from the approved arguments.
func TestApprovedWriteRunsOnlyAsApproved(t *testing.T) {
	r := newRogueCRM(t)
	res := r.call(t, "set_order_status", `{"order_id":11,"status":"shipped"}`, true)
	if res.OK || res.Error.Code != abi.CodeEgressDenied || !strings.Contains(res.Error.Message, "approved") {
		t.Fatalf("set_order_status with tampered parameters = %+v, want egress_denied", res.Error)
	}
	for _, order := range []int{11, 12} {
		if s := r.status(t, order); s != "open" {
			t.Fatalf("order %d is %q, want open", order, s)
		}
	}
	if e := r.dbEvent(t, res, "set_order_status"); e.Outcome != "denied" || e.Tool != "rogue.set_order_status" {
		t.Errorf("audit record = tool %q outcome %q, want rogue.set_order_status denied", e.Tool, e.Outcome)
	}
}

// TestToolReachesOnlyItsHostsAndSlots: fetch is bound to api.example.test and api_token; the
// connector's grant also allows admin.example.test and admin_token, which fetch may not use.
func TestToolReachesOnlyItsHostsAndSlots(t *testing.T) {
	r := newRogueCRM(t)
	for _, args := range []string{
		`{"url":"https://admin.example.test/users"}`,
		`{"url":"https://admin.example.test/users","credential":"admin_token"}`,
		`{"url":"https://api.example.test/x","credential":"admin_token"}`,
	} {
		res := r.call(t, "fetch", args, true)
		if res.OK || res.Error.Code != abi.CodeEgressDenied || !strings.Contains(res.Error.Message, "rogue.fetch") {
			t.Errorf("fetch(%s) = %+v, want egress_denied naming the tool", args, res.Error)
		}
	}
	for _, e := range r.rec.Audit.Events() {
		if e.Kind == audit.KindRequest && e.Outcome != "denied" {
			t.Errorf("request record %+v, want every request denied", e)
		}
	}
	if logs := r.rec.Logs(); strings.Contains(logs, "CANARY") {
		t.Errorf("a credential reached the logs")
	}
}
