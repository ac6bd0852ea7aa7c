//go:build !wasip1

package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/hosttest"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// End to end on MongoDB (FerretDB): the same plugin with manifests/dbfunc-mongo.yaml, in a real
// host, the DSN's password being the canary.

func newCRMMongo(t *testing.T) (dsn string, admin *mongo.Database) {
	t.Helper()
	u, err := url.Parse(testenv.MongoDB(t))
	if err != nil {
		t.Fatal(err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(u.String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	admin = client.Database(strings.TrimPrefix(u.Path, "/"))
	ctx := context.Background()
	if _, err := admin.Collection("customers").InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: 1}, {Key: "name", Value: "Ada Lovelace"}, {Key: "email", Value: "ada@example.com"}, {Key: "plan", Value: "free"}},
		bson.D{{Key: "_id", Value: 2}, {Key: "name", Value: "Grace Hopper"}, {Key: "email", Value: "grace@example.com"}, {Key: "plan", Value: "pro"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Collection("orders").InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: 10}, {Key: "customer_id", Value: 1}, {Key: "total_cents", Value: 1250}, {Key: "status", Value: "paid"}},
		bson.D{{Key: "_id", Value: 11}, {Key: "customer_id", Value: 1}, {Key: "total_cents", Value: 990}, {Key: "status", Value: "open"}},
		bson.D{{Key: "_id", Value: 12}, {Key: "customer_id", Value: 2}, {Key: "total_cents", Value: 5000}, {Key: "status", Value: "shipped"}},
	}); err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("airlock", canary) // FerretDB on SQLite takes any password over PLAIN
	u.RawQuery = "authMechanism=PLAIN"
	return u.String(), admin
}

func mongoCRMHost(t *testing.T, dsn string, g *manifest.Grant) (*host.Host, *hosttest.Recorder) {
	t.Helper()
	m, wasm := hosttest.Connector(t, "./plugins/dbfunc", "manifests/dbfunc-mongo.yaml")
	src := secret.Mux{"env": secret.Env{Lookup: func(n string) (string, bool) { return dsn, n == "CRM_MONGO_DSN" }}}
	h, rec := hosttest.New(t, host.Config{Secrets: src})
	g.Connector = "crm_mongo"
	g.Database.DSN = "env:CRM_MONGO_DSN"
	if err := h.LoadModule(context.Background(), m, wasm, g); err != nil {
		t.Fatal(err)
	}
	return h, rec
}

func callMongoTool(t *testing.T, h *host.Host, tool, args string, confirmed bool) (*host.Result, output) {
	t.Helper()
	res := h.Call(context.Background(), host.CallRequest{Tool: "crm_mongo." + tool, Arguments: json.RawMessage(args),
		Agent: "test-agent", Confirmed: confirmed})
	var out output
	if res.OK {
		if err := json.Unmarshal(res.Data, &out); err != nil {
			t.Fatalf("%s: result %s: %v", tool, res.Data, err)
		}
	}
	return res, out
}

func TestEndToEndMongo(t *testing.T) {
	dsn, admin := newCRMMongo(t)
	h, rec := mongoCRMHost(t, dsn, &manifest.Grant{Tools: []string{"*"}, Database: &manifest.DatabaseGrant{Functions: []string{"*"}}})
	var results []*host.Result

	res, out := callMongoTool(t, h, "find_customer", `{"email":"ada@example.com"}`, false)
	results = append(results, res)
	if !res.OK || len(out.Rows) != 1 || out.Rows[0]["name"] != "Ada Lovelace" || out.Rows[0]["_id"] != float64(1) {
		t.Fatalf("find_customer = %+v %s", res.Error, res.Data)
	}
	res, out = callMongoTool(t, h, "customer_orders", `{"customer_id":1}`, false)
	results = append(results, res)
	if !res.OK || len(out.Rows) != 2 || out.Rows[0]["_id"] != float64(11) || strings.Join(out.Columns, ",") != "_id,total_cents,status" {
		t.Fatalf("customer_orders(1) = %+v %s, want orders 11 then 10", res.Error, res.Data)
	}
	// An operator in an argument: the tool's schema refuses the object; a string is compared
	// as a string.
	res, _ = callMongoTool(t, h, "find_customer", `{"email":{"$gt":""}}`, false)
	results = append(results, res)
	if res.OK || res.Error.Code != abi.CodeInvalidArguments {
		t.Fatalf("find_customer({$gt}) = %+v %s, want invalid_arguments", res.Error, res.Data)
	}
	for _, email := range []string{`$ne`, `'; db.dropDatabase(); '`, `{"$gt": ""}`} {
		args, _ := json.Marshal(map[string]string{"email": email})
		res, out = callMongoTool(t, h, "find_customer", string(args), false)
		results = append(results, res)
		if !res.OK || len(out.Rows) != 0 {
			t.Fatalf("find_customer(%q) = %+v %s, want no rows", email, res.Error, res.Data)
		}
	}

	// Writes: not listed nor callable without allow_writes.
	res, _ = callMongoTool(t, h, "set_order_status", `{"order_id":11,"status":"paid"}`, true)
	results = append(results, res)
	if res.OK || res.Error.Code != abi.CodeNotGranted || !strings.Contains(res.Error.Message, "allow_writes") {
		t.Fatalf("set_order_status without allow_writes = %+v, want not_granted naming allow_writes", res.Error)
	}
	// With allow_writes: listed as needing confirmation, refused without it, run with it.
	h2, rec2 := mongoCRMHost(t, dsn, &manifest.Grant{Tools: []string{"*"}, Database: &manifest.DatabaseGrant{Functions: []string{"*"}, AllowWrites: true}})
	listed := false
	for _, tool := range h2.Tools() {
		if tool.Name == "crm_mongo.set_order_status" {
			listed = tool.NeedsConfirmation
		}
	}
	if !listed {
		t.Errorf("set_order_status is not listed as needing confirmation")
	}
	res, _ = callMongoTool(t, h2, "set_order_status", `{"order_id":11,"status":"paid"}`, false)
	if res.OK || res.Error.Code != abi.CodeNeedsConfirm {
		t.Fatalf("unconfirmed set_order_status = %+v, want confirmation_required", res.Error)
	}
	res, out = callMongoTool(t, h2, "set_order_status", `{"order_id":11,"status":"paid"}`, true)
	results = append(results, res)
	if !res.OK || out.Affected != 1 {
		t.Fatalf("confirmed set_order_status = %+v %s, want affected 1", res.Error, res.Data)
	}
	var order struct{ Status string }
	if err := admin.Collection("orders").FindOne(context.Background(), bson.D{{Key: "_id", Value: 11}}).Decode(&order); err != nil || order.Status != "paid" {
		t.Fatalf("order 11 = %+v (%v), want paid", order, err)
	}
	// Each database call is audited by function name.
	var dbEvents int
	for _, e := range rec.Audit.Events() {
		if e.Method == "DB" && e.URL == "db:find_customer" && e.Outcome == "ok" {
			dbEvents++
		}
	}
	if dbEvents != 4 {
		t.Errorf("audit has %d DB events for find_customer, want 4", dbEvents)
	}
	noLeak(t, rec, results...)
	noLeak(t, rec2, results...)
}

func TestEndToEndMongoDownIsRetryableAndSecretFree(t *testing.T) {
	dsn := "mongodb://airlock:" + canary + "@127.0.0.1:1/crm?serverSelectionTimeoutMS=500"
	h, rec := mongoCRMHost(t, dsn, &manifest.Grant{Tools: []string{"*"}, Database: &manifest.DatabaseGrant{Functions: []string{"*"}}})
	res, _ := callMongoTool(t, h, "find_customer", `{"email":"ada@example.com"}`, false)
	if res.OK || res.Error.Category != abi.Retryable {
		t.Fatalf("find_customer with the database down = %+v, want a retryable error", res.Error)
	}
	noLeak(t, rec, res)
}
