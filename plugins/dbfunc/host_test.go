//go:build !wasip1

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// End to end: the example connector (manifests/dbfunc.yaml) built from this package, loaded in a
// real host, against SQLite, PostgreSQL and MariaDB (and the Redis variant in redis_test.go).

const canary = "CANARY-crm-dsn-Zp41xQ"

const crmSchema = `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, plan TEXT NOT NULL DEFAULT 'free');
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), total_cents INTEGER NOT NULL, status TEXT NOT NULL);
INSERT INTO customers (id, name, email) VALUES (1, 'Ada Lovelace', 'ada@example.com'), (2, 'Grace Hopper', 'grace@example.com');
INSERT INTO orders (id, customer_id, total_cents, status) VALUES (10, 1, 1250, 'paid'), (11, 1, 990, 'open'), (12, 2, 5000, 'shipped')`

type crm struct {
	dsn   string
	admin *sql.DB
}

func newCRM(t *testing.T, backend string) *crm {
	t.Helper()
	c := &crm{}
	var err error
	switch backend {
	case "sqlite":
		dir := filepath.Join(t.TempDir(), canary)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "crm.db")
		c.admin, err = sql.Open("sqlite", path)
		c.dsn = "sqlite:" + path
	case "mysql":
		c.dsn, c.admin = testenv.MariaDBUser(t, canary)
	case "postgres":
		var u *url.URL
		if u, err = url.Parse(testenv.Postgres(t)); err != nil {
			t.Fatal(err)
		}
		c.admin, err = sql.Open("pgx", u.String())
		u.User = url.UserPassword(u.User.Username(), canary) // loopback is trusted: any password works
		c.dsn = u.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.admin.Close() })
	for _, stmt := range strings.Split(crmSchema, ";") {
		if _, err := c.admin.Exec(stmt); err != nil {
			t.Fatalf("schema: %v", err)
		}
	}
	return c
}

func crmHost(t *testing.T, c *crm, g *manifest.Grant) (*host.Host, *hosttest.Recorder) {
	t.Helper()
	m, wasm := hosttest.Connector(t, "./plugins/dbfunc", "manifests/dbfunc.yaml")
	src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) {
		return c.dsn, n == "CRM_DB_DSN"
	}}}
	h, rec := hosttest.New(t, host.Config{Secrets: src})
	g.Connector = "crm_db"
	if g.Database != nil {
		g.Database.DSN = "env:CRM_DB_DSN"
	}
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec
}

type output struct {
	Columns   []string         `json:"columns"`
	Rows      []map[string]any `json:"rows"`
	Truncated bool             `json:"truncated"`
	Affected  int64            `json:"affected"`
}

func callTool(t *testing.T, h *host.Host, tool, args string, confirmed bool) (*host.Result, output) {
	t.Helper()
	res := h.Call(context.Background(), host.CallRequest{Tool: "crm_db." + tool, Arguments: json.RawMessage(args),
		Agent: "test-agent", Confirmed: confirmed})
	var out output
	if res.OK {
		if err := json.Unmarshal(res.Data, &out); err != nil {
			t.Fatalf("%s: result %s: %v", tool, res.Data, err)
		}
	}
	return res, out
}

// noLeak fails when the DSN's secret reached a result, the audit log or the logs.
func noLeak(t *testing.T, rec *hosttest.Recorder, results ...*host.Result) {
	t.Helper()
	for i, r := range results {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), canary) {
			t.Errorf("result %d holds the DSN secret: %s", i, b)
		}
	}
	events, _ := json.Marshal(rec.Audit.Events())
	if strings.Contains(string(events), canary) {
		t.Errorf("the audit log holds the DSN secret")
	}
	if strings.Contains(rec.Logs(), canary) {
		t.Errorf("the logs hold the DSN secret")
	}
}

func eachBackend(t *testing.T, test func(t *testing.T, c *crm)) {
	for _, name := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, newCRM(t, name))
		})
	}
}

func TestEndToEndReads(t *testing.T) {
	eachBackend(t, func(t *testing.T, c *crm) {
		h, rec := crmHost(t, c, &manifest.Grant{Tools: []string{"*"}, Database: &manifest.DatabaseGrant{Functions: []string{"*"}}})
		var results []*host.Result

		res, out := callTool(t, h, "find_customer", `{"email":"ada@example.com"}`, false)
		results = append(results, res)
		if !res.OK || len(out.Rows) != 1 || out.Rows[0]["name"] != "Ada Lovelace" || out.Rows[0]["id"] != float64(1) {
			t.Fatalf("find_customer = %+v %s", res.Error, res.Data)
		}
		if strings.Join(out.Columns, ",") != "id,name,email,plan" {
			t.Errorf("columns = %v", out.Columns)
		}

		// The optional status argument is absent: the host passes null for $2.
		res, out = callTool(t, h, "customer_orders", `{"customer_id":1}`, false)
		results = append(results, res)
		if !res.OK || len(out.Rows) != 2 || out.Rows[0]["id"] != float64(11) {
			t.Fatalf("customer_orders(1) = %+v %s, want orders 11 and 10", res.Error, res.Data)
		}
		res, out = callTool(t, h, "customer_orders", `{"customer_id":1,"status":"paid"}`, false)
		results = append(results, res)
		if !res.OK || len(out.Rows) != 1 || out.Rows[0]["total_cents"] != float64(1250) {
			t.Fatalf("customer_orders(1, paid) = %+v %s", res.Error, res.Data)
		}

		// Injection through an argument stays data.
		res, out = callTool(t, h, "find_customer", `{"email":"'; DROP TABLE customers; --"}`, false)
		results = append(results, res)
		if !res.OK || len(out.Rows) != 0 {
			t.Fatalf("find_customer(injection) = %+v %s, want no rows", res.Error, res.Data)
		}
		res, out = callTool(t, h, "find_customer", `{"email":"x' OR '1'='1"}`, false)
		results = append(results, res)
		if !res.OK || len(out.Rows) != 0 {
			t.Fatalf("find_customer(or 1=1) = %+v %s, want no rows", res.Error, res.Data)
		}
		var n int
		if err := c.admin.QueryRow("SELECT count(*) FROM customers").Scan(&n); err != nil || n != 2 {
			t.Fatalf("customers = %d (%v), want 2", n, err)
		}

		// Each database call is audited, by function name, and counted.
		var dbEvents int
		for _, e := range rec.Audit.Events() {
			if e.Method == "DB" && e.URL == "db:find_customer" && e.Outcome == "ok" {
				dbEvents++
			}
		}
		if dbEvents != 3 {
			t.Errorf("audit has %d DB events for find_customer, want 3", dbEvents)
		}
		if results[0].Meta.Requests != 1 {
			t.Errorf("meta.requests = %d, want 1", results[0].Meta.Requests)
		}
		noLeak(t, rec, results...)
	})
}

func TestEndToEndWritesNeedAllowWritesAndConfirmation(t *testing.T) {
	eachBackend(t, func(t *testing.T, c *crm) {
		// Without allow_writes the write tool is neither listed nor callable.
		h, rec := crmHost(t, c, &manifest.Grant{Tools: []string{"*"}, Database: &manifest.DatabaseGrant{Functions: []string{"*"}}})
		for _, tool := range h.Tools() {
			if tool.Name == "crm_db.set_order_status" {
				t.Errorf("set_order_status is listed without allow_writes")
			}
		}
		res, _ := callTool(t, h, "set_order_status", `{"order_id":11,"status":"paid"}`, true)
		if res.OK || res.Error.Code != abi.CodeNotGranted || !strings.Contains(res.Error.Message, "allow_writes") {
			t.Fatalf("set_order_status without allow_writes = %+v, want not_granted naming allow_writes", res.Error)
		}
		results := []*host.Result{res}

		// With allow_writes it is listed as needing confirmation, and refused without it.
		h2, rec2 := crmHost(t, c, &manifest.Grant{Tools: []string{"*"}, Database: &manifest.DatabaseGrant{Functions: []string{"*"}, AllowWrites: true}})
		listed := false
		for _, tool := range h2.Tools() {
			if tool.Name == "crm_db.set_order_status" {
				listed = tool.NeedsConfirmation
			}
		}
		if !listed {
			t.Errorf("set_order_status is not listed as needing confirmation")
		}
		res, _ = callTool(t, h2, "set_order_status", `{"order_id":11,"status":"paid"}`, false)
		if res.OK || res.Error.Code != abi.CodeNeedsConfirm {
			t.Fatalf("unconfirmed set_order_status = %+v, want confirmation_required", res.Error)
		}
		res, out := callTool(t, h2, "set_order_status", `{"order_id":11,"status":"paid"}`, true)
		results = append(results, res)
		if !res.OK || out.Affected != 1 {
			t.Fatalf("confirmed set_order_status = %+v %s, want affected 1", res.Error, res.Data)
		}
		var status string
		c.admin.QueryRow("SELECT status FROM orders WHERE id = 11").Scan(&status)
		if status != "paid" {
			t.Fatalf("order 11 status = %q, want paid", status)
		}
		noLeak(t, rec, results...)
		noLeak(t, rec2, results...)
	})
}

func TestEndToEndUngrantedFunctionIsNotListedOrCallable(t *testing.T) {
	eachBackend(t, func(t *testing.T, c *crm) {
		h, rec := crmHost(t, c, &manifest.Grant{Tools: []string{"*"}, Database: &manifest.DatabaseGrant{Functions: []string{"find_customer"}}})
		var names []string
		for _, tool := range h.Tools() {
			names = append(names, tool.Name)
		}
		if strings.Join(names, ",") != "crm_db.find_customer" {
			t.Errorf("tools = %v, want only crm_db.find_customer", names)
		}
		res, _ := callTool(t, h, "customer_orders", `{"customer_id":1}`, false)
		if res.OK || res.Error.Code != abi.CodeNotGranted || res.Error.Category != abi.Fatal {
			t.Fatalf("customer_orders (function not granted) = %+v, want fatal not_granted", res.Error)
		}
		// Arguments that fail the tool's schema never reach the database.
		res2, _ := callTool(t, h, "find_customer", `{"email":"ada@example.com","sql":"DROP TABLE customers"}`, false)
		if res2.OK || res2.Error.Code != abi.CodeInvalidArguments {
			t.Fatalf("extra sql argument = %+v, want invalid_arguments", res2.Error)
		}
		noLeak(t, rec, res, res2)
	})
}

func TestEndToEndDatabaseDownIsRetryableAndSecretFree(t *testing.T) {
	c := &crm{dsn: "postgres://airlock:" + canary + "@127.0.0.1:1/crm?sslmode=disable&connect_timeout=2"}
	h, rec := crmHost(t, c, &manifest.Grant{Tools: []string{"*"}, Database: &manifest.DatabaseGrant{Functions: []string{"*"}}})
	res, _ := callTool(t, h, "find_customer", `{"email":"ada@example.com"}`, false)
	if res.OK || res.Error.Category != abi.Retryable {
		t.Fatalf("find_customer with the database down = %+v, want a retryable error", res.Error)
	}
	noLeak(t, rec, res)
}
