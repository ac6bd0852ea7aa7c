package dbfunc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/airlock-dev/airlock/host/internal/scrub"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/abi"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// mongoFunctions are the MongoDB test functions, over a customers collection like the SQL
// suite's table.
const mongoFunctions = `
abi: 1
name: testmongo
version: 1.0.0
publisher: test
description: test
module: {path: dbfunc.wasm}
tools:
  - {name: t, function: find_customer, description: t, input_schema: {type: object}}
database:
  functions:
    - name: find_customer
      mongo:
        collection: customers
        op: find
        filter: {email: {$param: email}}
        projection: {_id: 1, name: 1, email: 1}
      params: [{name: email}]
    - name: by_id
      mongo: {collection: customers, op: find, filter: {_id: {$param: id}}}
      params: [{name: id}]
    - name: newer_than
      mongo: {collection: customers, op: find, filter: {_id: {$gt: {$param: id}}}, sort: [_id]}
      params: [{name: id}]
    - name: all_customers
      mongo: {collection: customers, op: find, sort: [-plan, _id]}
      max_rows: 2
    - name: all_five
      mongo: {collection: customers, op: find, sort: [_id]}
      max_rows: 5
    - name: all_customers_small
      mongo: {collection: customers, op: find, projection: {name: 1, email: 1}, sort: [_id]}
      max_bytes: 150
    - name: plans
      mongo:
        collection: customers
        op: aggregate
        pipeline:
          - {$match: {plan: {$param: plan}}}
          - {$group: {_id: $plan, n: {$sum: 1}}}
      params: [{name: plan}]
    - name: big_scan
      mongo: {collection: big, op: find, filter: {tag: {$regex: "^(a|b)*c$"}}, sort: [-w, -v]}
      max_rows: 1000
    - name: big_group
      mongo: {collection: big, op: aggregate, pipeline: [{$group: {_id: $w, n: {$sum: 1}}}, {$sort: {n: -1}}]}
      timeout_ms: 50
    - name: big_capped
      mongo: {collection: big, op: find}
      max_bytes: 500
      max_rows: 1000
    - name: add_customer
      mongo:
        collection: customers
        op: insert_one
        document: {_id: {$param: id}, name: {$param: name}, email: {$param: email}, plan: free}
      params: [{name: id, schema: {type: integer}}, {name: name, schema: {type: string}}, {name: email}]
      read_only: false
    - name: set_plan
      mongo:
        collection: customers
        op: update_one
        filter: {_id: {$param: id}}
        update: {$set: {plan: {$param: plan}}, $push: {history: {$param: plan}}}
      params: [{name: id}, {name: plan}]
      read_only: false
    - name: set_plan_upsert
      mongo:
        collection: customers
        op: update_one
        filter: {_id: {$param: id}}
        update: {$set: {plan: {$param: plan}}}
        upsert: true
      params: [{name: id, schema: {type: integer}}, {name: plan, schema: {type: string}}]
      read_only: false
`

// mongoCanary is the DSN's password: FerretDB on SQLite accepts any password over PLAIN.
const mongoCanary = "CANARY-mongo-8Vr3qZk"

var mongoCustomers = []any{
	bson.D{{Key: "_id", Value: 1}, {Key: "name", Value: "Ada Lovelace"}, {Key: "email", Value: "ada@example.com"}, {Key: "plan", Value: "free"}},
	bson.D{{Key: "_id", Value: 2}, {Key: "name", Value: "Grace Hopper"}, {Key: "email", Value: "grace@example.com"}, {Key: "plan", Value: "pro"}},
	bson.D{{Key: "_id", Value: 3}, {Key: "name", Value: "Alan Turing"}, {Key: "email", Value: "alan@example.com"}, {Key: "plan", Value: "free"}},
	bson.D{{Key: "_id", Value: 4}, {Key: "name", Value: "Edsger Dijkstra"}, {Key: "email", Value: "edsger@example.com"}, {Key: "plan", Value: "free"}},
	bson.D{{Key: "_id", Value: 5}, {Key: "name", Value: "Barbara Liskov"}, {Key: "email", Value: "barbara@example.com"}, {Key: "plan", Value: "pro"}},
}

// mongoEnv is one test database on the test server, with the commands the DB sent.
type mongoEnv struct {
	dsn   string
	admin *mongo.Database
	mu    sync.Mutex
	sent  []bson.Raw // commands the DB under test started
}

func newMongo(t testing.TB) *mongoEnv {
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
	e := &mongoEnv{admin: client.Database(strings.TrimPrefix(u.Path, "/"))}
	u.User = url.UserPassword("airlock", mongoCanary)
	u.RawQuery = "authMechanism=PLAIN"
	e.dsn = u.String()
	if _, err := e.admin.Collection("customers").InsertMany(context.Background(), mongoCustomers); err != nil {
		t.Fatalf("fixtures: %v", err)
	}
	return e
}

func (e *mongoEnv) count(t testing.TB, coll string, filter any) int64 {
	t.Helper()
	n, err := e.admin.Collection(coll).CountDocuments(context.Background(), filter)
	if err != nil {
		t.Fatalf("counting %s: %v", coll, err)
	}
	return n
}

// commands returns the names of the commands sent so far (the first key of each).
func (e *mongoEnv) commands() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for _, c := range e.sent {
		if el, err := c.IndexErr(0); err == nil {
			names = append(names, el.Key())
		}
	}
	return names
}

func (e *mongoEnv) command(name string) bson.Raw {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.sent) - 1; i >= 0; i-- {
		if el, err := e.sent[i].IndexErr(0); err == nil && el.Key() == name {
			return e.sent[i]
		}
	}
	return nil
}

func mongoDeclared(t testing.TB) []manifest.DBFunction {
	t.Helper()
	m, err := manifest.Parse("testmongo.yaml", []byte(mongoFunctions))
	if err != nil {
		t.Fatalf("test manifest: %v", err)
	}
	return m.Database.Functions
}

// openMongoDB opens a DB on e granting fns (all declared when nil), watching its commands.
func openMongoDB(t testing.TB, e *mongoEnv, fns []manifest.DBFunction, grant ...string) (*DB, *bytes.Buffer) {
	t.Helper()
	if fns == nil {
		fns = mongoDeclared(t)
	}
	granted := map[string]*manifest.DBFunction{}
	for i := range fns {
		if len(grant) == 0 || contains(grant, fns[i].Name) {
			granted[fns[i].Name] = &fns[i]
		}
	}
	var logs bytes.Buffer
	sc := scrub.New()
	monitor := &event.CommandMonitor{Started: func(_ context.Context, ev *event.CommandStartedEvent) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.sent = append(e.sent, append(bson.Raw(nil), ev.Command...))
	}}
	sc.Add(e.dsn)
	be, err := openMongo(e.dsn, sc, 4, func(o *options.ClientOptions) { o.SetMonitor(monitor) })
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(Config{DSN: secret.New(e.dsn), Declared: fns, Granted: granted, Scrubber: sc,
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	db.backend.close()
	db.backend = be // the same DB, on the watched MongoDB client
	t.Cleanup(func() { db.Close() })
	return db, &logs
}

func noMongoCanary(t *testing.T, logs *bytes.Buffer, resps ...abi.DBResponse) {
	t.Helper()
	for i, r := range resps {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), mongoCanary) {
			t.Errorf("response %d holds the DSN secret: %s", i, b)
		}
	}
	if logs != nil && strings.Contains(logs.String(), mongoCanary) {
		t.Errorf("the log holds the DSN secret:\n%s", logs)
	}
}

func TestMongoFind(t *testing.T) {
	e := newMongo(t)
	db, logs := openMongoDB(t, e, nil)
	r := call(db, "find_customer", "ada@example.com")
	if r.Error != nil || len(r.Rows) != 1 || strings.Join(r.Columns, ",") != "_id,name,email" || r.Rows[0][1] != "Ada Lovelace" {
		t.Fatalf("find_customer(ada) = %+v, want Ada's document as _id, name, email", r)
	}
	r = call(db, "newer_than", 3)
	if r.Error != nil || len(r.Rows) != 2 || r.Rows[0][0] != int64(4) {
		t.Fatalf("newer_than(3) = %+v, want customers 4 and 5", r)
	}
	r = call(db, "plans", "pro")
	if r.Error != nil || len(r.Rows) != 1 || fmt.Sprint(r.Rows[0]) != "[pro 2]" {
		t.Fatalf("plans(pro) = %+v, want [pro 2]", r)
	}
	// Every command carries maxTimeMS, the function's timeout (default 5000).
	for _, name := range []string{"find", "aggregate"} {
		cmd := e.command(name)
		if mt, _ := cmd.Lookup("maxTimeMS").AsInt64OK(); mt != 5000 {
			t.Errorf("%s command %s: maxTimeMS = %v, want 5000", name, cmd, cmd.Lookup("maxTimeMS"))
		}
	}
	// A call with less time left than the function's timeout gives the server only that.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if r := db.Call(ctx, []byte(`{"function":"find_customer","params":["ada@example.com"]}`)); r.Error != nil {
		t.Fatalf("find_customer under a 2 s deadline = %+v", r.Error)
	}
	if mt, _ := e.command("find").Lookup("maxTimeMS").AsInt64OK(); mt <= 0 || mt > 2000 {
		t.Errorf("find under a 2 s call deadline sent maxTimeMS %d, want 1..2000", mt)
	}
	noMongoCanary(t, logs, r)
}

// An agent's parameter is a value, never an operator, whatever its shape: every attempt finds
// nothing (compared as a literal) or is refused as an invalid argument, and the data is intact.
func TestMongoOperatorInjectionIsInert(t *testing.T) {
	e := newMongo(t)
	db, logs := openMongoDB(t, e, nil)
	var resps []abi.DBResponse
	for _, attack := range []string{
		`{"$gt": ""}`,
		`{"$ne": null}`,
		`{"$ne": "x"}`,
		`{"$regex": ".*"}`,
		`{"$where": "sleep(5000) || true"}`,
		`{"$function": {"body": "function() { return true }", "args": [], "lang": "js"}}`,
		`{"$expr": {"$eq": [1, 1]}}`,
		`{"$in": ["ada@example.com", "grace@example.com"]}`,
		`{"a": {"$gt": ""}}`,
		`[{"$gt": ""}]`,
		`{"$oid": "000000000000000000000001"}`,
		`{"$out": "stolen"}`,
		`[{"$merge": {"into": "stolen"}}]`,
		`"$ne"`,
		`"$email"`,
		`"$$ROOT"`,
		`"'; db.dropDatabase(); '"`,
		`"ada@example.com' || '1'=='1"`,
		`{"email": "ada@example.com"}`,
		`["ada@example.com"]`,
	} {
		for _, fn := range []string{"find_customer", "by_id", "plans"} {
			req := fmt.Sprintf(`{"function":%q,"params":[%s]}`, fn, attack)
			r := db.Call(context.Background(), []byte(req))
			resps = append(resps, r)
			if r.Error != nil && r.Error.Code != abi.CodeInvalidArguments {
				t.Errorf("%s(%s) error = %+v, want rows or invalid_arguments", fn, attack, r.Error)
			}
			if len(r.Rows) != 0 {
				t.Errorf("%s(%s) = %d rows %v, want none: the parameter was read as more than a value", fn, attack, len(r.Rows), r.Rows)
			}
		}
	}
	// An operator object is refused before anything is sent, naming the key.
	r := db.Call(context.Background(), []byte(`{"function":"find_customer","params":[{"$gt":""}]}`))
	wantError(t, r, abi.CodeInvalidArguments, abi.Correctable)
	if !strings.Contains(r.Error.Message, `"$gt"`) || !strings.Contains(r.Error.Message, "email") {
		t.Errorf("message %q does not name the parameter and the key", r.Error.Message)
	}
	if n := e.count(t, "customers", bson.D{}); n != 5 {
		t.Fatalf("customers = %d after the attempts, want 5", n)
	}
	if n := e.count(t, "stolen", bson.D{}); n != 0 {
		t.Fatalf("stolen = %d documents, want 0", n)
	}
	// The real values work, so the empty answers above are not an artefact.
	if r := call(db, "find_customer", "ada@example.com"); r.Error != nil || len(r.Rows) != 1 {
		t.Fatalf("find_customer(ada) = %+v", r)
	}
	if r := call(db, "by_id", 2); r.Error != nil || len(r.Rows) != 1 {
		t.Fatalf("by_id(2) = %+v", r)
	}
	noMongoCanary(t, logs, resps...)
}

// The host's own rendering, sent to the server with an operator-shaped value (what the
// refusal above never lets through): still a literal comparison.
func TestMongoEqualityWrapIsInertOnTheServer(t *testing.T) {
	e := newMongo(t)
	for _, v := range []any{bson.D{{Key: "$gt", Value: ""}}, bson.D{{Key: "$ne", Value: nil}}, bson.D{{Key: "$regex", Value: ".*"}}} {
		filter := bson.D{{Key: "email", Value: bson.D{{Key: "$eq", Value: v}}}}
		if n := e.count(t, "customers", filter); n != 0 {
			t.Errorf("{email: {$eq: %v}} matched %d, want 0", v, n)
		}
		if n := e.count(t, "customers", bson.D{{Key: "email", Value: v}}); n == 0 {
			t.Errorf("{email: %v} without the wrap matched nothing: this test would not see an injection", v)
		}
	}
}

func TestMongoCapsStopTheServer(t *testing.T) {
	e := newMongo(t)
	docs := make([]any, 300)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}, {Key: "w", Value: i % 7}, {Key: "v", Value: strings.Repeat("x", 40)}, {Key: "tag", Value: "abab"}}
	}
	if _, err := e.admin.Collection("big").InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	db, logs := openMongoDB(t, e, nil)
	r := call(db, "all_customers")
	if r.Error != nil || len(r.Rows) != 2 || !r.Truncated {
		t.Fatalf("all_customers (max_rows 2 of 5) = %d rows, truncated %v, err %+v; want 2, true", len(r.Rows), r.Truncated, r.Error)
	}
	if r.Rows[0][0] != int64(2) || r.Rows[1][0] != int64(5) { // sort: [-plan, _id]
		t.Errorf("rows = %v, want the pro customers 2 and 5 first", r.Rows)
	}
	find := e.command("find")
	if lim, _ := find.Lookup("limit").AsInt64OK(); lim != 3 {
		t.Errorf("find sent limit %v, want max_rows+1 = 3: %s", find.Lookup("limit"), find)
	}
	r = call(db, "all_five")
	if r.Error != nil || len(r.Rows) != 5 || r.Truncated {
		t.Fatalf("all_five (max_rows 5 of 5) = %d rows, truncated %v, err %+v; want 5, false", len(r.Rows), r.Truncated, r.Error)
	}
	r = call(db, "all_customers_small")
	rows, _ := json.Marshal(r.Rows)
	if r.Error != nil || !r.Truncated || len(r.Rows) == 0 || len(r.Rows) >= 5 || len(rows) > 150 {
		t.Fatalf("all_customers_small (max_bytes 150) = %d rows (%d bytes), truncated %v, err %+v", len(r.Rows), len(rows), r.Truncated, r.Error)
	}
	// A byte cap passed in the first batch of a large result: the server is told to drop the
	// cursor (killCursors), and no further batch is asked for.
	before := len(e.commands())
	r = call(db, "big_capped")
	if r.Error != nil || !r.Truncated || len(r.Rows) == 0 {
		t.Fatalf("big_capped = %d rows, truncated %v, err %+v", len(r.Rows), r.Truncated, r.Error)
	}
	after := e.commands()[before:]
	if strings.Join(after, ",") != "find,killCursors" {
		t.Errorf("commands for a capped read = %v, want find then killCursors (no getMore)", after)
	}
	find = e.command("find")
	if b, _ := find.Lookup("batchSize").AsInt64OK(); b <= 0 || b > mongoBatch {
		t.Errorf("find batchSize = %v, want 1..%d", find.Lookup("batchSize"), mongoBatch)
	}
	noMongoCanary(t, logs, r)
}

func TestMongoSlowOperationIsCancelledAtItsTimeout(t *testing.T) {
	e := newMongo(t)
	docs := make([]any, 5000)
	for k := range 2 {
		for i := range docs {
			docs[i] = bson.D{{Key: "_id", Value: fmt.Sprint(k, "-", i)}, {Key: "w", Value: i % 97}, {Key: "v", Value: strings.Repeat("y", 200)}}
		}
		if _, err := e.admin.Collection("big").InsertMany(context.Background(), docs); err != nil {
			t.Fatal(err)
		}
	}
	db, logs := openMongoDB(t, e, nil)
	r := call(db, "big_group") // timeout_ms 50 over 10,000 documents, which take FerretDB ~1 s
	wantError(t, r, abi.CodeTimeout, abi.Retryable)
	if !strings.Contains(logs.String(), "MaxTimeMSExpired") { // FerretDB answers within ~250 ms here
		t.Logf("the host's backstop ended the call before the server's MaxTimeMSExpired (a loaded machine?): %s", logs)
	}
	if !strings.Contains(r.Error.Message, "50 ms") {
		t.Errorf("message %q does not name the function's limit", r.Error.Message)
	}
	// The server was told the limit: it stops the command itself.
	agg := e.command("aggregate")
	if mt, _ := agg.Lookup("maxTimeMS").AsInt64OK(); mt != 50 {
		t.Errorf("aggregate sent maxTimeMS %v, want 50: %s", agg.Lookup("maxTimeMS"), agg)
	}
	// The pool is still usable after the cancellation.
	if r := call(db, "find_customer", "ada@example.com"); r.Error != nil || len(r.Rows) != 1 {
		t.Fatalf("after the timeout, find_customer = %+v", r)
	}
	noMongoCanary(t, logs, r)
}

// Reads cannot write: a read function whose operation writes, or whose pipeline ends in $out or
// $merge (built without Parse, which refuses them), is refused before anything is sent.
func TestMongoReadsCannotWrite(t *testing.T) {
	e := newMongo(t)
	fns := []manifest.DBFunction{
		{Name: "sneaky_insert", ReadOnly: true, MaxRows: 10, MaxBytes: 1 << 20, TimeoutMS: 5000,
			Mongo: &manifest.MongoOp{Collection: "customers", Op: manifest.MongoInsertOne, Document: json.RawMessage(`{"_id": 99, "name": "Mallory"}`)}},
		{Name: "sneaky_out", ReadOnly: true, MaxRows: 10, MaxBytes: 1 << 20, TimeoutMS: 5000,
			Mongo: &manifest.MongoOp{Collection: "customers", Op: manifest.MongoAggregate, Pipeline: json.RawMessage(`[{"$match": {}}, {"$out": "stolen"}]`)}},
		{Name: "sneaky_merge", ReadOnly: true, MaxRows: 10, MaxBytes: 1 << 20, TimeoutMS: 5000,
			Mongo: &manifest.MongoOp{Collection: "customers", Op: manifest.MongoAggregate, Pipeline: json.RawMessage(`[{"$facet": {"a": [{"$merge": {"into": "stolen"}}]}}]`)}},
		{Name: "sneaky_where", ReadOnly: true, MaxRows: 10, MaxBytes: 1 << 20, TimeoutMS: 5000,
			Mongo: &manifest.MongoOp{Collection: "customers", Op: manifest.MongoFind, Filter: json.RawMessage(`{"$where": "db.customers.drop() || true"}`)}},
		{Name: "sneaky_function", ReadOnly: true, MaxRows: 10, MaxBytes: 1 << 20, TimeoutMS: 5000,
			Mongo: &manifest.MongoOp{Collection: "customers", Op: manifest.MongoAggregate, Pipeline: json.RawMessage(`[{"$project": {"x": {"$function": {"body": "function() {}", "args": [], "lang": "js"}}}}]`)}},
	}
	db, logs := openMongoDB(t, e, fns)
	var resps []abi.DBResponse
	for _, f := range fns {
		_, err := db.backend.read(context.Background(), &f, nil)
		var refused *mongoRefused
		if !errors.As(err, &refused) {
			t.Errorf("%s through the read path: err = %v, want the host's refusal", f.Name, err)
		}
		r := call(db, f.Name)
		resps = append(resps, r)
		wantError(t, r, "database_error", abi.Fatal)
	}
	if sent := e.commands(); len(sent) != 0 {
		t.Errorf("commands sent for refused reads: %v, want none", sent)
	}
	if n := e.count(t, "customers", bson.D{}); n != 5 {
		t.Fatalf("customers = %d, want 5", n)
	}
	if n := e.count(t, "stolen", bson.D{}); n != 0 {
		t.Fatalf("stolen = %d documents, want 0", n)
	}
	noMongoCanary(t, logs, resps...)
}

func TestMongoWrites(t *testing.T) {
	e := newMongo(t)
	db, logs := openMongoDB(t, e, nil)
	r := call(db, "add_customer", 6, "Radia Perlman", "radia@example.com")
	if r.Error != nil || r.Affected != 1 || len(r.Rows) != 1 || r.Rows[0][0] != int64(6) {
		t.Fatalf("add_customer = %+v, want affected 1 and _id 6", r)
	}
	if n := e.count(t, "customers", bson.D{}); n != 6 {
		t.Fatalf("customers = %d after add_customer, want 6", n)
	}
	// A duplicate _id is a correctable conflict that names no data.
	r = call(db, "add_customer", 6, "Someone", "someone@example.com")
	wantError(t, r, "conflict", abi.Correctable)
	if strings.Contains(r.Error.Message, "Someone") || strings.Contains(r.Error.Message, "6") {
		t.Errorf("message %q echoes row data", r.Error.Message)
	}
	// An operator or a $-key in a value is refused: it would be read as an operator in data
	// ($push's $each) or stored as a field MongoDB reserves.
	for _, attack := range []string{`{"$each": ["a", "b", "c"]}`, `{"nested": {"$gt": 1}}`, `{"a\u0000b": 1}`} {
		req := fmt.Sprintf(`{"function":"set_plan","params":[1, %s]}`, attack)
		r := db.Call(context.Background(), []byte(req))
		wantError(t, r, abi.CodeInvalidArguments, abi.Correctable)
	}
	r = call(db, "set_plan", 1, "pro")
	if r.Error != nil || r.Affected != 1 {
		t.Fatalf("set_plan(1, pro) = %+v, want affected 1", r)
	}
	if n := e.count(t, "customers", bson.D{{Key: "_id", Value: 1}, {Key: "plan", Value: "pro"}, {Key: "history", Value: bson.A{"pro"}}}); n != 1 {
		t.Fatalf("customer 1 is not pro with history [pro] after set_plan")
	}
	// No upsert unless declared: an unknown id changes nothing.
	r = call(db, "set_plan", 77, "pro")
	if r.Error != nil || r.Affected != 0 {
		t.Fatalf("set_plan(77) = %+v, want affected 0", r)
	}
	if n := e.count(t, "customers", bson.D{{Key: "_id", Value: 77}}); n != 0 {
		t.Fatalf("set_plan without upsert inserted customer 77")
	}
	r = call(db, "set_plan_upsert", 78, "pro")
	if r.Error != nil || r.Affected != 1 || len(r.Rows) != 1 {
		t.Fatalf("set_plan_upsert(78) = %+v, want affected 1 and the new _id", r)
	}
	if n := e.count(t, "customers", bson.D{}); n != 7 {
		t.Fatalf("customers = %d, want 7", n)
	}
	// Writes carry maxTimeMS too (the driver's, from the timeout_ms deadline).
	for _, name := range []string{"insert", "update"} {
		cmd := e.command(name)
		if mt, _ := cmd.Lookup("maxTimeMS").AsInt64OK(); mt <= 0 || mt > 5000 {
			t.Errorf("%s command %s: maxTimeMS = %v, want 1..5000", name, cmd, cmd.Lookup("maxTimeMS"))
		}
	}
	noMongoCanary(t, logs, r)
}

func TestMongoOnlyGrantedFunctionsRun(t *testing.T) {
	e := newMongo(t)
	db, _ := openMongoDB(t, e, nil, "find_customer")
	for _, tc := range []struct{ fn, says string }{
		{"all_customers", "not granted"},
		{"add_customer", "allow_writes"},
		{"no_such_function", "no database function"},
	} {
		r := call(db, tc.fn, 9, "x", "y")
		wantError(t, r, abi.CodeNotGranted, abi.Fatal)
		if !strings.Contains(r.Error.Message, tc.says) {
			t.Errorf("%s: message %q does not say %q", tc.fn, r.Error.Message, tc.says)
		}
	}
	if n := e.count(t, "customers", bson.D{}); n != 5 {
		t.Fatalf("customers = %d, want 5", n)
	}
	if sent := e.commands(); len(sent) != 0 {
		t.Errorf("commands sent for refused calls: %v", sent)
	}
}

func TestMongoDSNNeverLeaks(t *testing.T) {
	fns := mongoDeclared(t)
	for _, dsn := range []string{
		"mongodb://airlock:" + mongoCanary + "@127.0.0.1:1/crm?serverSelectionTimeoutMS=300&connectTimeoutMS=300",
		"mongodb://" + mongoCanary + ":" + url.QueryEscape(mongoCanary+"/x@y") + "@127.0.0.1:1/crm?serverSelectionTimeoutMS=300",
		"mongodb://airlock:" + mongoCanary + "@127.0.0.1:1/crm?authMechanism=PLAIN&serverSelectionTimeoutMS=300",
	} {
		var logs bytes.Buffer
		sc := scrub.New()
		db, err := Open(Config{DSN: secret.New(dsn), Declared: fns, Granted: map[string]*manifest.DBFunction{"find_customer": &fns[0]},
			Scrubber: sc, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))})
		if err != nil {
			t.Fatal(err)
		}
		r := call(db, "find_customer", "ada@example.com")
		db.Close()
		if r.Error == nil || r.Error.Category != abi.Retryable {
			t.Fatalf("a call to an unreachable server = %+v, want a retryable error", r)
		}
		if !strings.Contains(logs.String(), "database function failed") {
			t.Errorf("the failure was not logged: %q", logs.String())
		}
		noMongoCanary(t, &logs, r)
		pw, _ := mustURL(t, dsn).User.Password()
		if got := sc.String("x " + pw + " " + url.QueryEscape(pw)); strings.Contains(got, mongoCanary) {
			t.Errorf("the scrubber was not told the password in every form: %q", got)
		}
	}
	for _, dsn := range []string{
		"mongodb://u:" + mongoCanary + "@h:port/db",
		"mongodb://u:" + mongoCanary + "@/db",
		"mongodb://u:" + mongoCanary + "@h/db?unknownOption=" + mongoCanary + "&maxPoolSize=x",
	} {
		_, err := Open(Config{DSN: secret.New(dsn)})
		if !errors.Is(err, ErrDSN) {
			t.Errorf("Open(malformed %q) = %v, want ErrDSN", strings.ReplaceAll(dsn, mongoCanary, "…"), err)
		}
		if err != nil && strings.Contains(err.Error(), mongoCanary) {
			t.Errorf("Open error quotes the DSN: %v", err)
		}
	}
	_, err := Open(Config{DSN: secret.New("mongodb://u:" + mongoCanary + "@127.0.0.1:1")})
	if !errors.Is(err, ErrMongoDatabase) || strings.Contains(err.Error(), mongoCanary) {
		t.Errorf("Open without a database = %v, want ErrMongoDatabase", err)
	}
}

// A grant that points MongoDB functions at an SQL database, or SQL functions at MongoDB, fails
// when the connector loads, saying which function and what to change.
func TestMongoFunctionsNeedAMongoDSN(t *testing.T) {
	mongoFns := mongoDeclared(t)
	sqlFns := declared(t, "sqlite")
	for _, tc := range []struct {
		dsn  string
		fns  []manifest.DBFunction
		says string
	}{
		{"postgres://u:" + mongoCanary + "@127.0.0.1:1/db", mongoFns, "is a MongoDB operation"},
		{"sqlite:/nonexistent/" + mongoCanary + ".db", mongoFns, "is a MongoDB operation"},
		{"mongodb://u:" + mongoCanary + "@127.0.0.1:1/db", sqlFns, "is SQL"},
	} {
		granted := map[string]*manifest.DBFunction{tc.fns[0].Name: &tc.fns[0]}
		_, err := Open(Config{DSN: secret.New(tc.dsn), Declared: tc.fns, Granted: granted})
		if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), tc.fns[0].Name) || strings.Contains(err.Error(), mongoCanary) {
			t.Errorf("Open(%s, %s) = %v, want an error naming the function and saying %q", strings.SplitN(tc.dsn, ":", 2)[0], tc.fns[0].Name, err, tc.says)
		}
	}
}

// The pool is bounded per connector: many concurrent calls never open more than MaxConns
// connections.
func TestMongoPoolIsBounded(t *testing.T) {
	e := newMongo(t)
	var mu sync.Mutex
	open, most := 0, 0
	sc := scrub.New()
	monitor := &event.PoolMonitor{Event: func(ev *event.PoolEvent) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Type {
		case event.ConnectionCreated:
			open++
			most = max(most, open)
		case event.ConnectionClosed:
			open--
		}
	}}
	be, err := openMongo(e.dsn, sc, 2, func(o *options.ClientOptions) { o.SetPoolMonitor(monitor) })
	if err != nil {
		t.Fatal(err)
	}
	fns := mongoDeclared(t)
	db := &DB{backend: be, declared: map[string]*manifest.DBFunction{}, granted: map[string]*manifest.DBFunction{}, scrub: sc, logger: slog.New(slog.DiscardHandler)}
	for i := range fns {
		db.declared[fns[i].Name], db.granted[fns[i].Name] = &fns[i], &fns[i]
	}
	defer db.Close()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 5 {
				if r := call(db, "find_customer", "grace@example.com"); r.Error != nil || len(r.Rows) != 1 {
					t.Errorf("find_customer = %+v", r)
				}
			}
		})
	}
	wg.Wait()
	if most > 2 {
		t.Errorf("the pool opened %d connections at once, want at most 2 (MaxConns)", most)
	}
	if most == 0 {
		t.Errorf("no connection was seen: the pool monitor saw nothing")
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// BenchmarkMongoCappedRead measures a 10-row and a 2,000-byte cap over 20,000 documents against
// reading them all, which is what the server would do without limit and batch size:
//
//	go test -run '^$' -bench MongoCappedRead -benchtime 20x ./host/internal/dbfunc
func BenchmarkMongoCappedRead(b *testing.B) {
	e := newMongo(b)
	docs := make([]any, 5000)
	for k := range 4 {
		for i := range docs {
			docs[i] = bson.D{{Key: "_id", Value: fmt.Sprint(k, "-", i)}, {Key: "w", Value: i % 97}, {Key: "v", Value: strings.Repeat("z", 100)}}
		}
		if _, err := e.admin.Collection("big").InsertMany(context.Background(), docs); err != nil {
			b.Fatal(err)
		}
	}
	m, err := manifest.Parse("bench.yaml", []byte(strings.Replace(mongoFunctions, "database:\n  functions:\n", `database:
  functions:
    - {name: ten, mongo: {collection: big, op: find}, max_rows: 10}
    - {name: small, mongo: {collection: big, op: find}, max_rows: 10000, max_bytes: 2000}
`, 1)))
	if err != nil {
		b.Fatal(err)
	}
	db, _ := openMongoDB(b, e, m.Database.Functions)
	for _, fn := range []string{"ten", "small"} {
		b.Run(fn, func(b *testing.B) {
			for b.Loop() {
				if r := call(db, fn); r.Error != nil || !r.Truncated {
					b.Fatalf("%s = %+v", fn, r.Error)
				}
			}
		})
	}
	b.Run("uncapped", func(b *testing.B) {
		for b.Loop() {
			cur, err := e.admin.Collection("big").Find(context.Background(), bson.D{})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for cur.Next(context.Background()) {
				n++
			}
			cur.Close(context.Background())
			if n != 20000 {
				b.Fatalf("read %d documents", n)
			}
		}
	})
}
